#include "simulator/step.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <memory>
#include <tuple>

#include "calibrate/compute_model.h"
#include "core/error.h"
#include "model/pipeline.h"
#include "model/workload.h"
#include "simulator/collectives.h"

namespace orrery {
namespace {

// Megatron-Core's rank order: tensor-parallel rank fastest, then context, data, pipeline.
struct Layout {
  int tp = 1, cp = 1, dp = 1, pp = 1;
  int gpu(int t, int c, int d, int p) const { return t + tp * (c + cp * (d + dp * p)); }
};

enum class GroupKind { tp, dp, expert_dp, ep };

// A collective's group for the simulated GPU of `stage` and the sibling groups that run
// the same collective at the same time on the GPUs that are not simulated.
struct GroupSet {
  std::vector<int> group;
  std::vector<std::vector<int>> siblings;
};

GroupSet groups_of(GroupKind kind, int stage, const Layout& L, int ep) {
  GroupSet out;
  auto add = [&](std::vector<int> g, bool own) {
    if (own) {
      out.group = std::move(g);
    } else {
      out.siblings.push_back(std::move(g));
    }
  };
  switch (kind) {
    case GroupKind::tp:
      for (int d = 0; d < L.dp; ++d)
        for (int c = 0; c < L.cp; ++c) {
          std::vector<int> g;
          for (int t = 0; t < L.tp; ++t) g.push_back(L.gpu(t, c, d, stage));
          add(std::move(g), d == 0 && c == 0);
        }
      break;
    case GroupKind::dp:
      for (int t = 0; t < L.tp; ++t)
        for (int c = 0; c < L.cp; ++c) {
          std::vector<int> g;
          for (int d = 0; d < L.dp; ++d) g.push_back(L.gpu(t, c, d, stage));
          add(std::move(g), t == 0 && c == 0);
        }
      break;
    case GroupKind::expert_dp:  // ranks holding the same experts: d = e + ep * j
      for (int t = 0; t < L.tp; ++t)
        for (int e = 0; e < ep; ++e) {
          std::vector<int> g;
          for (int d = e; d < L.dp; d += ep) g.push_back(L.gpu(t, 0, d, stage));
          add(std::move(g), t == 0 && e == 0);
        }
      break;
    case GroupKind::ep:  // consecutive data-parallel ranks split the experts
      for (int t = 0; t < L.tp; ++t)
        for (int j = 0; j < L.dp / ep; ++j) {
          std::vector<int> g;
          for (int e = 0; e < ep; ++e) g.push_back(L.gpu(t, 0, j * ep + e, stage));
          add(std::move(g), t == 0 && j == 0);
        }
      break;
  }
  return out;
}

GroupSet pipeline_pair(int from, int to, const Layout& L) {
  GroupSet out;
  for (int d = 0; d < L.dp; ++d)
    for (int c = 0; c < L.cp; ++c)
      for (int t = 0; t < L.tp; ++t) {
        std::vector<int> g = {L.gpu(t, c, d, from), L.gpu(t, c, d, to)};
        if (d == 0 && c == 0 && t == 0) {
          out.group = std::move(g);
        } else {
          out.siblings.push_back(std::move(g));
        }
      }
  return out;
}

// What a comm task moves, for the traffic report: bytes per link class of one instance
// of the plan, times the groups that run it.
std::map<LinkClass, double> traffic_of(const CommPlan& plan, const Topology& topo, double copies) {
  std::map<LinkClass, double> out;
  std::vector<int> links;
  for (const CommPhase& ph : plan.phases) {
    for (const Transfer& t : ph.transfers) {
      links.clear();
      transfer_links(t, topo, links);
      bool nic = false, spine = false, nvlink = false;
      for (int l : links) {
        const LinkClass c = topo.link(l).cls;
        nic = nic || c == LinkClass::nic;
        spine = spine || c == LinkClass::spine;
        nvlink = nvlink || c == LinkClass::nvlink;
      }
      if (nvlink) out[LinkClass::nvlink] += t.bytes * copies;
      if (nic) out[LinkClass::nic] += t.bytes * copies;
      if (spine) out[LinkClass::spine] += t.bytes * copies;
    }
  }
  return out;
}

// Time attributes of a compute task beyond plain compute (seconds at full speed).
struct Parts {
  double tp = 0, ep = 0, recompute = 0, selective = 0;
};

class Builder {
 public:
  Builder(const Scenario& s, const SimulationOptions& opt)
      : s_(s),
        p_(s.parallelism),
        opt_(opt),
        topo_(s.cluster),
        model_(make_roofline_model(s)) {
    L_ = {p_.tp, p_.cp, p_.dp, p_.pp};
    Shard shard;
    shard.microbatch = p_.microbatch;
    shard.tp = p_.tp;
    shard.sequence_parallel = p_.sequence_parallel;
    shard.cp = p_.cp;
    shard.ep = p_.ep;
    work_ = build_workload(s.model, s.training, shard);
    for (int i = 0; i < topo_.link_count(); ++i) capacity_.push_back(topo_.link(i).capacity.value());
    act_bytes_ = activation_bytes(s.training.precision);
    const double tokens = static_cast<double>(p_.microbatch) * s.model.seq_len / p_.cp;
    const double h = static_cast<double>(s.model.hidden);
    tp_bytes_ = tokens * h * act_bytes_;  // the full activation a TP collective moves
    pp_bytes_ = tokens * h * act_bytes_;
    if (p_.pipeline_engine == PipelineEngine::megatron) pp_bytes_ /= p_.tp;  // scatter/gather
    if (s.model.moe) ep_bytes_ = tokens * s.model.moe->top_k * h * act_bytes_;
    engine_options_.compute_slowdown = s.simulation.compute_slowdown;
    engine_options_.comm_slowdown = s.simulation.comm_slowdown;
  }

