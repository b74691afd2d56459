#include "profiler/sweep.h"

#include <fmt/format.h>

#include <map>

namespace orrery::profiler {

std::string describe(const GemmCase& c) {
  return fmt::format("gemm {}{} m={} n={} k={}", to_string(c.dtype),
                     c.dtype == Dtype::fp8 ? fmt::format(" {}", to_string(c.accumulation)) : "",
                     c.m, c.n, c.k);
}
std::string describe(const MemoryBoundCase& c) {
  return fmt::format("memory_bound {} bytes={}", to_string(c.kernel), format_size(c.bytes));
}
std::string describe(const AttentionCase& c) {
  return fmt::format("attention {} {} batch={} heads={} seq={} head_dim={}{}",
                     to_string(c.dtype), c.backward ? "backward" : "forward", c.batch, c.heads,
                     c.seq, c.head_dim, c.causal ? " causal" : "");
}
std::string describe(const CollectiveCase& c) {
  return fmt::format("{} gpus={} nodes={} bytes={}", to_string(c.op), c.gpus, c.nodes,
                     format_size(c.bytes));
}

namespace {

std::string reason(const Failure& e) {
  return e.message.empty() ? std::string(to_string(e.kind))
                           : fmt::format("{}: {}", to_string(e.kind), e.message);
}

class Runner {
 public:
  Runner(const Plan& plan, Repetitions reps, Progress& progress, MeasurementFile& f)
      : total_(plan.size()), reps_(reps), progress_(progress), f_(f) {}

  // Times one case; on success returns its summary, else records it as skipped.
  template <class Call>
  std::optional<TimingStats> run(const std::string& what, Call&& call) {
    ++index_;
    Timings t = call();
    if (auto* d = std::get_if<std::vector<Seconds>>(&t)) {
      if (static_cast<int>(d->size()) != reps_.timed || d->empty()) {
        t = Failure{FailureKind::device_error,
                    fmt::format("expected {} timings, got {}", reps_.timed, d->size())};
      } else {
        const TimingStats s = summarize(*d);
        progress_.step(index_, total_, what, "median " + format_duration(s.median));
        return s;
      }
    }
    const Failure& e = std::get<Failure>(t);
    last_failure_ = e;
    skip(what, reason(e));
    return std::nullopt;
  }

  // Records a case that was not attempted.
  void skip(const std::string& what, const std::string& why, bool counts = false) {
    if (counts) ++index_;
    f_.skipped.push_back({what, why});
    progress_.step(index_, total_, what, "skipped: " + why);
  }

  // Counts a case that is not attempted and not recorded on its own.
  void pass(const std::string& what, const std::string& result) {
    progress_.step(++index_, total_, what, result);
  }

  const Failure& last_failure() const { return last_failure_; }

 private:
  std::size_t total_;
  std::size_t index_ = 0;
  Repetitions reps_;
  Progress& progress_;
  MeasurementFile& f_;
  Failure last_failure_;
};

}  // namespace

void run_sweep(Device& device, const Plan& plan, Repetitions reps, Progress& progress,
               MeasurementFile& f) {
  Runner r(plan, reps, progress, f);
  for (const auto& s : plan.skipped) f.skipped.push_back(s);

  std::map<Dtype, bool> supported;
  bool clock_unread_recorded = false;
  for (const auto& c : plan.gemm) {
    auto it = supported.find(c.dtype);
    if (it == supported.end()) {
      it = supported.emplace(c.dtype, device.supports(c.dtype)).first;
      if (!it->second) {
        const DeviceInfo info = device.info();
        f.skipped.push_back({fmt::format("gemm {}", to_string(c.dtype)),
                             fmt::format("unsupported: not available on compute capability {}.{}",
                                         info.cc_major, info.cc_minor)});
      }
    }
    if (!it->second) {
      r.pass(describe(c), "skipped: unsupported");  // recorded once per type above
      continue;
    }
    if (!plan.gemm_sustained) {
      if (auto s = r.run(describe(c), [&] { return device.time_gemm(c, reps); }))
        f.gemm.push_back({c.dtype, c.m, c.n, c.k, *s, c.accumulation});
      continue;
    }
    // Sustained: the clock rides along with the timings; a clock that could not be read
    // is recorded once, as a skipped measurement with the device's reason.
    SustainedGemm got;
    if (auto s = r.run(describe(c), [&]() -> Timings {
          SustainedTimings t = device.time_gemm_sustained(c, reps, *plan.gemm_sustained);
          if (auto* e = std::get_if<Failure>(&t)) return *e;
          got = std::get<SustainedGemm>(std::move(t));
          return got.durations;
        })) {
      f.gemm.push_back(
          {c.dtype, c.m, c.n, c.k, *s, c.accumulation, *plan.gemm_sustained, got.sm_clock_mhz});
      if (got.sm_clock_mhz <= 0 && !clock_unread_recorded) {
        f.skipped.push_back({"sm clock", got.clock_unread.empty() ? "not read" : got.clock_unread});
        clock_unread_recorded = true;
      }
    }
  }

  for (const auto& c : plan.memory_bound)
    if (auto s = r.run(describe(c), [&] { return device.time_memory_bound(c, reps); }))
      f.memory_bound.push_back({c.kernel, Bytes(double(c.bytes)), *s});

  const AttentionImpl impl = plan.attention.empty() ? AttentionImpl::unfused : device.info().attention;
  for (const auto& c : plan.attention)
    if (auto s = r.run(describe(c), [&] { return device.time_attention(c, reps); }))
      f.attention.push_back(
          {impl, c.dtype, c.backward, c.batch, c.heads, c.seq, c.head_dim, c.causal, *s});

  if (plan.launch)
    if (auto s = r.run("launch empty", [&] { return device.time_launch(reps); }))
      f.launch.push_back({*s});

  std::map<std::pair<int, int>, std::string> unavailable;  // (gpus, nodes) -> reason
  for (const auto& c : plan.collectives) {
    const auto group = std::make_pair(c.gpus, c.nodes);
    if (auto it = unavailable.find(group); it != unavailable.end()) {
      r.skip(describe(c), it->second, /*counts=*/true);
      continue;
    }
    if (auto s = r.run(describe(c), [&] { return device.time_collective(c, reps); })) {
      f.collectives.push_back({c.op, c.gpus, c.nodes, Bytes(double(c.bytes)), *s});
    } else if (r.last_failure().kind == FailureKind::unavailable) {
      unavailable[group] = reason(r.last_failure());
    }
  }
  progress.finish();
}

}  // namespace orrery::profiler
