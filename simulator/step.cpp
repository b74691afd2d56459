#include "simulator/step.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "model/compression.h"
#include "model/pipeline.h"
#include "simulator/breakdown.h"
#include "simulator/schedule.h"
#include "simulator/step_builder.h"

namespace orrery {
namespace detail {
namespace {

// Throughput and FLOP rates from the step time and the step's figures.
void set_rates(StepResult& out) {
  const double step = out.step_time.value();
  out.tokens_per_s = out.figures.tokens_per_step / step;
  out.tflops_model_per_gpu = out.figures.model_flops_per_gpu.value() / step / 1e12;
  out.tflops_hardware_per_gpu = out.figures.hardware_flops_per_gpu.value() / step / 1e12;
  out.mfu = out.tflops_model_per_gpu * 1e12 / out.peak_flops;
  out.hfu = out.tflops_hardware_per_gpu * 1e12 / out.peak_flops;
}

CollectiveOp collective_op(WireOp op) {
  switch (op) {
    case WireOp::all_reduce: return CollectiveOp::all_reduce;
    case WireOp::reduce_scatter: return CollectiveOp::reduce_scatter;
    case WireOp::all_gather: return CollectiveOp::all_gather;
    case WireOp::all_to_all: return CollectiveOp::all_to_all;
  }
  return CollectiveOp::all_reduce;
}

}  // namespace

void StepBuilder::overlap_pair(TaskGraph& g, std::pair<int, int> forward,
                               std::pair<int, int> backward) const {
  struct Sums {
    double ep = 0, compute = 0;
  };
  auto sums = [&](std::pair<int, int> range) {
    Sums out;
    for (int i = range.first; i <= range.second; ++i) {
      const Task& t = g.tasks[static_cast<size_t>(i)];
      out.ep += t.ep_s;
      out.compute += t.work_s - t.ep_s - t.tp_s - t.cp_s;
    }
    return out;
  };
  const Sums f = sums(forward), b = sums(backward);
  const double slowdown = engine_options_.compute_slowdown;
  // Each side's all-to-all is hidden up to the other side's compute; the compute that
  // covers it runs (1 - slowdown) as fast, so hiding h seconds costs h * slowdown.
  auto hide = [&](std::pair<int, int> range, double exposed, double hidden) {
    if (exposed <= 0 || hidden <= 0) return;
    for (int i = range.first; i <= range.second; ++i) {
      Task& t = g.tasks[static_cast<size_t>(i)];
      const double share = hidden * t.ep_s / exposed;
      t.ep_s -= share;
      t.work_s -= share * (1.0 - slowdown);
    }
  };
  hide(forward, f.ep, std::min(f.ep, b.compute));
  hide(backward, b.ep, std::min(b.ep, f.compute));
}

void StepBuilder::build_pipeline(TaskGraph& g) {
  const int p = p_.pp, v = p_.virtual_pipeline_stages, m = p_.microbatches();
  std::map<std::tuple<int, int, int, double>, int> cache;

  // The simulated GPUs: one per stage standing for its peers (symmetric), or every GPU.
  struct RankId {
    int t, c, d, s;
  };
  std::vector<RankId> ranks;
  if (opt_.full) {
    for (int gpu = 0; gpu < s_.cluster.gpus(); ++gpu) {
      const Layout::Coords at = L_.coords(gpu);
      ranks.push_back({at.t, at.c, at.d, at.p});
    }
  } else {
    for (int st = 0; st < p; ++st) ranks.push_back({L_.follow_t, L_.follow_c, L_.follow_d, st});
  }
  auto rank_of = [&](int t, int c, int d, int st) { return opt_.full ? L_.gpu(t, c, d, st) : st; };
  g.ranks = static_cast<int>(ranks.size());

  // Layers of each (stage, chunk), in forward order, with the embedding and head.
  const std::vector<int> stage_of =
      s_.model.is_transformer() ? stage_of_layers(s_.model, p_) : std::vector<int>{};
  const int per_chunk = s_.model.layers / (p * v);
  std::vector<std::vector<std::vector<const Layer*>>> chunk_layers(
      p, std::vector<std::vector<const Layer*>>(v));
  const Layer* embedding = nullptr;
  const Layer* head = nullptr;
  int index = 0;
  for (const Layer& l : work_.layers) {
    if (l.kind == LayerKind::embedding) {
      embedding = &l;
    } else if (l.kind == LayerKind::head) {
      head = &l;
    } else if (l.kind == LayerKind::cnn) {
      chunk_layers[0][0].push_back(&l);  // CNNs are data parallel only (validated): one stage
    } else {
      const int stage = stage_of[index];
      const int chunk = p_.first_stage_layers || p_.last_stage_layers ? 0 : (index / per_chunk) / p;
      chunk_layers[stage][chunk].push_back(&l);
      ++index;
    }
  }
  auto layers_of = [&](int stage, int chunk) {
    std::vector<const Layer*> out;
    if (stage == 0 && chunk == 0 && embedding) out.push_back(embedding);
    for (const Layer* l : chunk_layers[stage][chunk]) out.push_back(l);
    if (stage == p - 1 && chunk == v - 1 && head) out.push_back(head);
    return out;
  };
  // DualPipe: rank st's chunk 0 holds stage st, its chunk 1 stage p - 1 - st (the copy
  // that micro-batches entering at the last rank cross).
  const bool dual = p_.schedule == PipelineSchedule::dualpipe;
  const int chunks = dual ? 2 : v;
  auto block_layers = [&](int st, int chunk) {
    return dual ? layers_of(chunk == 0 ? st : p - 1 - st, 0) : layers_of(st, chunk);
  };

  std::vector<std::vector<Block>> sched(p);
  for (int st = 0; st < p; ++st) sched[st] = pipeline_order(p_, st);

  // Per rank: first and last task of each block, indexed by (rank, forward?, chunk,
  // micro-batch) in dense arrays.
  auto block_key = [&](int rank, int fwd, int chunk, int mb) {
    return ((static_cast<size_t>(rank) * 2 + static_cast<size_t>(fwd)) * chunks +
            static_cast<size_t>(chunk)) *
               m +
           static_cast<size_t>(mb);
  };
  const size_t block_count =
      ranks.size() * 2 * static_cast<size_t>(chunks) * static_cast<size_t>(m);
  std::vector<int> block_first(block_count, -1), block_last(block_count, -1);
  struct GradReady {
    int task;
    double dense_params, expert_params;
    const Layer* layer;
  };
  // Per rank, the gradients as they become final, in order: one list, or under DualPipe
  // one per chunk (each chunk's gradients are summed with the mirror rank's copy).
  std::vector<std::vector<std::vector<GradReady>>> grads(
      ranks.size(), std::vector<std::vector<GradReady>>(dual ? 2 : 1));
  // ZeRO-3 / FSDP: per rank, in schedule order, each layer's parameter gather (before its
  // forward, and before its backward when parameters were resharded) and gradient
  // reduce-scatter (after its backward). Wired into collectives once all ranks exist.
  struct FsdpNeed {
    bool gather;
    bool backward;  // a gather before the layer's backward
    int compute;    // the layer's compute task
    int prereq;     // gather: the task whose end frees a buffer (fsdp_prefetch + 1 in flight)
    double params;
    double fp8_params;  // of which fp8 GEMM weights gathered in fp8 (training.fp8)
  };
  std::vector<std::vector<FsdpNeed>> fsdp(ranks.size());
  const bool fp8_param_gather = s_.training.precision == Precision::fp8 && s_.training.fp8 &&
                                s_.training.fp8->param_allgather_fp8;
  const bool zero3 = p_.zero_stage >= 3;
  std::vector<int> last_compute(ranks.size(), -1);
  const int positions = dual ? p : p * v;
  std::vector<int> incoming(block_count, -1);  // receiving block -> its transfer
  g.tasks.reserve(ranks.size() * (static_cast<size_t>(m) * static_cast<size_t>(v) * 4 + 64));
  std::map<std::pair<int, int>, int> pair_cache;  // full mode: (gpu, gpu) -> plan

  for (size_t r = 0; r < ranks.size(); ++r) {
    const int rank = static_cast<int>(r);
    const int st = ranks[r].s;
    // The transfer of block b's output to the next position along its pipeline, issued
    // on this rank's streams after task `after`. Positions: chunk * p + stage along the
    // virtual pipeline; under DualPipe chunk 0 runs from rank 0 up and chunk 1 from rank
    // p - 1 down.
    int prev = -1;  // the last task on this rank's compute stream
    auto send_after = [&](const Block& b, int after) {
      const int q = dual ? (b.chunk == 0 ? st : p - 1 - st) : b.chunk * p + st;
      const int next_q = b.forward ? q + 1 : q - 1;
      if (next_q < 0 || next_q >= positions) return;
      const int next_stage = dual ? (b.chunk == 0 ? next_q : p - 1 - next_q) : next_q % p;
      const int next_chunk = dual ? b.chunk : next_q / p;
      const int peer = rank_of(ranks[r].t, ranks[r].c, ranks[r].d, next_stage);
      Task t;
      t.kind = TaskKind::pp_comm;
      // The sender's compute waits for the transfer unless the interleaved schedule
      // overlaps pipeline communication (spec.h, PipelineEngine).
      const bool overlapped = p_.pipeline_engine == PipelineEngine::megatron &&
                              p_.schedule == PipelineSchedule::interleaved_1f1b &&
                              s_.training.overlap_p2p;
      t.stream = overlapped ? StreamKind::pp : StreamKind::compute;
      t.rank = rank;
      t.microbatch = b.microbatch;
      if (opt_.full) {
        const int a = L_.gpu(ranks[r].t, ranks[r].c, ranks[r].d, st);
        const int bgpu = L_.gpu(ranks[r].t, ranks[r].c, ranks[r].d, next_stage);
        auto it = pair_cache.find({a, bgpu});
        if (it == pair_cache.end()) {
          const CommPlan plan =
              plan_collective(CollectiveOp::send_recv, {a, bgpu}, pp_bytes_, topo_, false);
          PlannedComm placed = place(plan, topo_);
          placed.description = fmt::format("send_recv GPU {} -> {}", a, bgpu);
          placed.traffic = traffic(plan, topo_, 1.0);
          g.comms.push_back(std::move(placed));
          it = pair_cache.emplace(std::make_pair(a, bgpu), static_cast<int>(g.comms.size()) - 1)
                   .first;
        }
        t.comm = it->second;
      } else {
        t.comm = pp_comm_index(g, st, next_stage);
      }
      const int id = g.add(t);
      for (const auto& [cls, bytes] : g.comms[t.comm].traffic) traffic_[cls] += bytes;
      g.depend(after, id);
      if (t.stream == StreamKind::compute) prev = id;
      incoming[block_key(peer, b.forward ? 1 : 0, next_chunk, b.microbatch)] = id;
    };
    // Gradients of a chunk are final after the last of its blocks that computes weight
    // gradients: a whole backward or a W.
    std::vector<size_t> last_bwd_of_chunk(chunks, 0);
    for (size_t i = 0; i < sched[st].size(); ++i) {
      const Block& b = sched[st][i];
      ORRERY_CHECK(!(opt_.op_level && (b.split || b.weight || b.fused_with_next)),
                   "split backwards and fused pairs are built from layer templates");
      if (!b.forward && !b.split) last_bwd_of_chunk[b.chunk] = i;
    }
    // DualPipe's overlapped pair: the forward's tasks, whose communication and that of the
    // backward after it are then hidden under each other's compute.
    std::optional<std::pair<int, int>> fused_forward;
    // A transfer held back until after the next block (Block::defer_send).
    std::optional<Block> pending_send;
    for (size_t bi = 0; bi < sched[st].size(); ++bi) {
      const Block& b = sched[st][bi];
      const std::vector<const Layer*> layers = block_layers(st, b.chunk);
      const bool final_bwd = !b.forward && !b.split && last_bwd_of_chunk[b.chunk] == bi;
      const int grad_list = dual ? b.chunk : 0;
      int first = -1;
      auto track_first = [&](int id) {
        if (first < 0) first = id;
      };
      const bool full_recompute = s_.training.recompute == Recompute::full;
      if (opt_.op_level) {
        // Every op of every layer in the graph.
        int after = prev;
        const size_t before = g.tasks.size();
        if (b.forward) {
          for (const Layer* l : layers)
            after = append_layer(g, cache, rank, st, *l, PassKind::forward, after, b.microbatch);
        } else {
          for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            if (full_recompute && (*it)->kind == LayerKind::transformer)
              after =
                  append_layer(g, cache, rank, st, **it, PassKind::recompute, after, b.microbatch);
            after = append_layer(g, cache, rank, st, **it, PassKind::backward, after, b.microbatch);
            if (final_bwd) {
              grads[r][grad_list].push_back(
                  {after, (*it)->params() - (*it)->expert_params(), (*it)->expert_params(), *it});
            }
          }
        }
        for (size_t i = before; i < g.tasks.size(); ++i) {
          if (g.tasks[i].comm >= 0) {
            for (const auto& [cls, bytes] : g.comms[g.tasks[i].comm].traffic)
              traffic_[cls] += bytes;
          }
        }
        if (g.tasks.size() > before) track_first(static_cast<int>(before));
        prev = after;
      } else {
        // Blocks from templates; the final backward of a chunk stays per layer so that
        // gradient buckets can leave as soon as their layers are done.
        auto add_block = [&](double work, const Parts& parts, TaskKind kind) {
          Task t;
          t.kind = kind;
          t.stream = StreamKind::compute;
          t.rank = rank;
          t.microbatch = b.microbatch;
          t.work_s = work;
          t.selective_s = parts.selective;
          t.tp_s = parts.tp;
          t.ep_s = parts.ep;
          t.cp_s = parts.cp;
          t.recompute_s = parts.recompute;
          const int id = g.add(t);
          g.depend(prev, id);
          track_first(id);
          prev = id;
          return id;
        };
        // Traffic inside templates is counted once per stage: the template's
        // collectives already count every group of the stage.
        const bool count = !opt_.full || (ranks[r].t == 0 && ranks[r].c == 0 && ranks[r].d == 0);
        auto accumulate = [&](const Template& tpl, double& work, Parts& parts) {
          work += tpl.total;
          parts.tp += tpl.parts.tp;
          parts.ep += tpl.parts.ep;
          parts.cp += tpl.parts.cp;
          parts.recompute += tpl.parts.recompute;
          parts.selective += tpl.parts.selective;
          if (count) {
            for (const auto& [cls, bytes] : tpl.traffic) traffic_[cls] += bytes;
          }
        };
        auto backward_of = [&](const Layer& l, double& work, Parts& parts) {
          if (full_recompute && l.kind == LayerKind::transformer)
            accumulate(layer_template(st, l, PassKind::recompute), work, parts);
          accumulate(layer_template(st, l, PassKind::backward), work, parts);
        };
        if (zero3) {
          // Every layer is an FSDP unit: its compute waits for its gathered weights.
          std::vector<int> done;
          auto unit = [&](const Layer& l, bool forward) {
            double work = 0;
            Parts parts;
            if (forward) {
              accumulate(layer_template(st, l, PassKind::forward), work, parts);
            } else {
              backward_of(l, work, parts);
            }
            const int id = add_block(work, parts, forward ? TaskKind::forward : TaskKind::backward);
            // The gather may start once the layer fsdp_prefetch + 1 places back is done.
            const size_t ahead = static_cast<size_t>(p_.fsdp_prefetch) + 1;
            const int prereq = done.size() >= ahead ? done[done.size() - ahead] : -1;
            const double fp8_params = fp8_param_gather ? l.fp8_weight_elems() : 0.0;
            if (forward || p_.reshard_after_forward)
              fsdp[r].push_back({true, !forward, id, prereq, l.params(), fp8_params});
            if (!forward) fsdp[r].push_back({false, true, id, -1, l.params(), 0.0});
            done.push_back(id);
          };
          if (b.forward) {
            for (const Layer* l : layers) unit(*l, true);
          } else {
            for (auto it = layers.rbegin(); it != layers.rend(); ++it) unit(**it, false);
          }
        } else if (b.forward) {
          double work = 0;
          Parts parts;
          for (const Layer* l : layers)
            accumulate(layer_template(st, *l, PassKind::forward), work, parts);
          add_block(work, parts, TaskKind::forward);
        } else if (b.split) {
          // B: the backward without its weight-gradient GEMMs.
          double work = 0;
          Parts parts;
          for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            backward_of(**it, work, parts);
            work -= weight_gradient_time(**it);
          }
          add_block(work, parts, TaskKind::backward);
        } else if (!final_bwd) {
          double work = 0;
          Parts parts;
          for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            if (b.weight) {
              work += weight_gradient_time(**it);
            } else {
              backward_of(**it, work, parts);
            }
          }
          add_block(work, parts, TaskKind::backward);
        } else {
          for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            double work = 0;
            Parts parts;
            if (b.weight) {
              work = weight_gradient_time(**it);
            } else {
              backward_of(**it, work, parts);
            }
            const int id = add_block(work, parts, TaskKind::backward);
            grads[r][grad_list].push_back(
                {id, (*it)->params() - (*it)->expert_params(), (*it)->expert_params(), *it});
          }
        }
        if (b.fused_with_next) {
          fused_forward = std::make_pair(first, prev);
        } else if (fused_forward) {
          overlap_pair(g, *fused_forward, {first, prev});
          fused_forward.reset();
        }
      }
      if (pending_send) {
        send_after(*pending_send, prev);
        pending_send.reset();
      }
      if (b.weight) continue;  // a W sends nothing and nothing waits for it but the step
      block_first[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = first;
      block_last[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = prev;
      if (b.defer_send) {
        pending_send = b;
      } else {
        send_after(b, prev);
      }
    }
    ORRERY_CHECK(!pending_send && !fused_forward, "a schedule ends with a held-back block");
    last_compute[r] = prev;
  }
  for (size_t k = 0; k < block_count; ++k) {
    if (incoming[k] >= 0) g.depend(incoming[k], block_first[k]);
  }
  // The last position's backward follows its own forward: rank p - 1's last chunk, and
  // under DualPipe also rank 0's chunk 1, where the reverse direction ends.
  for (size_t r = 0; r < ranks.size(); ++r) {
    const int rank = static_cast<int>(r);
    for (int chunk = 0; chunk < chunks; ++chunk) {
      const bool last = dual ? (chunk == 0 ? ranks[r].s == p - 1 : ranks[r].s == 0)
                             : ranks[r].s == p - 1 && chunk == v - 1;
      if (!last) continue;
      for (int mb = 0; mb < m; ++mb) {
        g.depend(block_last[block_key(rank, 1, chunk, mb)],
                 block_first[block_key(rank, 0, chunk, mb)]);
      }
    }
  }

