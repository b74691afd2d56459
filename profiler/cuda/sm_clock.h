// The current SM clock of one GPU, from NVML (nvmlDeviceGetClockInfo with NVML_CLOCK_SM).
//
// NVML's library, libnvidia-ml.so.1, ships with the driver, not with the CUDA toolkit,
// and this toolkit has no nvml.h: so it is opened at run time with dlopen, as the CUDA
// runtime opens the driver's libcuda.so.1, and the five entry points used are declared
// here from the NVML API reference (docs.nvidia.com/deploy/nvml-api: "Initialization and
// Cleanup", "Device Queries", "Error reporting"; nvmlClockType_t). orrery-profile then
// still starts where there is no driver (its flag handling is tested on such machines),
// and a missing or failing NVML costs the clock, never the measurement.
#pragma once

#include <optional>
#include <string>

namespace orrery::profiler::cuda {

class SmClock {
 public:
  // The GPU is named by its CUDA device index and found in NVML by PCI bus id (NVML's
  // own indices need not follow CUDA's). Never throws: a failure is kept for unread().
  explicit SmClock(int cuda_device);
  ~SmClock();
  SmClock(const SmClock&) = delete;
  SmClock& operator=(const SmClock&) = delete;

  // The SM clock now, in MHz; nullopt when it cannot be read (then unread() says why).
  std::optional<unsigned> read_mhz();
  // Why the clock cannot be read: "" while it can.
  const std::string& unread() const { return why_; }

 private:
  struct Api;
  void* library_ = nullptr;
  Api* api_ = nullptr;
  void* device_ = nullptr;  // nvmlDevice_t
  bool initialized_ = false;
  std::string why_;
};

}  // namespace orrery::profiler::cuda
