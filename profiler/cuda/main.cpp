// orrery-profile: measures this host's GPUs and writes a measurement file
// (docs/calibration-format.md). All logic is in profiler/cli.h; this picks the real
// device and environment.
#include <iostream>
#include <string>
#include <vector>

#include "profiler/cli.h"
#include "profiler/cuda/cuda_device.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto env = orrery::profiler::system_environment();
  try {
    return orrery::profiler::profile_main(args, orrery::profiler::cuda::open_cuda_device, *env,
                                          std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return orrery::profiler::kExitInternal;
  }
}