  StepResult run();

 private:
  struct Template {
    double total = 0;
    Parts parts;
    std::map<LinkClass, double> traffic;
  };
  enum class PassKind { forward, backward, recompute };

  // --- communication plans ------------------------------------------------------
  int comm_index(TaskGraph& g, std::map<std::tuple<int, int, int, double>, int>& cache,
                 CollectiveOp op, GroupKind kind, int stage, double bytes) {
    const auto key = std::make_tuple(static_cast<int>(op), static_cast<int>(kind), stage, bytes);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    const GroupSet gs = groups_of(kind, stage, L_, p_.ep);
    const CommPlan plan =
        plan_collective(op, gs.group, bytes, topo_, s_.cluster.intra_node.nvls);
    PlannedComm placed = place(plan, topo_, gs.siblings);
    placed.description += fmt::format(", {:.2f} MiB", bytes / 1048576.0);
    placed.traffic = traffic_of(plan, topo_, static_cast<double>(gs.siblings.size() + 1));
    g.comms.push_back(std::move(placed));
    const int index = static_cast<int>(g.comms.size()) - 1;
    cache.emplace(key, index);
    return index;
  }

  int pp_comm_index(TaskGraph& g, int from, int to) {
    const auto key = std::make_pair(from, to);
    auto it = pp_cache_.find(key);
    if (it != pp_cache_.end()) return it->second;
    const GroupSet gs = pipeline_pair(from, to, L_);
    const CommPlan plan = plan_collective(CollectiveOp::send_recv, gs.group, pp_bytes_, topo_, false);
    PlannedComm placed = place(plan, topo_, gs.siblings);
    placed.description = fmt::format("send_recv stage {} -> {}, {:.2f} MiB", from, to,
                                     pp_bytes_ / 1048576.0);
    placed.traffic = traffic_of(plan, topo_, static_cast<double>(gs.siblings.size() + 1));
    g.comms.push_back(std::move(placed));
    const int index = static_cast<int>(g.comms.size()) - 1;
    pp_cache_.emplace(key, index);
    return index;
  }

  // The collective that a comm point turns into for a pass; none when it is a no-op.
  bool comm_for(CommPoint cp, bool forward, CollectiveOp& op, GroupKind& kind,
                double& bytes) const {
    const bool sp = p_.sequence_parallel;
    switch (cp) {
      case CommPoint::none:
        return false;
      case CommPoint::tp_gather:  // column-parallel input: AG (SP) fwd; RS or AR of grads bwd
        if (p_.tp == 1) return false;
        if (forward && !sp) return false;
        op = forward ? CollectiveOp::all_gather
                     : (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce);
        kind = GroupKind::tp;
        bytes = tp_bytes_;
        return true;
      case CommPoint::tp_reduce:  // row-parallel output: RS (SP) or AR fwd; AG (SP) bwd
        if (p_.tp == 1) return false;
        if (!forward && !sp) return false;
        op = forward ? (sp ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce)
                     : CollectiveOp::all_gather;
        kind = GroupKind::tp;
        bytes = tp_bytes_;
        return true;
      case CommPoint::ep_dispatch:
      case CommPoint::ep_combine:
        if (p_.ep == 1) return false;
        op = CollectiveOp::all_to_all;
        kind = GroupKind::ep;
        bytes = ep_bytes_;
        return true;
    }
    return false;
  }