  // Gradient reduction in buckets over the data-parallel ranks (Megatron-LM: buckets of
  // max(40M, 1M * dp) parameters by default, in backward order), then the optimizer.
  const bool distributed = p_.zero_stage >= 1;
  const double grad_bytes = state_bytes_per_param(s_.training).gradient;
  const double weight_bytes = state_bytes_per_param(s_.training).weight;
  const double bucket = s_.training.grad_bucket_params.value_or(std::max(40e6, 1e6 * p_.dp));
  const CollectiveOp reduce = distributed ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce;

  // A collective over `members` (simulated ranks, all of one stage): one task on the
  // first member's stream that waits for every member's `after` task.
  auto collective = [&](TaskKind kind, CollectiveOp op, GroupKind group,
                        const std::vector<int>& members, const std::vector<int>& after,
                        double bytes, StreamKind stream = StreamKind::dp) {
    Task t;
    t.kind = kind;
    t.stream = stream;
    t.rank = members.front();
    const RankId& id0 = ranks[members.front()];
    if (opt_.full) {
      std::vector<int> gpus;
      for (int mr : members)
        gpus.push_back(L_.gpu(ranks[mr].t, ranks[mr].c, ranks[mr].d, ranks[mr].s));
      const CommPlan plan = plan_collective(op, gpus, bytes, topo_, s_.cluster.intra_node.nvls);
      PlannedComm placed = place(plan, topo_);
      placed.description += fmt::format(", {:.2f} MiB", bytes / 1048576.0);
      placed.traffic = traffic(plan, topo_, 1.0);
      g.comms.push_back(std::move(placed));
      t.comm = static_cast<int>(g.comms.size()) - 1;
    } else {
      t.comm = comm_index(g, cache, op, group, id0.s, bytes);
    }
    const int task = g.add(t);
    for (const auto& [cls, b] : g.comms[t.comm].traffic) traffic_[cls] += b;
    for (int a : after) g.depend(a, task);
    return task;
  };

