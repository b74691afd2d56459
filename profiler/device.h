// The GPU as orrery-profile sees it: an interface that times one kind of work and
// returns the kernel durations of each timed repetition, or says why it could not.
// The CUDA backend (profiler/cuda/) implements it with CUPTI, cuBLASLt and NCCL;
// FakeDevice (profiler/fake_device.h) implements it for tests on any machine. Nothing
// in this header needs CUDA.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "core/collective.h"
#include "core/measurement_file.h"
#include "core/number_format.h"
#include "core/units.h"

namespace orrery::profiler {

// D (m x n) = op(A) (m x k) . B (k x n), column-major, A stored transposed ("TN").
// `dtype` is one of kGemmDtypes (core/measurement_file.h); bytes per element are
// gemm_input_bytes and gemm_output_bytes. `accumulation` applies to fp8 only (split,
// cuBLASLt's default, for every other type).
struct GemmCase {
  Dtype dtype = Dtype::bf16;
  std::int64_t m = 0, n = 0, k = 0;
  Fp8Accumulation accumulation = Fp8Accumulation::split;
  auto operator<=>(const GemmCase&) const = default;
};

// `bytes` is every byte read plus every byte written once.
struct MemoryBoundCase {
  MemoryKernel kernel = MemoryKernel::copy;
  std::int64_t bytes = 0;
};

// `dtype` is bf16 or fp16: attention is timed in 16-bit formats only.
struct AttentionCase {
  Dtype dtype = Dtype::bf16;
  bool backward = false;
  int batch = 1, heads = 1;
  std::int64_t seq = 0;
  int head_dim = 0;
  bool causal = true;
};

// `bytes` follows nccl-tests' size column: for all-gather and reduce-scatter the whole
// gathered buffer, for all-to-all each rank's whole send buffer.
struct CollectiveCase {
  CollectiveOp op = CollectiveOp::all_reduce;
  int gpus = 2;
  int nodes = 1;
  std::int64_t bytes = 0;
};

// How many times to run a case: `warmup` untimed, then `timed` timed repetitions.
struct Repetitions {
  int warmup = 5;
  int timed = 20;
};

// Why a case could not be measured.
//  out_of_memory: this case did not fit; smaller cases may.
//  unsupported:   this GPU or library cannot run this case (fp8 before sm_89, ...).
//  unavailable:   the facility is unusable here (NCCL init failed for this group size):
//                 the sweep skips the rest of its cases with the same reason.
//  device_error:  a CUDA/CUPTI/library call failed; the message names it.
enum class FailureKind { out_of_memory, unsupported, unavailable, device_error };
const char* to_string(FailureKind k);
struct Failure {
  FailureKind kind = FailureKind::device_error;
  std::string message;
};

// Kernel durations of the timed repetitions, in order, or why there are none.
using Timings = std::variant<std::vector<Seconds>, Failure>;

// A GEMM timed at the end of a sustained load: its `reps.timed` durations and the median
// of the SM clock read while they ran (0 when the clock could not be read: then
// `clock_unread` says why).
struct SustainedGemm {
  std::vector<Seconds> durations;
  double sm_clock_mhz = 0;
  std::string clock_unread;
};
using SustainedTimings = std::variant<SustainedGemm, Failure>;

// What the device says about itself: the hardware half of the provenance.
struct DeviceInfo {
  std::string gpu;                 // name of GPU 0
  int gpu_count = 0;               // GPUs on this host that may be measured
  int sm_count = 0;
  int sm_clock_mhz = 0;            // maximum SM clock the driver reports
  int memory_clock_mhz = 0;
  Bytes memory;                    // global memory of GPU 0
  Bytes l2_cache;                  // L2 of GPU 0, sizes the rotating buffers
  int cc_major = 0, cc_minor = 0;  // compute capability
  std::string driver;              // "580.65.06" or "13.0" (CUDA driver API version)
  std::string cuda_runtime;
  std::string cublas;
  std::string cudnn = "none";      // "none" when cuDNN is not used
  std::string nccl = "none";
  std::string timing;              // "cupti" or "fake"
  int nodes = 1;                   // hosts the measured GPUs span (MPI runs)
  AttentionImpl attention = AttentionImpl::unfused;
};

// Thrown by a backend's factory when there is no device to measure (no GPU, no
// driver): main turns it into a message and exit code 3.
class DeviceUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceInfo info() const = 0;
  // In an MPI run every rank runs the same sweep and only the primary (rank 0) writes.
  virtual bool is_primary() const { return true; }
  // Whether GEMMs of this type can run at all (fp8 needs compute capability 8.9+).
  virtual bool supports(Dtype d) const = 0;
  // Each returns exactly `reps.timed` durations on success.
  virtual Timings time_gemm(const GemmCase& c, Repetitions reps) = 0;
  // `reps.warmup` untimed repetitions, then the case back to back for `load`, then
  // `reps.timed` timed repetitions with the SM clock read while they run. A device that
  // cannot (the MPI device: collectives only) says unsupported.
  virtual SustainedTimings time_gemm_sustained(const GemmCase& c, Repetitions reps, Seconds load) {
    (void)c, (void)reps, (void)load;
    return Failure{FailureKind::unsupported, "this device does not run sustained GEMMs"};
  }
  virtual Timings time_memory_bound(const MemoryBoundCase& c, Repetitions reps) = 0;
  virtual Timings time_attention(const AttentionCase& c, Repetitions reps) = 0;
  // An empty kernel: the floor of any kernel's duration.
  virtual Timings time_launch(Repetitions reps) = 0;
  // From the start of the first kernel to the end of the last, over all ranks.
  virtual Timings time_collective(const CollectiveCase& c, Repetitions reps) = 0;
};

}  // namespace orrery::profiler
