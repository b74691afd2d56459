#include "profiler/cuda/sm_clock.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <fmt/format.h>

namespace orrery::profiler::cuda {

// From the NVML API reference (docs.nvidia.com/deploy/nvml-api): nvmlReturn_t is an
// enum whose NVML_SUCCESS is 0; nvmlDevice_t an opaque pointer; nvmlClockType_t's
// NVML_CLOCK_SM is 1 (after NVML_CLOCK_GRAPHICS, 0). nvmlInit_v2 and
// nvmlDeviceGetHandleByPciBusId_v2 are the exported names of nvmlInit and
// nvmlDeviceGetHandleByPciBusId.
namespace {
using NvmlReturn = int;
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr int kNvmlClockSm = 1;
}  // namespace

struct SmClock::Api {
  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  NvmlReturn (*handle_by_pci_bus_id)(const char*, void**) = nullptr;
  NvmlReturn (*clock_info)(void*, int, unsigned*) = nullptr;
  const char* (*error_string)(NvmlReturn) = nullptr;
};

namespace {

template <class F>
bool bind(void* library, const char* name, F& out) {
  out = reinterpret_cast<F>(dlsym(library, name));
  return out != nullptr;
}

}  // namespace

SmClock::SmClock(int cuda_device) {
  library_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library_) {
    const char* e = dlerror();
    why_ = fmt::format("NVML not loaded: {}", e ? e : "dlopen(libnvidia-ml.so.1) failed");
    return;
  }
  api_ = new Api;
  for (auto [name, ok] :
       {std::pair{"nvmlInit_v2", bind(library_, "nvmlInit_v2", api_->init)},
        {"nvmlShutdown", bind(library_, "nvmlShutdown", api_->shutdown)},
        {"nvmlDeviceGetHandleByPciBusId_v2",
         bind(library_, "nvmlDeviceGetHandleByPciBusId_v2", api_->handle_by_pci_bus_id)},
        {"nvmlDeviceGetClockInfo", bind(library_, "nvmlDeviceGetClockInfo", api_->clock_info)},
        {"nvmlErrorString", bind(library_, "nvmlErrorString", api_->error_string)}}) {
    if (!ok) {
      why_ = fmt::format("NVML has no {}", name);
      return;
    }
  }
  const auto failed = [&](const char* call, NvmlReturn r) {
    const char* s = api_->error_string(r);
    why_ = fmt::format("{}: {}", call, s ? s : fmt::format("NVML error {}", r));
  };
  if (const NvmlReturn r = api_->init(); r != kNvmlSuccess) {
    failed("nvmlInit_v2", r);
    return;
  }
  initialized_ = true;
  char bus[32] = {};
  if (const cudaError_t e = cudaDeviceGetPCIBusId(bus, sizeof bus, cuda_device); e != cudaSuccess) {
    why_ = fmt::format("cudaDeviceGetPCIBusId: {}", cudaGetErrorString(e));
    return;
  }
  if (const NvmlReturn r = api_->handle_by_pci_bus_id(bus, &device_); r != kNvmlSuccess)
    failed("nvmlDeviceGetHandleByPciBusId_v2", r);
}

SmClock::~SmClock() {
  if (initialized_) (void)api_->shutdown();
  delete api_;
  if (library_) (void)dlclose(library_);
}

std::optional<unsigned> SmClock::read_mhz() {
  if (!why_.empty() || !device_) return std::nullopt;
  unsigned mhz = 0;
  if (const NvmlReturn r = api_->clock_info(device_, kNvmlClockSm, &mhz); r != kNvmlSuccess) {
    const char* s = api_->error_string(r);
    why_ = fmt::format("nvmlDeviceGetClockInfo(SM): {}", s ? s : fmt::format("NVML error {}", r));
    return std::nullopt;
  }
  return mhz;
}

}  // namespace orrery::profiler::cuda