  // Data-parallel groups of simulated ranks: symmetric, each stage alone (its peers are
  // weighted copies); full, the ranks that differ only in their data-parallel index.
  auto dp_members = [&](size_t r, bool expert) {
    std::vector<int> members;
    if (!opt_.full) {
      members.push_back(static_cast<int>(r));
      return members;
    }
    const RankId& id = ranks[r];
    if (expert) {
      for (int d = id.d % p_.ep; d < L_.dp; d += p_.ep) members.push_back(rank_of(id.t, id.c, d, id.s));
    } else {  // dp x cp, as the symmetric group (simulator/groups.h)
      for (int d = 0; d < L_.dp; ++d)
        for (int c = 0; c < L_.cp; ++c) members.push_back(rank_of(id.t, c, d, id.s));
    }
    return members;
  };
  // The ranks that shard ZeRO-3 / FSDP state with rank r: every data-parallel rank, or
  // with hybrid sharding those of its node.
  const GroupKind shard_kind =
      p_.sharding == ParallelismSpec::Sharding::hybrid ? GroupKind::dp_local : GroupKind::dp;
  // The data- and context-parallel ranks of rank r's node, which hold the same weights
  // (hybrid sharding's shard group, hpZ's group).
  auto local_members = [&](size_t r) {
    std::vector<int> members;
    if (!opt_.full) {
      members.push_back(static_cast<int>(r));
      return members;
    }
    const RankId& id = ranks[r];
    const int first = (id.d / local_dp_) * local_dp_;
    for (int d = first; d < first + local_dp_; ++d)
      for (int c = 0; c < L_.cp; ++c) members.push_back(rank_of(id.t, c, d, id.s));
    return members;
  };
  const int local_shard = local_dp_ * L_.cp;  // ranks in a local group
  auto shard_members = [&](size_t r) {
    return shard_kind == GroupKind::dp ? dp_members(r, false) : local_members(r);
  };