  // --- one layer, op by op --------------------------------------------------------
  // Appends the tasks of one pass of `layer` on `rank` (GPU of `stage`), after task
  // `after`; returns the last task. Accumulates compute seconds into `parts`.
  int append_layer(TaskGraph& g, std::map<std::tuple<int, int, int, double>, int>& cache,
                   int rank, int stage, const Layer& layer, PassKind pass, int after,
                   int microbatch) {
    struct Item {
      bool comm = false;
      bool overlap = false;  // a collective the next compute does not wait for
      double work = 0, selective = 0;
      CollectiveOp op = CollectiveOp::all_reduce;
      GroupKind kind = GroupKind::tp;
      double bytes = 0;
    };
    std::vector<Item> items;
    auto add_compute = [&](double t, double sel, bool separate = false) {
      if (separate || items.empty() || items.back().comm) items.push_back({});
      items.back().work += t;
      items.back().selective += sel;
    };
    auto add_comm = [&](CommPoint cp, bool forward, bool overlap = false) {
      Item it;
      if (!comm_for(cp, forward, it.op, it.kind, it.bytes)) return;
      it.comm = true;
      it.overlap = overlap || (s_.training.tp_comm_overlap && it.kind == GroupKind::tp);
      items.push_back(it);
    };
    const bool forward = pass != PassKind::backward;
    if (forward) {
      for (const Op& op : layer.ops) {
        add_comm(op.comm_before, true);
        add_compute(model_->op_time(op, Pass::forward).value(), 0);
        add_comm(op.comm_after, true);
      }
    } else {
      const bool selective = s_.training.recompute == Recompute::selective;
      for (auto it = layer.ops.rbegin(); it != layer.ops.rend(); ++it) {
        add_comm(it->comm_after, false);
        const double sel =
            selective && it->selective ? model_->op_time(*it, Pass::forward).value() : 0;
        const double bwd = model_->op_time(*it, Pass::backward).value();
        const bool regather = it->comm_before == CommPoint::tp_gather && p_.sequence_parallel &&
                              p_.tp > 1;
        if (regather) {
          // Sequence parallelism keeps this GEMM's input sharded: Megatron-LM gathers it
          // again for the weight gradient, overlapped with the data-gradient GEMM
          // (Korthikanti et al. 2022, section 4.2.2). The two GEMMs take half each.
          add_comm(CommPoint::tp_gather, true, true);
          add_compute(bwd / 2 + sel, sel, true);
          add_compute(bwd / 2, 0, true);
        } else {
          add_compute(bwd + sel, sel);
        }
        add_comm(it->comm_before, false);
      }
    }
    const TaskKind compute_kind = pass == PassKind::forward    ? TaskKind::forward
                                  : pass == PassKind::backward ? TaskKind::backward
                                                               : TaskKind::recompute;
    int prev = after;
    // An overlapped collective: the compute right after it does not wait for it; any
    // later task does.
    int pending = -1;
    bool skipped_one = false;
    auto add_task = [&](Task t) {
      const int id = g.add(t);
      g.depend(prev, id);
      if (pending >= 0 && (is_comm(t.kind) || skipped_one)) {
        g.depend(pending, id);
        pending = -1;
      } else if (pending >= 0) {
        skipped_one = true;
      }
      return id;
    };
    for (const Item& it : items) {
      Task t;
      t.rank = rank;
      t.microbatch = microbatch;
      if (it.comm) {
        t.kind = it.kind == GroupKind::ep ? TaskKind::ep_comm : TaskKind::tp_comm;
        t.stream = it.kind == GroupKind::ep ? StreamKind::ep : StreamKind::tp;
        t.comm = comm_index(g, cache, it.op, it.kind, stage, it.bytes);
        const int id = add_task(t);
        if (it.overlap) {
          pending = id;
          skipped_one = false;
          continue;  // `prev` stays the compute before it
        }
        prev = id;
      } else {
        t.kind = compute_kind;
        t.stream = StreamKind::compute;
        t.work_s = it.work;
        t.selective_s = it.selective;
        prev = add_task(t);
      }
    }
    if (pending >= 0) {
      // A trailing overlapped collective still finishes before the layer ends.
      Task t;
      t.rank = rank;
      t.kind = compute_kind;
      t.stream = StreamKind::compute;
      const int id = g.add(t);
      g.depend(prev, id);
      g.depend(pending, id);
      prev = id;
    }
    return prev;
  }

