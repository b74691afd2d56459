// The records of a measurement file (docs/calibration-format.md, "Measurement file",
// format version 1): what orrery-profile writes (profiler/measurements.h) and
// `orrery calibrate` reads (calibrate/measurements.h). One set of structs for both, so
// a field added to the format is added once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/collective.h"
#include "core/number_format.h"
#include "core/units.h"

namespace orrery {

// The formats a `gemm` entry may name, in the order orrery-profile measures and writes
// them. fp8 is E4M3 inputs with a bf16 output; tf32 is fp32 data with TF32 tensor-core
// math; fp4 GEMMs are not measured.
inline constexpr Dtype kGemmDtypes[] = {Dtype::fp32, Dtype::tf32, Dtype::bf16, Dtype::fp16,
                                        Dtype::fp8};
// Whether `d` is one of kGemmDtypes.
bool is_gemm_dtype(Dtype d);
// Bytes per input element of a GEMM in format `d` (4 for fp32 and tf32, 2 for bf16 and
// fp16, 1 for fp8). `d` must be one of kGemmDtypes (checked).
int gemm_input_bytes(Dtype d);
// Bytes per output element (fp8 writes bf16). `d` must be one of kGemmDtypes (checked).
int gemm_output_bytes(Dtype d);

// Memory-bound kernels; an entry's `bytes` is every byte read plus every byte written once.
enum class MemoryKernel { copy, elementwise, row_reduce };
inline constexpr MemoryKernel kAllMemoryKernels[] = {MemoryKernel::copy, MemoryKernel::elementwise,
                                                     MemoryKernel::row_reduce};
const char* to_string(MemoryKernel k);  // "copy", "elementwise", "row_reduce"

// How an fp8 GEMM accumulates: cuBLASLt's CUBLASLT_MATMUL_DESC_FAST_ACCUM (cuBLAS docs,
// "cublasLtMatmulDescAttributes_t": when set, "intermediate results will not periodically
// be promoted to a higher precision"; default 0). `split` is FAST_ACCUM = 0, cuBLASLt's
// default and Transformer Engine's `use_split_accumulator` (its dgrad and wgrad GEMMs);
// `fast` is FAST_ACCUM = 1. Other types have no such choice.
enum class Fp8Accumulation { fast, split };
inline constexpr Fp8Accumulation kAllFp8Accumulations[] = {Fp8Accumulation::fast,
                                                           Fp8Accumulation::split};
const char* to_string(Fp8Accumulation a);  // "fast", "split"

enum class AttentionImpl { cudnn_fused, unfused };
inline constexpr AttentionImpl kAllAttentionImpls[] = {AttentionImpl::cudnn_fused,
                                                       AttentionImpl::unfused};
const char* to_string(AttentionImpl i);  // "cudnn_fused", "unfused"

// Statistics of the timed repetitions of one measurement; p10 <= median <= p90.
struct TimingStats {
  Seconds median, p10, p90;
  bool operator==(const TimingStats&) const = default;
};

// Where and how the file was measured. `memory` is written to 0.1 GiB.
struct MeasurementProvenance {
  std::string tool, date, host, gpu;
  int gpu_count = 0, sm_count = 0;
  double sm_clock_mhz = 0, memory_clock_mhz = 0;
  Bytes memory;
  std::string compute_capability;  // "9.0"
  std::string driver, cuda_runtime, cublas, cudnn, nccl;
  std::string timing;  // "cupti" or "fake"
  int warmup = 0, repetitions = 0;
  bool operator==(const MeasurementProvenance&) const = default;
};

// `line` is the entry's line in the file it was read from; 0 for one not read from a file.
struct GemmMeasurement {
  Dtype dtype = Dtype::bf16;  // one of kGemmDtypes
  std::int64_t m = 0, n = 0, k = 0;
  TimingStats time;
  // fp8 only (split for any other type, and never written for them).
  Fp8Accumulation accumulation = Fp8Accumulation::split;
  // Under sustained load (orrery-profile --sustained): how long the case ran back to back
  // before its timed repetitions (0: an ordinary, short measurement), and the median SM
  // clock read while they ran (0: not read).
  Seconds sustained = Seconds(0.0);
  double sm_clock_mhz = 0;
  int line = 0;
  bool operator==(const GemmMeasurement&) const = default;
};

struct MemoryBoundMeasurement {
  MemoryKernel kernel = MemoryKernel::copy;
  Bytes bytes;  // bytes read + bytes written; a whole number
  TimingStats time;
  int line = 0;
  bool operator==(const MemoryBoundMeasurement&) const = default;
};

struct AttentionMeasurement {
  AttentionImpl implementation = AttentionImpl::unfused;
  Dtype dtype = Dtype::bf16;
  bool backward = false;  // the file's `pass`: forward or backward
  int batch = 0, heads = 0;
  std::int64_t seq = 0;
  int head_dim = 0;
  bool causal = false;
  TimingStats time;
  int line = 0;
  bool operator==(const AttentionMeasurement&) const = default;
};

// The launch floor: an empty kernel (the file's `kernel: empty`).
struct LaunchMeasurement {
  TimingStats time;
  int line = 0;
  bool operator==(const LaunchMeasurement&) const = default;
};

struct CollectiveMeasurement {
  CollectiveOp op = CollectiveOp::all_reduce;
  int gpus = 0, nodes = 0;
  Bytes bytes;  // nccl-tests' size column; a whole number
  TimingStats time;
  int line = 0;
  bool operator==(const CollectiveMeasurement&) const = default;
};

struct SkippedMeasurement {
  std::string what, reason;
  bool operator==(const SkippedMeasurement&) const = default;
};

struct MeasurementFile {
  std::string file;  // the name messages give it; "" for one not read from a file
  MeasurementProvenance provenance;
  std::vector<GemmMeasurement> gemm;
  std::vector<MemoryBoundMeasurement> memory_bound;
  std::vector<AttentionMeasurement> attention;
  std::vector<LaunchMeasurement> launch;
  std::vector<CollectiveMeasurement> collectives;
  std::vector<SkippedMeasurement> skipped;
  bool operator==(const MeasurementFile&) const = default;
};

}  // namespace orrery