  std::vector<std::vector<int>> dp_tasks_of(ranks.size());
  if (zero3) {
    const int shard = shard_kind == GroupKind::dp ? p_.shard_group() : local_shard;
    const int replicas = p_.shard_group() / shard;
    const double grad_bytes3 = state_bytes_per_param(s_.training).gradient;
    const double weight_bytes3 = state_bytes_per_param(s_.training).weight;
    for (size_t r = 0; r < ranks.size(); ++r) {
      const std::vector<int> members = shard_members(r);
      if (members.front() != static_cast<int>(r) || shard < 2) continue;
      for (size_t k = 0; k < fsdp[r].size(); ++k) {
        const FsdpNeed& need = fsdp[r][k];
        if (need.gather) {
          // hpZ: a backward gather reads the node's secondary copy, one collective per
          // node (none when a node holds a single data-parallel rank).
          const bool in_node = need.backward && p_.zero_hpz;
          std::vector<std::vector<int>> gather_groups;
          if (!in_node) {
            gather_groups.push_back(members);
          } else if (local_shard >= 2) {
            for (int mr : members) {
              std::vector<int> local = local_members(static_cast<size_t>(mr));
              if (local.front() == mr) gather_groups.push_back(std::move(local));
            }
          }
          for (const std::vector<int>& group : gather_groups) {
            std::vector<int> group_after;
            for (int gr : group)
              if (fsdp[gr][k].prereq >= 0) group_after.push_back(fsdp[gr][k].prereq);
            const int task = collective(TaskKind::param_gather, CollectiveOp::all_gather,
                                        in_node ? GroupKind::dp_local : shard_kind, group,
                                        group_after,
                                        (need.params - need.fp8_params) * weight_bytes3 +
                                            need.fp8_params * 1.0,
                                        StreamKind::gather);
            for (int gr : group) g.depend(task, fsdp[gr][k].compute);
          }
        } else {
          std::vector<int> after;
          for (int mr : members) after.push_back(fsdp[mr][k].compute);
          int task = collective(TaskKind::dp_comm, CollectiveOp::reduce_scatter, shard_kind,
                                members, after, need.params * grad_bytes3);
          if (replicas > 1) {
            // Hybrid: the node's shard is then all-reduced across the replicas.
            task = collective(TaskKind::dp_comm, CollectiveOp::all_reduce, GroupKind::dp_cross,
                              members, {task}, need.params * grad_bytes3 / shard);
          }
          for (int mr : members) dp_tasks_of[mr].push_back(task);
        }
      }
    }
  }
  // DualPipe: rank r's chunk 0 and chunk 1 of the rank mirrored about the middle hold the
  // same layers, so a stage's gradients are reduced over both copies' data-parallel ranks
  // in one collective, owned by the rank whose chunk 0 it is; a distributed optimizer
  // shards over that doubled group.
  const int copies = dual ? 2 : 1;
  auto mirror_of = [&](size_t r) {
    const RankId& id = ranks[r];
    return static_cast<size_t>(rank_of(id.t, id.c, id.d, p - 1 - id.s));
  };
  auto reduce_members = [&](size_t r, bool expert) {
    std::vector<int> members = dp_members(r, expert);
    if (dual) {
      const std::vector<int> mirror = dp_members(mirror_of(r), expert);
      members.insert(members.end(), mirror.begin(), mirror.end());
    }
    return members;
  };
  const GroupKind dense_kind = dual ? GroupKind::dp_mirror : GroupKind::dp;
  const GroupKind expert_kind = dual ? GroupKind::expert_dp_mirror : GroupKind::expert_dp;
  std::vector<double> local_params(ranks.size(), 0);
  std::vector<double> dense_total(ranks.size(), 0);
  // Gradient compression other than local SGD's (whose averaging is a plain reduction).
  const CompressionSpec::Scheme scheme = s_.training.compression.scheme;
  const bool compressed = scheme != CompressionSpec::Scheme::none &&
                          scheme != CompressionSpec::Scheme::local_sgd;
  std::vector<double> decode_s(ranks.size(), 0);  // decode kernels before the optimizer
  auto kernel_time = [&](Flop flops, Bytes bytes) {
    if (flops.value() <= 0 && bytes.value() <= 0) return 0.0;
    Op op;
    op.kind = flops.value() > 0 ? OpKind::gemm : OpKind::elementwise;
    op.fwd_flops = flops;
    op.fwd_read = bytes;
    return model_->op_time(op, Pass::forward).value();
  };
  for (size_t r = 0; r < ranks.size(); ++r) {
    // Bucket boundaries over the gradients this rank's collectives carry: identical for
    // every rank of a stage (and its mirror's copy).
    const std::vector<GradReady>& owned = grads[r][0];
    std::vector<std::pair<size_t, std::pair<double, double>>> buckets;  // (last grad index, params)
    double dense = 0, expert = 0;
    for (size_t i = 0; i < owned.size(); ++i) {
      dense += owned[i].dense_params;
      expert += owned[i].expert_params;
      dense_total[r] += owned[i].dense_params;
      if (dense + expert >= bucket || i + 1 == owned.size()) {
        buckets.push_back({i, {dense, expert}});
        dense = expert = 0;
      }
    }
    double all_dense = 0, all_expert = 0;  // every chunk this rank updates
    for (const std::vector<GradReady>& list : grads[r]) {
      for (const GradReady& gr : list) {
        all_dense += gr.dense_params;
        all_expert += gr.expert_params;
      }
    }
    local_params[r] =
        all_dense / (distributed ? p_.shard_group() * copies : 1) +
        all_expert / (distributed ? std::max(1, p_.shard_group() / p_.ep) * copies : 1);
    if (zero3) {
      // No buckets: per-layer reduce-scatters were wired above. The shard of every layer
      // of the stage is updated.
      double dense3 = 0, expert3 = 0;
      for (int c = 0; c < v; ++c) {
        for (const Layer* l : layers_of(ranks[r].s, c)) {
          dense3 += l->params() - l->expert_params();
          expert3 += l->expert_params();
        }
      }
      const double group = p_.zero3_group(s_.cluster.gpus_per_node);
      local_params[r] = dense3 / group + expert3 / std::max(1.0, group / p_.ep);
      continue;
    }
    size_t first = 0;
    for (const auto& [last, params] : buckets) {
      GradientShape shape[2];  // dense, expert
      for (size_t i = first; i <= last; ++i) {
        add_gradients(shape[0], *owned[i].layer, false);
        add_gradients(shape[1], *owned[i].layer, true);
      }
      first = last + 1;
      if (opt_.skip_gradient_sync) continue;  // local SGD between averagings
      for (int pass = 0; pass < 2; ++pass) {
        const bool expert_pass = pass == 1;
        const double bucket_params = expert_pass ? params.second : params.first;
        const int members_count =
            (expert_pass ? p_.shard_group() / p_.ep : p_.shard_group()) * copies;
        if (bucket_params <= 0 || members_count < 2) continue;
        const std::vector<int> members = reduce_members(r, expert_pass);
        if (members.front() != static_cast<int>(r)) continue;  // one task per group
        std::vector<int> after;
        std::vector<int> ready;  // each member's task that makes the bucket's gradients final
        for (int mr : members) {
          const int list = dual && ranks[mr].s != ranks[r].s ? 1 : 0;
          ready.push_back(grads[mr][list][last].task);
          after.push_back(s_.training.overlap_grad_reduce ? ready.back() : last_compute[mr]);
        }
        const GroupKind kind = expert_pass ? expert_kind : dense_kind;
        int task = -1;
        if (!compressed) {
          task = collective(TaskKind::dp_comm, reduce, kind, members, after,
                            bucket_params * grad_bytes);
        } else {
          // Encode kernels run on the compute stream once the bucket's gradients are final,
          // decode kernels before the optimizer; the collectives follow one another.
          const CompressedReduction cr = compress_reduction(
              s_.training.compression, shape[pass], grad_bytes, members_count, distributed);
          const double encode = kernel_time(cr.encode_flops, cr.encode_bytes);
          const double decode = kernel_time(cr.decode_flops, cr.decode_bytes);
          for (size_t i = 0; i < members.size(); ++i) {
            g.tasks[static_cast<size_t>(ready[i])].work_s += encode;
            decode_s[static_cast<size_t>(members[i])] += decode;
          }
          for (const WireStep& w : cr.steps) {
            task = collective(TaskKind::dp_comm, collective_op(w.op), kind, members,
                              task < 0 ? after : std::vector<int>{task}, w.bytes);
          }
        }
        for (int mr : members) dp_tasks_of[mr].push_back(task);
      }
    }
  }
  for (size_t r = 0; r < ranks.size(); ++r) {
    Task opt;
    opt.kind = TaskKind::optimizer;
    opt.stream = StreamKind::compute;
    opt.rank = static_cast<int>(r);
    opt.work_s = model_->optimizer_time(local_params[r]).value() + decode_s[r];
    const int opt_id = g.add(opt);
    g.depend(last_compute[r], opt_id);
    for (int d : dp_tasks_of[r]) g.depend(d, opt_id);
    optimizer_task_.push_back(opt_id);
  }
  if (distributed && !s_.training.overlap_param_gather && p_.shard_group() * copies > 1) {
    for (size_t r = 0; r < ranks.size(); ++r) {
      const std::vector<int> members = reduce_members(r, false);
      if (members.front() != static_cast<int>(r)) continue;
      std::vector<int> after;
      for (int mr : members) after.push_back(optimizer_task_[mr]);
      collective(TaskKind::param_gather, CollectiveOp::all_gather, dense_kind, members, after,
                 dense_total[r] * weight_bytes);
    }
  }
  stage_of_rank_.clear();
  for (const RankId& id : ranks) stage_of_rank_.push_back(id.s);
}

