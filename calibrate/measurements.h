// The inputs `orrery calibrate` reads, as plain structs: the measurement file written by
// orrery-profile (docs/calibration-format.md, "Measurement file"), nccl-tests logs and
// PyTorch profiler / Kineto Chrome traces. Each reader throws InputError naming the
// file, the line (or key) and the bad value; none of them keeps a parser type in its
// interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/units.h"

namespace orrery {

// Statistics of the timed repetitions of one measurement; p10 <= median <= p90.
struct TimingStats {
  Seconds median, p10, p90;
};

struct MeasurementProvenance {
  std::string tool, date, host, gpu;
  int gpu_count = 0, sm_count = 0;
  double sm_clock_mhz = 0, memory_clock_mhz = 0;
  Bytes memory;
  std::string compute_capability, driver, cuda_runtime, cublas, cudnn, nccl, timing;
  int warmup = 0, repetitions = 0;
};

struct GemmMeasurement {
  std::string dtype;  // fp32, tf32, bf16, fp16, fp8
  std::int64_t m = 0, n = 0, k = 0;
  TimingStats time;
  int line = 0;
};

struct MemoryBoundMeasurement {
  std::string kernel;  // copy, elementwise, row_reduce
  Bytes bytes;         // bytes read + bytes written
  TimingStats time;
  int line = 0;
};

struct AttentionMeasurement {
  std::string implementation, dtype, pass;
  int batch = 0, heads = 0, seq = 0, head_dim = 0;
  bool causal = false;
  TimingStats time;
  int line = 0;
};

struct LaunchMeasurement {
  std::string kernel;
  TimingStats time;
  int line = 0;
};

struct CollectiveMeasurement {
  std::string op;  // all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, send_recv
  int gpus = 0, nodes = 0;
  Bytes bytes;  // nccl-tests' size column
  TimingStats time;
  int line = 0;
};

struct SkippedMeasurement {
  std::string what, reason;
};

struct MeasurementFile {
  std::string file;
  MeasurementProvenance provenance;
  std::vector<GemmMeasurement> gemm;
  std::vector<MemoryBoundMeasurement> memory_bound;
  std::vector<AttentionMeasurement> attention;
  std::vector<LaunchMeasurement> launch;
  std::vector<CollectiveMeasurement> collectives;
  std::vector<SkippedMeasurement> skipped;
};

// Reads a measurement file (format orrery-measurements, version 1). `file` names the
// text in messages.
MeasurementFile read_measurement_text(const std::string& text, const std::string& file);
// The file at `path` read through `env`; "cannot open the measurement file" when it
// cannot be opened.
MeasurementFile read_measurement_file(const std::string& path, Env& env = default_env());

// The collective names nccl-tests and the measurement file use, in one spelling.
// Returns false for a name that is not one of them.
bool is_collective_op(const std::string& op);

}  // namespace orrery
