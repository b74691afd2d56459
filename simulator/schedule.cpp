#include "simulator/schedule.h"

#include <algorithm>

namespace orrery {

std::vector<Block> pipeline_order(const ParallelismSpec& par, int stage) {
  const int p = par.pp, m = par.microbatches(), v = par.virtual_pipeline_stages;
  std::vector<Block> out;
  switch (par.schedule) {
    case PipelineSchedule::gpipe:
      for (int i = 0; i < m; ++i) out.push_back({true, 0, i});
      for (int i = m - 1; i >= 0; --i) out.push_back({false, 0, i});
      break;
    case PipelineSchedule::one_f_one_b: {
      const int warmup = std::min(p - stage - 1, m);
      for (int i = 0; i < warmup; ++i) out.push_back({true, 0, i});
      for (int i = 0; i < m - warmup; ++i) {
        out.push_back({true, 0, warmup + i});
        out.push_back({false, 0, i});
      }
      for (int i = m - warmup; i < m; ++i) out.push_back({false, 0, i});
      break;
    }
    case PipelineSchedule::zero_bubble_h1: {
      // 1F1B's F and B order; stage i runs the W of micro-batch j after the B of j + i,
      // so that every stage holds p micro-batches (the first stage, which holds the
      // most, as many as under 1F1B) and a B waits only for the B below it.
      const int warmup = std::min(p - stage - 1, m);
      int next_w = 0;
      auto weights_until = [&](int until) {
        while (next_w < std::min(until, m)) out.push_back({false, 0, next_w++, true});
      };
      for (int i = 0; i < warmup; ++i) out.push_back({true, 0, i});
      for (int i = 0; i < m - warmup; ++i) {
        out.push_back({true, 0, warmup + i});
        out.push_back({false, 0, i});
        weights_until(i + 1 - stage);
      }
      for (int i = m - warmup; i < m; ++i) {
        out.push_back({false, 0, i});
        weights_until(i + 1 - stage);
      }
      weights_until(m);
      break;
    }
    case PipelineSchedule::interleaved_1f1b: {
      // Megatron-LM's interleaved schedule: virtual micro-batch k runs chunk (k / p) % v
      // of micro-batch (k / (p*v)) * p + k % p; backward visits chunks in reverse.
      const int total = m * v;
      const int warmup = std::min((p - stage - 1) * 2 + (v - 1) * p, total);
      auto fwd = [&](int k) { return Block{true, (k / p) % v, (k / (p * v)) * p + k % p}; };
      auto bwd = [&](int k) {
        return Block{false, v - 1 - (k / p) % v, (k / (p * v)) * p + k % p};
      };
      for (int k = 0; k < warmup; ++k) out.push_back(fwd(k));
      for (int i = 0; i < total - warmup; ++i) {
        out.push_back(fwd(warmup + i));
        out.push_back(bwd(i));
      }
      for (int k = total - warmup; k < total; ++k) out.push_back(bwd(k));
      break;
    }
  }
  return out;
}

}  // namespace orrery