std::vector<EngineChange> StepBuilder::fault_changes() const {
  std::vector<EngineChange> out;
  for (size_t i = 0; i < s_.faults.size(); ++i) {
    const FaultSpec& f = s_.faults[i];
    auto bad = [&](const char* key, int value, const std::string& why) {
      const std::string path = fmt::format("faults[{}].{}", i, key);
      return InputError(s_.where(path), path, std::to_string(value), why);
    };
    auto window = [&](EngineChange c) {
      c.t = f.from.value();
      out.push_back(c);
      if (f.until) {
        c.t = f.until->value();
        c.factor = 1.0;
        out.push_back(c);
      }
    };
    // A leaf's spine uplinks, which a fabric of one leaf switch does not have.
    auto check_leaf = [&] {
      if (topo_.leaves() < 2)
        throw bad("leaf", f.leaf, "the fabric has a single leaf switch and no spine uplinks");
      if (f.leaf >= topo_.leaves())
        throw bad("leaf", f.leaf, fmt::format("the fabric has {} leaf switches", topo_.leaves()));
    };
    auto on_rank = [&](int rank, double factor) { window({0, rank, -1, factor}); };
    auto on_link = [&](int link, double factor) {
      if (link >= 0) window({0, -1, link, factor});
    };
    const int gpn = s_.cluster.gpus_per_node;
    switch (f.kind) {
      case FaultSpec::Kind::straggler: {
        // The stage's first simulated GPU: the stage itself when one GPU stands for it.
        const auto it = std::find(stage_of_rank_.begin(), stage_of_rank_.end(), f.stage);
        on_rank(static_cast<int>(it - stage_of_rank_.begin()), f.factor);
        break;
      }
      case FaultSpec::Kind::slow_link:
        switch (f.link) {
          case FaultSpec::Link::nic:
            for (int k = 0; k < topo_.nics_per_node(); ++k) {
              on_link(topo_.nic_up(f.node, k), f.factor);
              on_link(topo_.nic_down(f.node, k), f.factor);
            }
            break;
          case FaultSpec::Link::spine:
            check_leaf();
            on_link(topo_.spine_up(f.leaf), f.factor);
            on_link(topo_.spine_down(f.leaf), f.factor);
            break;
          case FaultSpec::Link::nvlink:
            on_link(topo_.nvlink_up(f.gpu), f.factor);
            on_link(topo_.nvlink_down(f.gpu), f.factor);
            break;
        }
        break;
      case FaultSpec::Kind::failed_link: {
        if (f.link == FaultSpec::Link::nic) {
          // Routed around (Topology::fail_nic); traffic still on it is a node with no
          // working NIC left, which then stalls.
          on_link(topo_.nic_up(f.node, f.nic), 0.0);
          on_link(topo_.nic_down(f.node, f.nic), 0.0);
          break;
        }
        check_leaf();
        // The leaf's other uplinks carry its traffic (ECMP spreads flows over them).
        const double uplinks = topo_.leaf_uplinks(f.leaf);
        const double factor = std::max(0.0, uplinks - f.lost) / uplinks;
        on_link(topo_.spine_up(f.leaf), factor);
        on_link(topo_.spine_down(f.leaf), factor);
        break;
      }
      case FaultSpec::Kind::failed_node: {
        // Every simulated rank whose group has a GPU on the node stops: synchronous
        // collectives wait for it forever. In the symmetric step a rank stands for its
        // stage, so a stage with any GPU on the node stops.
        for (size_t r = 0; r < stage_of_rank_.size(); ++r) {
          bool hit = false;
          if (opt_.full) {
            hit = static_cast<int>(r) / gpn == f.node;
          } else {
            for (int t = 0; t < L_.tp && !hit; ++t)
              for (int c = 0; c < L_.cp && !hit; ++c)
                for (int d = 0; d < L_.dp && !hit; ++d)
                  hit = L_.gpu(t, c, d, stage_of_rank_[r]) / gpn == f.node;
          }
          if (hit) on_rank(static_cast<int>(r), 0.0);
        }
        for (int k = 0; k < topo_.nics_per_node(); ++k) {
          on_link(topo_.nic_up(f.node, k), 0.0);
          on_link(topo_.nic_down(f.node, k), 0.0);
        }
        break;
      }
    }
  }
  return out;
}

