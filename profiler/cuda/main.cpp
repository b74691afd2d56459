// orrery-profile: measures this host's GPUs and writes a measurement file
// (docs/calibration-format.md). All logic is in profiler/cli.h; this picks the real
// device (single process, or one rank of an MPI job with --mpi) and environment.
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "profiler/cli.h"
#include "profiler/cuda/cuda_device.h"
#ifdef ORRERY_PROFILER_MPI
#include "profiler/cuda/mpi_device.h"
#endif

namespace {

std::unique_ptr<orrery::profiler::Device> open_device(const orrery::profiler::CliOptions& o) {
  if (o.mpi) {
#ifdef ORRERY_PROFILER_MPI
    return orrery::profiler::cuda::open_mpi_device();
#else
    throw orrery::InputError({"command line", std::nullopt}, "--mpi", "",
                             "this orrery-profile was built without MPI; install one (e.g. "
                             "libopenmpi-dev) and rebuild");
#endif
  }
  return orrery::profiler::cuda::open_cuda_device();
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto env = orrery::profiler::system_environment();
  try {
    return orrery::profiler::profile_main(args, open_device, *env, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "error: internal: " << e.what() << "\n";
    return orrery::profiler::kExitInternal;
  }
}
