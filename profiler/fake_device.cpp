#include "profiler/fake_device.h"

#include <algorithm>

#include "profiler/buffers.h"
#include "profiler/sweep.h"

namespace orrery::profiler {

DeviceInfo fake_device_info(int gpus) {
  DeviceInfo d;
  d.gpu = "Fake GPU";
  d.gpu_count = gpus;
  d.sm_count = 100;
  d.sm_clock_mhz = 1000;
  d.memory_clock_mhz = 2000;
  d.memory = Bytes(80.0 * 1024 * 1024 * 1024);
  d.l2_cache = Bytes(50.0 * 1024 * 1024);
  d.cc_major = 9;
  d.cc_minor = 0;
  d.driver = "fake";
  d.cuda_runtime = "fake";
  d.cublas = "fake";
  d.cudnn = "none";
  d.nccl = "fake";
  d.timing = "fake";
  d.attention = AttentionImpl::unfused;
  return d;
}

FakeDevice::FakeDevice(DeviceInfo info, FakeModel model) : info_(std::move(info)), model_(model) {}

FakeDevice& FakeDevice::fail(const std::string& what, Failure f) {
  failures_[what] = std::move(f);
  return *this;
}
FakeDevice& FakeDevice::memory_limit(std::int64_t bytes) {
  memory_limit_ = bytes;
  return *this;
}
FakeDevice& FakeDevice::unsupported(Dtype d) {
  unsupported_.insert(d);
  return *this;
}
FakeDevice& FakeDevice::collectives_unavailable(int gpus) {
  no_collectives_.insert(gpus);
  return *this;
}
FakeDevice& FakeDevice::drop_one_timing(const std::string& what) {
  short_.insert(what);
  return *this;
}

Timings FakeDevice::timed(const std::string& what, std::int64_t buffer_bytes, Seconds model_time,
                          Repetitions reps) {
  ++calls_;
  if (auto it = failures_.find(what); it != failures_.end()) return it->second;
  if (memory_limit_ && buffer_bytes > *memory_limit_)
    return Failure{FailureKind::out_of_memory, "fake memory limit"};
  const Seconds t = std::max(model_time, model_.launch);
  std::vector<Seconds> out;
  for (int i = 0; i < reps.timed; ++i) out.push_back(t * (1.0 + kFakeJitter[i % 5]));
  if (short_.count(what) && !out.empty()) out.pop_back();
  return out;
}

FakeDevice& FakeDevice::clock_unreadable(std::string why) {
  clock_unreadable_ = std::move(why);
  return *this;
}

namespace {

double gemm_rate(const FakeModel& m, const GemmCase& c) {
  double rate = m.gemm_flop_per_s * (c.dtype == Dtype::fp32 ? 0.1 : 1.0);
  if (c.dtype == Dtype::fp8 && c.accumulation == Fp8Accumulation::fast) rate *= m.fp8_fast_speedup;
  return rate;
}

std::int64_t gemm_bytes(const GemmCase& c) {
  return (c.m * c.k + c.k * c.n) * gemm_input_bytes(c.dtype) +
         c.m * c.n * gemm_output_bytes(c.dtype);
}

}  // namespace

Timings FakeDevice::time_gemm(const GemmCase& c, Repetitions reps) {
  const double flop = 2.0 * c.m * c.n * c.k;
  return timed(describe(c), gemm_bytes(c), Seconds(flop / gemm_rate(model_, c)), reps);
}

SustainedTimings FakeDevice::time_gemm_sustained(const GemmCase& c, Repetitions reps,
                                                 Seconds load) {
  const double flop = 2.0 * c.m * c.n * c.k;
  const double f = model_.sustained_clock_fraction;
  Timings t = timed(describe(c), gemm_bytes(c), Seconds(flop / (gemm_rate(model_, c) * f)), reps);
  if (auto* e = std::get_if<Failure>(&t)) return *e;
  sustained_load_ = sustained_load_ + load;
  SustainedGemm out;
  out.durations = std::get<std::vector<Seconds>>(std::move(t));
  if (clock_unreadable_) {
    out.clock_unread = *clock_unreadable_;
  } else {
    out.sm_clock_mhz = info_.sm_clock_mhz * f;
  }
  return out;
}

Timings FakeDevice::time_memory_bound(const MemoryBoundCase& c, Repetitions reps) {
  return timed(describe(c), c.bytes, Seconds(c.bytes / model_.memory_bytes_per_s), reps);
}

Timings FakeDevice::time_attention(const AttentionCase& c, Repetitions reps) {
  // Forward: two GEMMs of 2 s^2 d per head; backward: four.
  const double flop = (c.backward ? 8.0 : 4.0) * c.batch * c.heads * double(c.seq) *
                      double(c.seq) * c.head_dim;
  const std::int64_t bytes = std::int64_t{c.batch} * c.heads * c.seq * c.seq * 2;
  return timed(describe(c), bytes, Seconds(flop / model_.attention_flop_per_s), reps);
}

Timings FakeDevice::time_launch(Repetitions reps) {
  return timed("launch empty", 0, model_.launch, reps);
}

Timings FakeDevice::time_collective(const CollectiveCase& c, Repetitions reps) {
  if (no_collectives_.count(c.gpus)) {
    ++calls_;
    return Failure{FailureKind::unavailable, "fake NCCL init failure"};
  }
  const double factor = busbw_factor(c.op, c.gpus);
  return timed(describe(c), 2 * c.bytes,
               model_.collective_latency + Seconds(c.bytes * factor / model_.link_bytes_per_s),
               reps);
}

}  // namespace orrery::profiler