StepResult StepBuilder::run() {
  StepResult out;
  out.compute_model = model_->describe();
  TaskGraph g;
  build_pipeline(g);
  EngineOptions options = engine_options_;
  options.changes = fault_changes();
  EngineResult r = run_engine(g, capacity_, options);
  const double step = r.end_s;
  out.step_time = Seconds(step);
  if (r.stalled) {
    // A failed node or link the step cannot route around: it never completes.
    out.stalled_at = Seconds(step);
    for (int st = 0; st < p_.pp; ++st) out.stages.push_back({st, {}, 0.0});
    out.figures = analyse_step(s_);
    out.tasks = g.tasks.size();
    out.events = r.events;
    out.graph = std::move(g);
    out.timeline = std::move(r);
    return out;
  }
  const TimelineReader reader(g, r);
  double busiest = -1;
  for (int st = 0; st < p_.pp; ++st) {
    StageReport sr;
    sr.stage = st;
    // The stage's first simulated GPU (in full mode every GPU of a stage is simulated;
    // the one with data-, tensor- and context-parallel index 0 is reported).
    const int rank = static_cast<int>(std::find(stage_of_rank_.begin(), stage_of_rank_.end(), st) -
                                      stage_of_rank_.begin());
    sr.breakdown = reader.breakdown(rank, step);
    const double busy = sr.breakdown.compute + sr.breakdown.recompute + sr.breakdown.optimizer;
    sr.utilization = busy / step;
    if (busy > busiest + 1e-12) {
      busiest = busy;
      out.critical_stage = st;
    }
    out.stages.push_back(sr);
  }
  out.bytes_by_link_class = traffic_;
  out.figures = analyse_step(s_);
  const GpuSpec& gpu = s_.cluster.gpu;
  out.peak_flops = gpu.peak.count(Dtype::bf16)   ? gpu.peak.at(Dtype::bf16).value()
                   : gpu.peak.count(Dtype::fp16) ? gpu.peak.at(Dtype::fp16).value()
                                                 : gpu.peak.begin()->second.value();
  set_rates(out);
  out.tasks = g.tasks.size();
  out.events = r.events;
  if (p_.zero_stage >= 1 && s_.training.overlap_param_gather && p_.shard_group() > 1) {
    out.notes.push_back(
        "distributed-optimizer parameter all-gather assumed hidden under the next step's "
        "forward (overlap_param_gather)");
  }
  if (!s_.model.is_transformer()) {
    out.notes.push_back(
        "convolutions timed as implicit GEMMs at the GEMM plateau: no measured cuDNN "
        "convolution efficiency is cited for this GPU, so the step is likely fast; calibrate "
        "before relying on it");
  }
  if (p_.pp > 1 && p_.pipeline_engine == PipelineEngine::megatron && p_.tp > 1) {
    out.notes.push_back(
        "pipeline transfers send 1/tp of the activation per GPU "
        "(Megatron-LM scatter/gather); the receiver's re-gather is not timed");
  }
  for (const PlannedComm& c : g.comms)
    for (const PlannedPhase& ph : c.phases)
      for (const PlannedFlow& f : ph.flows)
        for (const FlowLink& l : f.links) out.links.emplace(l.link, topo_.link(l.link));
  out.graph = std::move(g);
  out.timeline = std::move(r);
  return out;
}

}  // namespace detail

