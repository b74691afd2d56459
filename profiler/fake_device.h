// A Device without a GPU, for tests: durations follow a simple closed-form model with a
// fixed per-repetition pattern, and failures are scripted. Deterministic.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>

#include "profiler/device.h"

namespace orrery::profiler {

// Figures of the fake's model, round numbers chosen so tests can derive expectations by
// hand. They describe no real GPU.
struct FakeModel {
  double gemm_flop_per_s = 500e12;    // every GEMM type (fp32 runs at a tenth)
  double memory_bytes_per_s = 2e12;   // memory-bound kernels
  double attention_flop_per_s = 250e12;
  Seconds launch{2e-6};               // also the floor of every kernel
  Seconds collective_latency{10e-6};
  double link_bytes_per_s = 100e9;    // collective time = latency + bytes * busbw_factor / this
  double fp8_fast_speedup = 1.25;     // fp8 with fast accumulation runs this much faster
  // Under a sustained load the SM clock settles at this fraction of DeviceInfo's maximum
  // and GEMMs take 1 / this as long.
  double sustained_clock_fraction = 0.9;
};

// Repetition i takes model_time * (1 + kFakeJitter[i % 5]).
inline constexpr double kFakeJitter[5] = {0.0, 0.02, -0.01, 0.04, -0.02};

DeviceInfo fake_device_info(int gpus = 8);

class FakeDevice : public Device {
 public:
  explicit FakeDevice(DeviceInfo info = fake_device_info(), FakeModel model = {});

  // Scripted failures. `what` is the case's describe() text.
  FakeDevice& fail(const std::string& what, Failure f);
  // Any case whose buffers exceed `bytes` fails with out_of_memory.
  FakeDevice& memory_limit(std::int64_t bytes);
  FakeDevice& unsupported(Dtype d);
  // Collectives on `gpus` ranks fail with `unavailable` (as NCCL init would).
  FakeDevice& collectives_unavailable(int gpus);
  // Sustained GEMMs report no SM clock, with this reason.
  FakeDevice& clock_unreadable(std::string why);
  // The case returns one timing too few (a lost CUPTI record).
  FakeDevice& drop_one_timing(const std::string& what);

  // Makes this device a non-primary MPI rank (it measures but does not write).
  FakeDevice& secondary() {
    primary_ = false;
    return *this;
  }
  bool is_primary() const override { return primary_; }

  // How many times each time_* was called.
  int calls() const { return calls_; }

  DeviceInfo info() const override { return info_; }
  bool supports(Dtype d) const override { return !unsupported_.count(d); }
  Timings time_gemm(const GemmCase& c, Repetitions reps) override;
  SustainedTimings time_gemm_sustained(const GemmCase& c, Repetitions reps, Seconds load) override;
  // The load of every sustained GEMM so far, summed: what a real device would have spent.
  Seconds sustained_load() const { return sustained_load_; }
  Timings time_memory_bound(const MemoryBoundCase& c, Repetitions reps) override;
  Timings time_attention(const AttentionCase& c, Repetitions reps) override;
  Timings time_launch(Repetitions reps) override;
  Timings time_collective(const CollectiveCase& c, Repetitions reps) override;

 private:
  Timings timed(const std::string& what, std::int64_t buffer_bytes, Seconds model_time,
                Repetitions reps);

  DeviceInfo info_;
  FakeModel model_;
  std::map<std::string, Failure> failures_;
  std::set<std::string> short_;
  std::optional<std::int64_t> memory_limit_;
  std::set<Dtype> unsupported_;
  std::set<int> no_collectives_;
  std::optional<std::string> clock_unreadable_;
  Seconds sustained_load_ = Seconds(0.0);
  int calls_ = 0;
  bool primary_ = true;
};

}  // namespace orrery::profiler