  // Level 1: one pass of one layer kind on the stage's GPU, simulated alone.
  const Template& layer_template(int stage, const Layer& layer, PassKind pass) {
    // Identical layers give identical templates; the TP/EP groups of all stages have the
    // same shape when they sit inside one node, so the stage only matters otherwise.
    const int stage_key = groups_inside_node() ? 0 : stage;
    const auto key = std::make_tuple(stage_key, layer_signature(layer), static_cast<int>(pass));
    auto it = templates_.find(key);
    if (it != templates_.end()) return it->second;
    TaskGraph g;
    g.ranks = 1;
    std::map<std::tuple<int, int, int, double>, int> cache;
    append_layer(g, cache, 0, stage, layer, pass, -1, 0);
    const EngineResult r = run_engine(g, capacity_, engine_options_);
    Template tpl;
    tpl.total = r.end_s;
    double compute = 0;
    for (size_t i = 0; i < g.tasks.size(); ++i) {
      const Task& t = g.tasks[i];
      if (!is_comm(t.kind)) {
        compute += r.timing[i].end - r.timing[i].start;
        tpl.parts.selective += t.selective_s;
      } else {
        for (const auto& [cls, b] : g.comms[t.comm].traffic) tpl.traffic[cls] += b;
      }
    }
    // The pass's idle time on the compute stream is the collectives it waited for.
    const double exposed = std::max(0.0, r.end_s - compute);
    double tp_time = 0, ep_time = 0;
    for (size_t i = 0; i < g.tasks.size(); ++i) {
      const double d = r.timing[i].end - r.timing[i].start;
      if (g.tasks[i].kind == TaskKind::tp_comm) tp_time += d;
      if (g.tasks[i].kind == TaskKind::ep_comm) ep_time += d;
    }
    if (tp_time + ep_time > 0) {
      tpl.parts.tp = exposed * tp_time / (tp_time + ep_time);
      tpl.parts.ep = exposed * ep_time / (tp_time + ep_time);
    }
    if (pass == PassKind::recompute) tpl.parts.recompute = compute;
    return templates_.emplace(key, std::move(tpl)).first->second;
  }

  bool groups_inside_node() const {
    const int g = s_.cluster.gpus_per_node;
    return p_.tp <= g && g % p_.tp == 0 && (p_.ep == 1 || p_.tp * p_.ep <= g);
  }

  static int layer_signature(const Layer& l) {
    switch (l.kind) {
      case LayerKind::embedding: return 0;
      case LayerKind::head: return 1;
      case LayerKind::cnn: return 2;
      case LayerKind::transformer: return l.moe ? 4 : 3;
    }
    return 5;
  }

  // --- level 2 ----------------------------------------------------------------------
  struct Block {
    bool forward = true;
    int chunk = 0;
    int microbatch = 0;
  };
  std::vector<Block> schedule(int stage) const;
  void build_pipeline(TaskGraph& g);
  Breakdown breakdown(const TaskGraph& g, const EngineResult& r, const std::vector<int>& pred_start,
                      const std::vector<int>& preds, int rank, double step) const;