namespace {

void reject_unsupported(const Scenario& s) {
  (void)s;  // every model family validation accepts can be simulated
}

}  // namespace

double metric_value(const StepResult& r, const Scenario& s, Metric m) {
  switch (m) {
    case Metric::step_time_s:
      return r.step_time.value();
    case Metric::tokens_per_s:
      return r.tokens_per_s;
    case Metric::tokens_per_s_per_gpu:
      return r.tokens_per_s / s.cluster.gpus();
    case Metric::tflops_per_gpu_model:
      return r.tflops_model_per_gpu;
    case Metric::tflops_per_gpu_hardware:
      return r.tflops_hardware_per_gpu;
    case Metric::mfu:
      return r.mfu;
  }
  return 0;
}

namespace {

// Local SGD: `period` - 1 steps without gradient reduction, then one that averages. The
// figures are the mean over the period; the graph and timeline are the averaging step's.
StepResult average_period(StepResult sync, const StepResult& between, int period) {
  const double w = 1.0 / period, w_between = 1.0 - w;
  auto blend = [&](double a_sync, double a_between) { return w * a_sync + w_between * a_between; };
  sync.step_time = Seconds(blend(sync.step_time.value(), between.step_time.value()));
  const double step = sync.step_time.value();
  double busiest = -1;
  for (size_t i = 0; i < sync.stages.size(); ++i) {
    Breakdown& b = sync.stages[i].breakdown;
    const Breakdown& o = between.stages[i].breakdown;
    b.compute = blend(b.compute, o.compute);
    b.recompute = blend(b.recompute, o.recompute);
    b.tp_exposed = blend(b.tp_exposed, o.tp_exposed);
    b.ep_exposed = blend(b.ep_exposed, o.ep_exposed);
    b.cp_exposed = blend(b.cp_exposed, o.cp_exposed);
    b.pp_exposed = blend(b.pp_exposed, o.pp_exposed);
    b.dp_exposed = blend(b.dp_exposed, o.dp_exposed);
    b.bubble = blend(b.bubble, o.bubble);
    b.optimizer = blend(b.optimizer, o.optimizer);
    const double busy = b.compute + b.recompute + b.optimizer;
    sync.stages[i].utilization = busy / step;
    if (busy > busiest + 1e-12) {
      busiest = busy;
      sync.critical_stage = static_cast<int>(i);
    }
  }
  for (auto& [cls, bytes] : sync.bytes_by_link_class) {
    const auto it = between.bytes_by_link_class.find(cls);
    bytes = blend(bytes, it == between.bytes_by_link_class.end() ? 0.0 : it->second);
  }
  detail::set_rates(sync);
  sync.notes.push_back(fmt::format(
      "local SGD: parameters averaged every {} steps; figures are the mean over that period, "
      "the trace shows the averaging step",
      period));
  return sync;
}

}  // namespace


