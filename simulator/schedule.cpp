#include "simulator/schedule.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "model/pipeline.h"

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
      // Megatron-Core's combined 1F1B without pipelining (moe_a2a_overlap, validated to
      // pp 1: combined_1f1b_schedule_for_no_pipelining in megatron/core/pipeline_parallel/
      // combined_1f1b.py at d98e8a64): the first forward alone, then the forward of
      // micro-batch i + 1 paired with the backward of i, then the last backward.
      const int warmup = std::min(p - stage - 1 + (par.moe_a2a_overlap ? 1 : 0), m);
      for (int i = 0; i < warmup; ++i) out.push_back({true, 0, i});
      for (int i = 0; i < m - warmup; ++i) {
        Block f{true, 0, warmup + i};
        f.fused_with_next = f.defer_send = par.moe_a2a_overlap;
        out.push_back(f);
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
      auto input_gradient = [&](int i) {
        Block b{false, 0, i};
        b.split = true;
        out.push_back(b);
      };
      for (int i = 0; i < warmup; ++i) out.push_back({true, 0, i});
      for (int i = 0; i < m - warmup; ++i) {
        out.push_back({true, 0, warmup + i});
        input_gradient(i);
        weights_until(i + 1 - stage);
      }
      for (int i = m - warmup; i < m; ++i) {
        input_gradient(i);
        weights_until(i + 1 - stage);
      }
      weights_until(m);
      break;
    }
    case PipelineSchedule::dualpipe: {
      // The reference names its two chunks by phase: phase 0 is the direction in which
      // this rank sits h places from the entry, phase 1 the other. Ranks of the second
      // half meet the reverse direction (chunk 1) first.
      const int half = p / 2, h = std::min(stage, p - 1 - stage), per_direction = m / 2;
      const int flip = stage >= half ? 1 : 0;
      const bool middle = h == half - 1;
      int next_f[2] = {0, 0}, next_b[2] = {0, 0};
      std::deque<std::pair<int, int>> deferred;  // split backwards awaiting their W, FIFO
      auto F = [&](int phase, bool defer = false, bool fused = false) {
        const int c = phase ^ flip;
        Block b{true, c, next_f[c]++};
        b.defer_send = defer || fused;
        b.fused_with_next = fused;
        out.push_back(b);
      };
      auto B = [&](int phase, bool zero_bubble = false) {
        const int c = phase ^ flip;
        Block b{false, c, next_b[c]++};
        b.split = zero_bubble;
        if (zero_bubble) deferred.emplace_back(c, b.microbatch);
        out.push_back(b);
      };
      auto W = [&]() {
        const auto [c, mb] = deferred.front();
        deferred.pop_front();
        out.push_back({false, c, mb, true});
      };
      for (int i = 0; i < 2 * (half - h - 1); ++i) F(0);  // 1: nF0
      for (int i = 0; i <= h; ++i) {                      // 2: nF0F1
        // The reference sends this F0's output after the F1 that follows, except on the
        // middle ranks, which hold back their last F1's output instead.
        F(0, !middle);
        F(1, middle && i == h);
      }
      for (int i = 0; i < half - h - 1; ++i) {  // 3: nB1W1F1, zero bubble
        B(1, true);
        W();
        F(1);
      }
      for (int i = 0; i < per_direction - p + h + 1; ++i) {  // 4: nF0B1F1B0
        // The middle ranks run the first F0 and B1 one after the other (the reference
        // does not overlap them, to shorten the bubble).
        const bool first_middle = i == 0 && middle;
        F(0, first_middle, !first_middle);
        B(1);
        F(1, false, true);
        B(0);
      }
      for (int i = 0; i < half - h - 1; ++i) {  // 5: nB1F1B0
        B(1);
        F(1, false, true);
        B(0);
      }
      bool zero_bubble = false;  // 6: nB1B0, the second half with zero bubble
      for (int i = 0; i <= h; ++i) {
        if (i == (h + 1) / 2 && h % 2 == 1) zero_bubble = true;
        B(1, zero_bubble);
        if (i == (h + 1) / 2 && h % 2 == 0) zero_bubble = true;
        B(0, zero_bubble);
      }
      for (int i = 0; i < half - h - 1; ++i) {  // 7: nWB0, zero bubble
        W();
        B(0, true);
      }
      while (!deferred.empty()) W();  // 8: nW (h + 1 of them)
      break;
    }
    case PipelineSchedule::interleaved_1f1b: {
      // Megatron-Core's interleaved schedule (megatron/core/pipeline_parallel/schedules.py
      // at d98e8a64): forward k runs the k-th entry of the schedule table (micro-batches
      // in groups of G through every chunk, model/pipeline.h interleaved_table), backward
      // k the same micro-batch with the chunk order reversed; (p - stage - 1) * 2 +
      // (v - 1) * G warm-up forwards (get_pp_rank_microbatches).
      const int g = par.microbatch_group_size > 0 ? par.microbatch_group_size : p;
      const std::vector<std::pair<int, int>> table = interleaved_table(m, v, g);
      const int total = m * v;
      // With moe_a2a_overlap one more warm-up forward, and each steady forward paired with
      // the backward after it (get_pp_rank_microbatches and
      // combined_1f1b_schedule_for_interleaved_pipelining, schedules.py and combined_1f1b.py
      // there).
      const int warmup =
          std::min((p - stage - 1) * 2 + (v - 1) * g + (par.moe_a2a_overlap ? 1 : 0), total);
      auto fwd = [&](int k) {
        const auto [mb, chunk] = table[static_cast<std::size_t>(k)];
        return Block{true, chunk, mb};
      };
      auto bwd = [&](int k) {
        const auto [mb, chunk] = table[static_cast<std::size_t>(k)];
        return Block{false, v - 1 - chunk, mb};
      };
      for (int k = 0; k < warmup; ++k) out.push_back(fwd(k));
      for (int i = 0; i < total - warmup; ++i) {
        Block f = fwd(warmup + i);
        f.fused_with_next = f.defer_send = par.moe_a2a_overlap;
        out.push_back(f);
        out.push_back(bwd(i));
      }
      for (int k = total - warmup; k < total; ++k) out.push_back(bwd(k));
      break;
    }
  }
  return out;
}

std::vector<PipeInstruction> deepspeed_train_schedule(int p, int m, int s) {
  using K = PipeInstruction::Kind;
  std::vector<PipeInstruction> out;
  auto valid = [m](int mb) { return mb >= 0 && mb < m; };
  const bool even_stage = s % 2 == 0;
  int prev = -1;  // the micro-batch of the previous step
  for (int t = 0; t < 2 * (m + p - 1); ++t) {
    const bool even_step = t % 2 == 0;
    const bool forward = even_step == even_stage;
    int mb = 0;
    if (forward) {
      mb = (even_step ? t / 2 : (t - 1) / 2) - s / 2;
    } else {
      mb = even_step ? t / 2 - p + (s + 1) / 2 : (t - 1) / 2 - p + 1 + s / 2;
    }
    if (forward) {
      if (s > 0 && valid(mb)) out.push_back({K::recv_activation, mb});
      if (s > 0 && valid(prev)) out.push_back({K::send_grad, prev});
    } else {
      if (s < p - 1 && valid(prev)) out.push_back({K::send_activation, prev});
      if (s < p - 1 && valid(mb)) out.push_back({K::recv_grad, mb});
    }
    if (valid(mb)) out.push_back({forward ? K::forward : K::backward, mb});
    prev = mb;
  }
  return out;
}

}  // namespace orrery