  const Scenario& s_;
  const ParallelismSpec& p_;
  SimulationOptions opt_;
  Topology topo_;
  std::unique_ptr<ComputeModel> model_;
  Layout L_;
  Workload work_;
  std::vector<double> capacity_;
  EngineOptions engine_options_;
  double act_bytes_ = 2, tp_bytes_ = 0, pp_bytes_ = 0, ep_bytes_ = 0;
  std::map<std::tuple<int, int, int>, Template> templates_;
  std::map<std::pair<int, int>, int> pp_cache_;
  std::vector<int> optimizer_task_;
  std::vector<int> stage_of_rank_;
  std::map<LinkClass, double> traffic_;
};

std::vector<Builder::Block> Builder::schedule(int stage) const {
  const int p = p_.pp, m = p_.microbatches(), v = p_.virtual_pipeline_stages;
  std::vector<Block> out;
  switch (p_.schedule) {
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
    case PipelineSchedule::interleaved_1f1b: {
      // Megatron-LM's interleaved schedule: virtual micro-batch k runs chunk (k / p) % v
      // of micro-batch (k / (p*v)) * p + k % p; backward visits chunks in reverse.
      const int total = m * v;
      const int warmup = std::min((p - stage - 1) * 2 + (v - 1) * p, total);
      auto fwd = [&](int k) { return Block{true, (k / p) % v, (k / (p * v)) * p + k % p}; };
      auto bwd = [&](int k) { return Block{false, v - 1 - (k / p) % v, (k / (p * v)) * p + k % p}; };
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

void Builder::build_pipeline(TaskGraph& g) {
  const int p = p_.pp, v = p_.virtual_pipeline_stages, m = p_.microbatches();
  std::map<std::tuple<int, int, int, double>, int> cache;

  // The simulated GPUs: one per stage standing for its peers (symmetric), or every GPU.
  struct RankId {
    int t, c, d, s;
  };
  std::vector<RankId> ranks;
  if (opt_.full) {
    for (int gpu = 0; gpu < s_.cluster.gpus(); ++gpu) {
      const int t = gpu % L_.tp, c = (gpu / L_.tp) % L_.cp, d = (gpu / (L_.tp * L_.cp)) % L_.dp;
      ranks.push_back({t, c, d, gpu / (L_.tp * L_.cp * L_.dp)});
    }
  } else {
    for (int st = 0; st < p; ++st) ranks.push_back({0, 0, 0, st});
  }
  auto rank_of = [&](int t, int c, int d, int st) {
    return opt_.full ? L_.gpu(t, c, d, st) : st;
  };
  g.ranks = static_cast<int>(ranks.size());

  // Layers of each (stage, chunk), in forward order, with the embedding and head.
  const std::vector<int> stage_of = stage_of_layers(s_.model, p_);
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

  std::vector<std::vector<Block>> sched(p);
  for (int st = 0; st < p; ++st) sched[st] = schedule(st);

  // Per rank: first and last task of each block, indexed by (rank, forward?, chunk,
  // micro-batch) in dense arrays.
  auto block_key = [&](int rank, int fwd, int chunk, int mb) {
    return ((static_cast<size_t>(rank) * 2 + static_cast<size_t>(fwd)) * v + static_cast<size_t>(chunk)) * m +
           static_cast<size_t>(mb);
  };
  const size_t block_count = ranks.size() * 2 * static_cast<size_t>(v) * static_cast<size_t>(m);
  std::vector<int> block_first(block_count, -1), block_last(block_count, -1);
  struct GradReady {
    int task;
    double dense_params, expert_params;
  };
  std::vector<std::vector<GradReady>> grads(ranks.size());
  std::vector<int> last_compute(ranks.size(), -1);
  const int positions = p * v;
  std::vector<int> incoming(block_count, -1);  // receiving block -> its transfer
  g.tasks.reserve(ranks.size() * (static_cast<size_t>(m) * static_cast<size_t>(v) * 4 + 64));
  std::map<std::pair<int, int>, int> pair_cache;          // full mode: (gpu, gpu) -> plan

  for (size_t r = 0; r < ranks.size(); ++r) {
    const int rank = static_cast<int>(r);
    const int st = ranks[r].s;
    std::vector<int> last_bwd_of_chunk(v, -1);
    for (const Block& b : sched[st]) {
      if (!b.forward) last_bwd_of_chunk[b.chunk] = b.microbatch;
    }
    int prev = -1;
    for (const Block& b : sched[st]) {
      const std::vector<const Layer*> layers = layers_of(st, b.chunk);
      const bool final_bwd = !b.forward && last_bwd_of_chunk[b.chunk] == b.microbatch;
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
              after = append_layer(g, cache, rank, st, **it, PassKind::recompute, after, b.microbatch);
            after = append_layer(g, cache, rank, st, **it, PassKind::backward, after, b.microbatch);
            if (final_bwd) {
              grads[r].push_back({after, (*it)->params() - (*it)->expert_params(),
                                  (*it)->expert_params()});
            }
          }
        }
        for (size_t i = before; i < g.tasks.size(); ++i) {
          if (g.tasks[i].comm >= 0) {
            for (const auto& [cls, bytes] : g.comms[g.tasks[i].comm].traffic) traffic_[cls] += bytes;
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
        if (b.forward) {
          double work = 0;
          Parts parts;
          for (const Layer* l : layers) accumulate(layer_template(st, *l, PassKind::forward), work, parts);
          add_block(work, parts, TaskKind::forward);
        } else if (!final_bwd) {
          double work = 0;
          Parts parts;
          for (auto it = layers.rbegin(); it != layers.rend(); ++it) backward_of(**it, work, parts);
          add_block(work, parts, TaskKind::backward);
        } else {
          for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
            double work = 0;
            Parts parts;
            backward_of(**it, work, parts);
            const int id = add_block(work, parts, TaskKind::backward);
            grads[r].push_back({id, (*it)->params() - (*it)->expert_params(),
                                (*it)->expert_params()});
          }
        }
      }
      block_first[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = first;
      block_last[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = prev;

      // The transfer to the next position along the virtual pipeline (position
      // q = chunk * p + stage), issued right after the block so that stream order holds.
      const int q = b.chunk * p + st;
      const int next_q = b.forward ? q + 1 : q - 1;
      if (next_q >= 0 && next_q < positions) {
        const int next_stage = next_q % p, next_chunk = next_q / p;
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
            const CommPlan plan = plan_collective(CollectiveOp::send_recv, {a, bgpu}, pp_bytes_, topo_, false);
            PlannedComm placed = place(plan, topo_);
            placed.description = fmt::format("send_recv GPU {} -> {}", a, bgpu);
            placed.traffic = traffic_of(plan, topo_, 1.0);
            g.comms.push_back(std::move(placed));
            it = pair_cache.emplace(std::make_pair(a, bgpu), static_cast<int>(g.comms.size()) - 1).first;
          }
          t.comm = it->second;
        } else {
          t.comm = pp_comm_index(g, st, next_stage);
        }
        const int id = g.add(t);
        for (const auto& [cls, bytes] : g.comms[t.comm].traffic) traffic_[cls] += bytes;
        g.depend(prev, id);
        if (t.stream == StreamKind::compute) prev = id;
        incoming[block_key(peer, b.forward ? 1 : 0, next_chunk, b.microbatch)] = id;
      }
    }
    last_compute[r] = prev;
  }
  for (size_t k = 0; k < block_count; ++k) {
    if (incoming[k] >= 0) g.depend(incoming[k], block_first[k]);
  }
  // The last position's backward follows its own forward.
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (ranks[r].s != p - 1) continue;
    const int rank = static_cast<int>(r);
    for (int mb = 0; mb < m; ++mb) {
      g.depend(block_last[block_key(rank, 1, v - 1, mb)], block_first[block_key(rank, 0, v - 1, mb)]);
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
  auto collective = [&](TaskKind kind, CollectiveOp op, GroupKind group, const std::vector<int>& members,
                        const std::vector<int>& after, double bytes) {
    Task t;
    t.kind = kind;
    t.stream = StreamKind::dp;
    t.rank = members.front();
    const RankId& id0 = ranks[members.front()];
    if (opt_.full) {
      std::vector<int> gpus;
      for (int mr : members) gpus.push_back(L_.gpu(ranks[mr].t, ranks[mr].c, ranks[mr].d, ranks[mr].s));
      const CommPlan plan = plan_collective(op, gpus, bytes, topo_, s_.cluster.intra_node.nvls);
      PlannedComm placed = place(plan, topo_);
      placed.description += fmt::format(", {:.2f} MiB", bytes / 1048576.0);
      placed.traffic = traffic_of(plan, topo_, 1.0);
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
    } else {
      for (int d = 0; d < L_.dp; ++d) members.push_back(rank_of(id.t, id.c, d, id.s));
    }
    return members;
  };

  std::vector<std::vector<int>> dp_tasks_of(ranks.size());
  std::vector<double> local_params(ranks.size(), 0);
  std::vector<double> dense_total(ranks.size(), 0);
  for (size_t r = 0; r < ranks.size(); ++r) {
    // Bucket boundaries: identical for every rank of a stage.
    std::vector<std::pair<size_t, std::pair<double, double>>> buckets;  // (last grad index, params)
    double dense = 0, expert = 0, all_dense = 0, all_expert = 0;
    for (size_t i = 0; i < grads[r].size(); ++i) {
      dense += grads[r][i].dense_params;
      expert += grads[r][i].expert_params;
      all_dense += grads[r][i].dense_params;
      all_expert += grads[r][i].expert_params;
      if (dense + expert >= bucket || i + 1 == grads[r].size()) {
        buckets.push_back({i, {dense, expert}});
        dense = expert = 0;
      }
    }
    dense_total[r] = all_dense;
    local_params[r] = all_dense / (distributed ? p_.shard_group() : 1) +
                      all_expert / (distributed ? std::max(1, p_.shard_group() / p_.ep) : 1);
    for (const auto& [last, params] : buckets) {
      for (int pass = 0; pass < 2; ++pass) {
        const bool expert_pass = pass == 1;
        const double bucket_params = expert_pass ? params.second : params.first;
        const int members_count = expert_pass ? p_.dp / p_.ep : p_.dp;
        if (bucket_params <= 0 || members_count < 2) continue;
        const std::vector<int> members = dp_members(r, expert_pass);
        if (members.front() != static_cast<int>(r)) continue;  // one task per group
        std::vector<int> after;
        for (int mr : members) {
          after.push_back(s_.training.overlap_grad_reduce ? grads[mr][last].task : last_compute[mr]);
        }
        const int task = collective(TaskKind::dp_comm, reduce,
                                    expert_pass ? GroupKind::expert_dp : GroupKind::dp, members,
                                    after, bucket_params * grad_bytes);
        for (int mr : members) dp_tasks_of[mr].push_back(task);
      }
    }
  }
  for (size_t r = 0; r < ranks.size(); ++r) {
    Task opt;
    opt.kind = TaskKind::optimizer;
    opt.stream = StreamKind::compute;
    opt.rank = static_cast<int>(r);
    opt.work_s = model_->optimizer_time(local_params[r]).value();
    const int opt_id = g.add(opt);
    g.depend(last_compute[r], opt_id);
    for (int d : dp_tasks_of[r]) g.depend(d, opt_id);
    optimizer_task_.push_back(opt_id);
  }
  if (distributed && !s_.training.overlap_param_gather && p_.dp > 1) {
    for (size_t r = 0; r < ranks.size(); ++r) {
      const std::vector<int> members = dp_members(r, false);
      if (members.front() != static_cast<int>(r)) continue;
      std::vector<int> after;
      for (int mr : members) after.push_back(optimizer_task_[mr]);
      collective(TaskKind::param_gather, CollectiveOp::all_gather, GroupKind::dp, members, after,
                 dense_total[r] * weight_bytes);
    }
  }
  stage_of_rank_.clear();
  for (const RankId& id : ranks) stage_of_rank_.push_back(id.s);
}

// Where the compute stream of `rank` spent the step: busy time by kind, and each idle
// gap charged to the dependency it waited for.
Breakdown Builder::breakdown(const TaskGraph& g, const EngineResult& r,
                             const std::vector<int>& pred_start, const std::vector<int>& preds,
                             int rank, double step) const {
  Breakdown b;
  double prev_end = 0;
  for (size_t i = 0; i < g.tasks.size(); ++i) {
    const Task& t = g.tasks[i];
    if (t.rank != rank || t.stream != StreamKind::compute) continue;
    const double start = r.timing[i].start, end = r.timing[i].end;
    const double gap = start - prev_end;
    if (gap > 0) {
      int blocker = -1;
      for (int k = pred_start[i]; k < pred_start[i + 1]; ++k) {
        const int pd = preds[k];
        if (blocker < 0 || r.timing[pd].end > r.timing[blocker].end) blocker = pd;
      }
      const TaskKind k = blocker >= 0 ? g.tasks[blocker].kind : TaskKind::forward;
      if (blocker >= 0 && k == TaskKind::pp_comm) {
        const double d = r.timing[blocker].end - r.timing[blocker].start;
        b.pp_exposed += std::min(gap, d);
        b.bubble += gap - std::min(gap, d);
      } else if (blocker >= 0 && (k == TaskKind::dp_comm || k == TaskKind::param_gather)) {
        b.dp_exposed += gap;
      } else if (blocker >= 0 && k == TaskKind::tp_comm) {
        b.tp_exposed += gap;
      } else if (blocker >= 0 && k == TaskKind::ep_comm) {
        b.ep_exposed += gap;
      } else {
        b.bubble += gap;
      }
    }
    const double d = end - start;
    const double scale = t.work_s > 0 ? d / t.work_s : 0;
    if (t.kind == TaskKind::pp_comm) {  // a blocking transfer on the compute stream
      b.pp_exposed += d;
    } else if (t.kind == TaskKind::optimizer) {
      b.optimizer += d;
    } else {
      const double tp = t.tp_s * scale, ep = t.ep_s * scale;
      const double rec = (t.kind == TaskKind::recompute ? d : t.recompute_s * scale) + t.selective_s * scale;
      b.tp_exposed += tp;
      b.ep_exposed += ep;
      b.recompute += std::min(rec, d - tp - ep);
      b.compute += std::max(0.0, d - tp - ep - rec);
    }
    prev_end = end;
  }
  // After the last kernel: waiting for gradient reduction / parameter gathers, or others.
  const double tail = step - prev_end;
  if (tail > 0) {
    double comm_end = 0;
    for (size_t i = 0; i < g.tasks.size(); ++i) {
      const Task& t = g.tasks[i];
      if (t.rank == rank && (t.kind == TaskKind::dp_comm || t.kind == TaskKind::param_gather))
        comm_end = std::max(comm_end, r.timing[i].end);
    }
    const double dp = std::clamp(comm_end - prev_end, 0.0, tail);
    b.dp_exposed += dp;
    b.bubble += tail - dp;
  }
  return b;
}

StepResult Builder::run() {
  StepResult out;
  out.compute_model = model_->describe();
  TaskGraph g;
  build_pipeline(g);
  EngineResult r = run_engine(g, capacity_, engine_options_);
  const double step = r.end_s;
  out.step_time = Seconds(step);
  // Predecessors of every task, in compressed rows.
  std::vector<int> pred_start(g.tasks.size() + 1, 0), preds(g.edges.size());
  for (const auto& [a, c] : g.edges) ++pred_start[c + 1];
  for (size_t i = 0; i < g.tasks.size(); ++i) pred_start[i + 1] += pred_start[i];
  {
    std::vector<int> fill(pred_start.begin(), pred_start.end() - 1);
    for (const auto& [a, c] : g.edges) preds[fill[c]++] = a;
  }
  double busiest = -1;
  for (int st = 0; st < p_.pp; ++st) {
    StageReport sr;
    sr.stage = st;
    // The stage's first simulated GPU (in full mode every GPU of a stage is simulated;
    // the one with data-, tensor- and context-parallel index 0 is reported).
    const int rank = static_cast<int>(std::find(stage_of_rank_.begin(), stage_of_rank_.end(), st) -
                                      stage_of_rank_.begin());
    sr.breakdown = breakdown(g, r, pred_start, preds, rank, step);
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
  out.tokens_per_s = out.figures.tokens_per_step / step;
  out.tflops_model_per_gpu = out.figures.model_flops_per_gpu.value() / step / 1e12;
  out.tflops_hardware_per_gpu = out.figures.hardware_flops_per_gpu.value() / step / 1e12;
  out.mfu = out.tflops_model_per_gpu * 1e12 / out.peak_flops;
  out.hfu = out.tflops_hardware_per_gpu * 1e12 / out.peak_flops;
  out.tasks = g.tasks.size();
  out.events = r.events;
  if (p_.zero_stage >= 1 && s_.training.overlap_param_gather && p_.dp > 1) {
    out.notes.push_back(
        "distributed-optimizer parameter all-gather assumed hidden under the next step's "
        "forward (overlap_param_gather)");
  }
  if (p_.pp > 1 && p_.pipeline_engine == PipelineEngine::megatron && p_.tp > 1) {
    out.notes.push_back("pipeline transfers send 1/tp of the activation per GPU "
                        "(Megatron-LM scatter/gather); the receiver's re-gather is not timed");
  }
  for (int i = 0; i < topo_.link_count(); ++i) out.links.push_back(topo_.link(i));
  out.graph = std::move(g);
  out.timeline = std::move(r);
  return out;
}

void reject_unsupported(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  if (p.cp > 1) {
    throw InputError(s.where("parallelism.cp"), "parallelism.cp", std::to_string(p.cp),
                     "orrery run does not simulate context parallelism yet (ring attention "
                     "and its KV exchange); `orrery check` handles it");
  }
  if (p.zero_stage >= 3) {
    const std::string key = s.origin.count("parallelism.fsdp") ? "parallelism.fsdp"
                                                               : "parallelism.zero_stage";
    throw InputError(s.where(key), key, p.fsdp ? "true" : "3",
                     "orrery run does not simulate ZeRO-3/FSDP parameter gathers yet; "
                     "`orrery check` handles its memory");
  }
  if (s.model.family == ModelFamily::cnn) {
    throw InputError(s.where("model"), "model.family", "cnn",
                     "orrery run simulates transformer models; `orrery check` handles CNNs");
  }
}

}  // namespace

double metric_value(const StepResult& r, const Scenario& s, Metric m) {
  switch (m) {
    case Metric::step_time_s: return r.step_time.value();
    case Metric::tokens_per_s: return r.tokens_per_s;
    case Metric::tokens_per_s_per_gpu: return r.tokens_per_s / s.cluster.gpus();
    case Metric::tflops_per_gpu_model: return r.tflops_model_per_gpu;
    case Metric::tflops_per_gpu_hardware: return r.tflops_hardware_per_gpu;
    case Metric::mfu: return r.mfu;
  }
  return 0;
}

StepResult simulate_step(const Scenario& s, const SimulationOptions& options) {
  reject_unsupported(s);
  Builder b(s, options);
  return b.run();
}

}  // namespace orrery