StepResult simulate_step(const Scenario& s, const SimulationOptions& options) {
  reject_unsupported(s);
  if (options.full && s.parallelism.zero_stage >= 3 &&
      s.parallelism.sharding == ParallelismSpec::Sharding::hybrid) {
    throw InputError(s.where("parallelism.sharding"), "parallelism.sharding", "hybrid",
                     "--full does not simulate hybrid sharding yet; run without --full");
  }
  using Scheme = CompressionSpec::Scheme;
  const CompressionSpec& c = s.training.compression;
  StepResult out;
  if (c.scheme == Scheme::local_sgd && !options.skip_gradient_sync) {
    SimulationOptions local = options;
    local.skip_gradient_sync = true;
    const StepResult between = detail::StepBuilder(s, local).run();
    out = average_period(detail::StepBuilder(s, options).run(), between, c.period);
  } else {
    out = detail::StepBuilder(s, options).run();
  }
  if (c.scheme == Scheme::onebit && c.warmup_steps > 0) {
    // 1-bit Adam's uncompressed warm-up steps run at the plain step's speed.
    Scenario plain = s;
    plain.training.compression.scheme = Scheme::none;
    out.warmup_step_time = detail::StepBuilder(plain, options).run().step_time;
  }
  if (!s.faults.empty()) {
    Scenario healthy = s;
    healthy.faults.clear();
    const StepResult base = simulate_step(healthy, options);
    out.baseline_step_time = base.step_time;
    for (const StageReport& st : base.stages) out.baseline_stages.push_back(st.breakdown);
  }
  if (s.training.fp8 && s.training.precision == Precision::fp8) {
    out.notes.push_back("fp8 recipe: " + describe(*s.training.fp8));
  }
  if (c.scheme != Scheme::none) {
    out.notes.push_back(fmt::format(
        "gradient compression {}: convergence factor {:g} (steps to the same target over "
        "uncompressed steps){}",
        to_string(c.scheme), c.convergence,
        s.origin.count("training.gradient_compression.convergence") ? "" : ", assumed"));
  }
  return out;
}

}  // namespace orrery
