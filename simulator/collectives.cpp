#include "simulator/collectives.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"
#include "model/moe_routing.h"

namespace orrery {

const char* to_string(CollectiveAlgo a) {
  switch (a) {
    case CollectiveAlgo::automatic:
      return "auto";
    case CollectiveAlgo::ring:
      return "ring";
    case CollectiveAlgo::tree:
      return "tree";
    case CollectiveAlgo::hierarchical:
      return "hierarchical";
    case CollectiveAlgo::nvls:
      return "nvls";
    case CollectiveAlgo::direct:
      return "direct";
  }
  return "?";
}

namespace {

CommPhase ring_phase(const std::vector<int>& ring, double bytes_per_rank, int steps) {
  CommPhase ph;
  ph.steps = steps;
  const size_t n = ring.size();
  for (size_t i = 0; i < n; ++i) {
    ph.transfers.push_back({ring[i], ring[(i + 1) % n], Bytes(bytes_per_rank)});
  }
  return ph;
}

// Ring plan of one op over `ring` with buffer S.
void add_ring(CollectiveOp op, const std::vector<int>& ring, double S, CommPlan& plan) {
  const double n = static_cast<double>(ring.size());
  const int k = static_cast<int>(ring.size()) - 1;
  switch (op) {
    case CollectiveOp::all_reduce:
      plan.phases.push_back(ring_phase(ring, 2.0 * (n - 1) / n * S, 2 * k));
      break;
    case CollectiveOp::reduce_scatter:
    case CollectiveOp::all_gather:
      plan.phases.push_back(ring_phase(ring, (n - 1) / n * S, k));
      break;
    case CollectiveOp::broadcast: {
      CommPhase ph;
      ph.steps = k;
      for (int i = 0; i < k; ++i) ph.transfers.push_back({ring[i], ring[i + 1], Bytes(S)});
      plan.phases.push_back(ph);
      break;
    }
    default:
      ORRERY_CHECK(false, "ring applies to all-reduce, reduce-scatter, all-gather, broadcast");
  }
}

// Members of `group` by node, in group order; nodes in order of first appearance.
std::vector<std::vector<int>> by_node(const std::vector<int>& group, const Topology& topo) {
  std::vector<std::vector<int>> nodes;
  std::map<int, size_t> index;
  for (int g : group) {
    auto [it, fresh] = index.emplace(topo.node_of(g), nodes.size());
    if (fresh) nodes.emplace_back();
    nodes[it->second].push_back(g);
  }
  return nodes;
}

bool uniform(const std::vector<std::vector<int>>& nodes) {
  for (const auto& n : nodes)
    if (n.size() != nodes.front().size()) return false;
  return true;
}

// NCCL's ring over k members on each of m nodes, as its topology search lays it out on
// GPUs with a NIC each (src/graph/search.cc at NVIDIA/nccl 5067397c: "Ring: NET n -> GPU a
// -> GPU b -> .. -> GPU x -> NET n", crossNic tried at 0 first): C = min(k, 32) channels
// (src/init.cc: ringGraph->maxChannels = MAXCHANNELS / 2, MAXCHANNELS 64 in
// src/include/device.h), channel c entering each node at its member e = c k / C, walking
// the node's other members in order and leaving through member e's NIC again, the last
// member's data reaching that NIC over NVLink through member e (PXN); member e of the
// next node receives it. Each channel carries S/C and the hops of all channels run at once
// (the ring is pipelined), so the transfers form one phase: a NIC moves the ring's
// (n-1)/n share of S/C (all-reduce twice that) each way, a GPU's NVLink port (n-1)/n of S
// (C hops of S/C). The latency follows NCCL's ring model
// (src/graph/tuning.cc: intra-node steps at the NVLink latency, inter-node steps at the
// network's): 2(n-1) steps for an all-reduce of which 2(m-1) cross nodes, n-1 and m-1 for
// a reduce-scatter or all-gather.
void add_rail_rings(CollectiveOp op, const std::vector<std::vector<int>>& nodes, double S,
                    const Topology& topo, CommPlan& plan) {
  constexpr size_t kMaxRingChannels = 32;
  const size_t k = nodes.front().size(), m = nodes.size();
  const size_t channels = std::min(k, kMaxRingChannels);
  const double n = static_cast<double>(k * m);
  const bool twice = op == CollectiveOp::all_reduce;
  ORRERY_CHECK(twice || op == CollectiveOp::all_gather || op == CollectiveOp::reduce_scatter,
               "the rail rings apply to all-reduce, reduce-scatter and all-gather");
  ORRERY_CHECK(k > 1 && m > 1, "the rail rings span nodes of more than one member");
  const double passes = twice ? 2.0 : 1.0;
  const double hop = passes * (n - 1) / n * S / static_cast<double>(channels);
  CommPhase ph;
  for (size_t c = 0; c < channels; ++c) {
    const size_t e = c * k / channels;  // the member the channel enters and leaves by
    for (size_t a = 0; a < m; ++a) {
      const std::vector<int>& here = nodes[a];
      for (size_t i = 0; i + 1 < k; ++i)
        ph.transfers.push_back({here[(e + i) % k], here[(e + i + 1) % k], Bytes(hop)});
      ph.transfers.push_back({here[(e + k - 1) % k], here[e], Bytes(hop)});
      ph.transfers.push_back({here[e], nodes[(a + 1) % m][e], Bytes(hop)});
    }
  }
  const double steps = passes * (n - 1), inter = passes * (m - 1.0);
  const int first = nodes.front().front(), next_node = nodes[1].front();
  ph.extra_latency = Seconds((steps - inter) * topo.latency(first, nodes.front()[1]).value() +
                             inter * topo.latency(first, next_node).value());
  plan.phases.push_back(ph);
}

void add_hierarchical(CollectiveOp op, const std::vector<std::vector<int>>& nodes, double S,
                      CommPlan& plan) {
  const size_t k = nodes.front().size();
  const double m = static_cast<double>(nodes.size());
  auto intra = [&](CollectiveOp o, double bytes) {
    CommPhase ph;
    ph.steps = static_cast<int>(k) - 1;
    for (const auto& members : nodes) {
      CommPhase one = ring_phase(members, (k - 1.0) / k * bytes, 0);
      ph.transfers.insert(ph.transfers.end(), one.transfers.begin(), one.transfers.end());
    }
    (void)o;
    plan.phases.push_back(ph);
  };
  auto inter = [&](CollectiveOp o, double bytes) {
    // k parallel rings, one per local index, over the nodes.
    CommPhase ph;
    const double factor = o == CollectiveOp::all_reduce ? 2.0 * (m - 1) / m : (m - 1) / m;
    ph.steps = (o == CollectiveOp::all_reduce ? 2 : 1) * (static_cast<int>(m) - 1);
    for (size_t j = 0; j < k; ++j) {
      std::vector<int> ring;
      for (const auto& members : nodes) ring.push_back(members[j]);
      CommPhase one = ring_phase(ring, factor * bytes, 0);
      ph.transfers.insert(ph.transfers.end(), one.transfers.begin(), one.transfers.end());
    }
    plan.phases.push_back(ph);
  };
  switch (op) {
    case CollectiveOp::all_reduce:
      if (k > 1) intra(CollectiveOp::reduce_scatter, S);
      inter(CollectiveOp::all_reduce, S / k);
      if (k > 1) intra(CollectiveOp::all_gather, S);
      break;
    case CollectiveOp::reduce_scatter:
      if (k > 1) intra(CollectiveOp::reduce_scatter, S);
      inter(CollectiveOp::reduce_scatter, S / k);
      break;
    case CollectiveOp::all_gather:
      inter(CollectiveOp::all_gather, S / k);
      if (k > 1) intra(CollectiveOp::all_gather, S);
      break;
    default:
      ORRERY_CHECK(false, "hierarchical applies to all-reduce, reduce-scatter, all-gather");
  }
}

void add_tree(const std::vector<int>& group, double S, CommPlan& plan) {
  const int n = static_cast<int>(group.size());
  const int depth = static_cast<int>(std::ceil(std::log2(static_cast<double>(n))));
  CommPhase up, down;
  up.steps = down.steps = depth;
  for (int i = 1; i < n; ++i) {
    const int parent = (i - 1) / 2;
    up.transfers.push_back({group[i], group[parent], Bytes(S)});
    down.transfers.push_back({group[parent], group[i], Bytes(S)});
  }
  plan.phases.push_back(up);
  plan.phases.push_back(down);
}

CommPlan build(CollectiveOp op, const std::vector<int>& group, double S, const Topology& topo,
               CollectiveAlgo algo) {
  CommPlan plan;
  plan.op = op;
  plan.algo = algo;
  plan.bytes = Bytes(S);
  plan.ranks = static_cast<int>(group.size());
  for (int i = 0; i < plan.ranks; ++i) plan.index_of[group[i]] = i;
  const int n = plan.ranks;
  switch (algo) {
    case CollectiveAlgo::ring: {
      const auto nodes = by_node(group, topo);
      if (op != CollectiveOp::broadcast && nodes.size() > 1 && nodes.front().size() > 1 &&
          uniform(nodes)) {
        add_rail_rings(op, nodes, S, topo, plan);
      } else {
        add_ring(op, group, S, plan);
      }
      break;
    }
    case CollectiveAlgo::tree:
      add_tree(group, S, plan);
      break;
    case CollectiveAlgo::nvls: {
      CommPhase ph;
      ph.steps = 2;
      ph.rate_scale = std::min(1.0, kNvlsEfficiency / topo.intra_efficiency());
      for (int g : group) {
        ph.transfers.push_back({g, g, Bytes(S), true, false});
        ph.transfers.push_back({g, g, Bytes(S), false, true});
      }
      plan.phases.push_back(ph);
      break;
    }
    case CollectiveAlgo::hierarchical:
      // An MoE exchange's two levels depend on where its tokens go: plan_expert_exchange.
      ORRERY_CHECK(op != CollectiveOp::all_to_all, "two-level all-to-all without routing");
      add_hierarchical(op, by_node(group, topo), S, plan);
      break;
    case CollectiveAlgo::direct: {
      CommPhase ph;
      ph.steps = 1;
      if (op == CollectiveOp::send_recv) {
        ph.transfers.push_back({group[0], group[1], Bytes(S)});
      } else {
        for (int i = 0; i < n; ++i)
          for (int j = 0; j < n; ++j)
            if (i != j) ph.transfers.push_back({group[i], group[j], Bytes(S / n)});
      }
      plan.phases.push_back(ph);
      break;
    }
    case CollectiveAlgo::automatic:
      ORRERY_CHECK(false, "resolved before build");
  }
  return plan;
}

}  // namespace

void transfer_links(const Transfer& t, const Topology& topo, std::vector<int>& out) {
  if (t.to_switch) {
    out.push_back(topo.nvlink_up(t.src));
  } else if (t.from_switch) {
    out.push_back(topo.nvlink_down(t.dst));
  } else {
    topo.route(t.src, t.dst, out);
  }
}

namespace {
// True when every transfer of the phase stays on NVLink and the node's bus-bandwidth
// curve applies (it then replaces the per-step latency, see `place`).
bool curve_applies(const CommPhase& ph, const Topology& topo) {
  if (!topo.has_intra_curve()) return false;
  std::vector<int> links;
  for (const Transfer& t : ph.transfers) {
    links.clear();
    transfer_links(t, topo, links);
    for (int l : links)
      if (topo.link(l).cls != LinkClass::nvlink) return false;
  }
  return true;
}
}  // namespace

Seconds estimate(const CommPlan& plan, const Topology& topo) {
  double total = 0;
  std::vector<int> links;
  for (const CommPhase& ph : plan.phases) {
    std::map<int, double> load;
    double latency = 0;
    for (const Transfer& t : ph.transfers) {
      links.clear();
      transfer_links(t, topo, links);
      for (int l : links) load[l] += t.bytes.value();
      latency = std::max(latency, (t.to_switch || t.from_switch)
                                      ? topo.link(links.front()).latency.value()
                                      : topo.latency(t.src, t.dst).value());
    }
    double scale = ph.rate_scale;
    if (curve_applies(ph, topo)) {
      scale *= topo.intra_size_efficiency(plan.bytes.value());
      latency = 0;
    }
    double data = 0;
    for (const auto& [l, bytes] : load) {
      data = std::max(data, bytes / (topo.link(l).capacity.value() * scale));
    }
    total += ph.steps * latency + ph.extra_latency.value() + data;
  }
  return Seconds(total);
}

PlannedComm place(const CommPlan& plan, const Topology& topo,
                  const std::vector<std::vector<int>>& siblings, bool aggregate) {
  PlannedComm out;
  out.bytes = plan.bytes;
  out.description =
      fmt::format("{} {} over {} GPUs", to_string(plan.op), to_string(plan.algo), plan.ranks);
  out.op = plan.op;
  out.algorithm = to_string(plan.algo);
  out.gpus.assign(static_cast<size_t>(plan.ranks), 0);
  for (const auto& [gpu, index] : plan.index_of) out.gpus.at(static_cast<size_t>(index)) = gpu;
  // Transfers per link, this plan's and all copies', in dense arrays indexed by link.
  // Kept zero between calls: every entry touched is reset at the end of its phase.
  thread_local std::vector<double> ours, all;
  if (ours.size() < static_cast<size_t>(topo.link_count())) {
    ours.resize(static_cast<size_t>(topo.link_count()), 0.0);
    all.resize(static_cast<size_t>(topo.link_count()), 0.0);
  }
  std::vector<int> links;
  for (const CommPhase& ph : plan.phases) {
    PlannedPhase pp;
    pp.rate_scale = ph.rate_scale;
    double latency = 0;
    std::vector<std::vector<int>> flow_links;
    std::vector<int> touched;
    for (const Transfer& t : ph.transfers) {
      links.clear();
      transfer_links(t, topo, links);
      for (int l : links) {
        if (all[l] == 0) touched.push_back(l);
        ours[l] += 1;
        all[l] += 1;
      }
      flow_links.push_back(links);
      latency = std::max(latency, (t.to_switch || t.from_switch)
                                      ? topo.link(links.front()).latency.value()
                                      : topo.latency(t.src, t.dst).value());
    }
    for (const std::vector<int>& sib : siblings) {
      for (const Transfer& t : ph.transfers) {
        Transfer m = t;
        m.src = sib.at(static_cast<size_t>(plan.index_of.at(t.src)));
        m.dst = sib.at(static_cast<size_t>(plan.index_of.at(t.dst)));
        links.clear();
        transfer_links(m, topo, links);
        // Only links this plan crosses matter for its flows' shares.
        for (int l : links)
          if (ours[l] > 0) all[l] += 1;
      }
    }
    // Inside a node with a measured bus-bandwidth curve, the curve (at the collective's
    // buffer size) stands for both latency and protocol efficiency.
    if (curve_applies(ph, topo)) {
      pp.rate_scale *= topo.intra_size_efficiency(plan.bytes.value());
      latency = 0;
    }
    // Which transfers become flows: all of them, or with `aggregate` the first of each
    // class of equivalent transfers (same bytes, same sequence of link classes and
    // shares). On a symmetric cluster the members of a class see the same load, so one
    // stands for all; it then also takes the others' share of any link it shares with
    // them.
    std::vector<size_t> kept;
    if (aggregate) {
      std::map<std::vector<double>, size_t> classes;
      for (size_t i = 0; i < ph.transfers.size(); ++i) {
        std::vector<double> key = {ph.transfers[i].bytes.value()};
        for (int l : flow_links[i]) {
          key.push_back(static_cast<double>(topo.link(l).cls) * 2 + (topo.link(l).up ? 1 : 0));
          key.push_back(all[l] / ours[l]);
        }
        if (classes.emplace(std::move(key), i).second) kept.push_back(i);
      }
    } else {
      for (size_t i = 0; i < ph.transfers.size(); ++i) kept.push_back(i);
    }
    std::map<int, double> kept_on;  // kept flows per link
    for (size_t i : kept)
      for (int l : flow_links[i]) kept_on[l] += 1;
    for (size_t i : kept) {
      PlannedFlow f;
      f.bytes = ph.transfers[i].bytes;
      for (int l : flow_links[i]) f.links.push_back({l, all[l] / kept_on[l]});
      pp.flows.push_back(std::move(f));
    }
    for (int l : touched) ours[l] = all[l] = 0;
    pp.latency = Seconds(ph.steps * latency) + ph.extra_latency;
    out.phases.push_back(std::move(pp));
  }
  return out;
}

// What a comm task moves, for the traffic report: bytes per link class of one instance
// of the plan, times the groups that run it.
std::map<LinkClass, double> traffic(const CommPlan& plan, const Topology& topo, double copies) {
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
      if (nvlink) out[LinkClass::nvlink] += t.bytes.value() * copies;
      if (nic) out[LinkClass::nic] += t.bytes.value() * copies;
      if (spine) out[LinkClass::spine] += t.bytes.value() * copies;
    }
  }
  return out;
}

NcclCost nccl_cost(CollectiveOp op, int ranks, int nodes, Seconds data) {
  ORRERY_CHECK(op == CollectiveOp::all_gather || op == CollectiveOp::reduce_scatter ||
                   op == CollectiveOp::all_reduce,
               "NCCL's ring model applies to all-gather, reduce-scatter and all-reduce");
  // nsteps and nInterSteps (all-reduce: twice each).
  const int twice = op == CollectiveOp::all_reduce ? 2 : 1;
  const double steps = twice * (ranks - 1.0);
  const double inter_steps = nodes > 1 ? twice * (nodes - 1.0) : 0.0;
  const double net_overhead = nodes > 1 ? 1.0 : 0.0;  // getNetOverhead: 1 us (x86 Intel, other)
  struct Proto {
    const char* name;
    double base, intra, inter, scale;
  };
  // Microseconds: baseLatencies[Ring], hwLatencies[NVLINK][Ring], hwLatencies[NET][Ring];
  // with one GPU per node interLat is hwLatencies[NET][Tree] (5.0/8.5/14 for
  // LL/LL128/Simple): 8.5 for LL128, 14 for Simple.
  const bool one_per_node = ranks == nodes;
  const Proto protos[] = {
      {"simple", 8.4, std::max(3.4, 3.0 * net_overhead), 14.0, 1.0},
      {"ll128", 14.0, std::max(1.9, net_overhead), one_per_node ? 8.5 : 4.0, 0.92},
  };
  NcclCost best;
  double best_time = std::numeric_limits<double>::infinity();
  for (const Proto& p : protos) {
    const double lat = 1e-6 * (p.base + (steps - inter_steps) * p.intra + inter_steps * p.inter);
    const double t = lat + data.value() / p.scale;
    if (t < best_time) {
      best_time = t;
      best = {Seconds(lat), p.scale, p.name};
    }
  }
  if (one_per_node && nodes > 1 && op != CollectiveOp::all_reduce) {
    // PAT (NCCL >= 2.23, 1 GPU per node): interLat = hwLatencies[NET][Tree][Simple] = 14.
    const double lat =
        1e-6 * (8.0 + std::log2(static_cast<double>(nodes)) * 14.0 / 3.5 + 2.8 * ranks);
    const double t = lat + data.value() / 0.75;
    if (t < best_time) best = {Seconds(lat), 0.75, "pat"};
  }
  return best;
}

Seconds data_time(const CommPlan& plan, const Topology& topo) {
  CommPlan bare = plan;
  for (CommPhase& ph : bare.phases) {
    ph.steps = 0;
    ph.extra_latency = Seconds(0.0);
  }
  return estimate(bare, topo);
}

void apply_nccl_cost(CommPlan& plan, const Topology& topo, Seconds host) {
  std::map<int, int> nodes;
  for (const auto& [gpu, index] : plan.index_of) {
    (void)index;
    nodes[topo.node_of(gpu)] += 1;
  }
  const int n = static_cast<int>(nodes.size());
  if (plan.phases.empty()) return;
  if (n == 1 && topo.has_intra_curve()) {
    plan.phases.front().extra_latency += host;
    return;
  }
  const NcclCost c = nccl_cost(plan.op, plan.ranks, n, data_time(plan, topo));
  // NCCL's latency replaces the plan's own (its steps and any ring latency it carries).
  for (CommPhase& ph : plan.phases) {
    ph.steps = 0;
    ph.extra_latency = Seconds(0.0);
    ph.rate_scale *= c.bandwidth_scale;
  }
  plan.phases.front().extra_latency += c.latency + host;
}

CommPlan plan_collective(CollectiveOp op, const std::vector<int>& group, Bytes bytes,
                         const Topology& topo, bool nvls_available, CollectiveAlgo algo,
                         bool nccl_costed) {
  ORRERY_CHECK(group.size() >= 2, "a collective needs two ranks");
  ORRERY_CHECK(op != CollectiveOp::send_recv || group.size() == 2, "send/recv is between two");
  if (algo != CollectiveAlgo::automatic) return build(op, group, bytes.value(), topo, algo);

  std::vector<CollectiveAlgo> candidates;
  const auto nodes = by_node(group, topo);
  const bool reduction = op == CollectiveOp::all_reduce || op == CollectiveOp::reduce_scatter ||
                         op == CollectiveOp::all_gather;
  if (op == CollectiveOp::send_recv || op == CollectiveOp::all_to_all) {
    candidates.push_back(CollectiveAlgo::direct);
  } else {
    candidates.push_back(CollectiveAlgo::ring);
  }
  if (op == CollectiveOp::all_reduce) {
    candidates.push_back(CollectiveAlgo::tree);
    if (nodes.size() == 1 && nvls_available) candidates.push_back(CollectiveAlgo::nvls);
  }
  if (reduction && nodes.size() > 1 && nodes.front().size() > 1 && uniform(nodes)) {
    candidates.push_back(CollectiveAlgo::hierarchical);
  }
  CommPlan best;
  double best_time = std::numeric_limits<double>::infinity();
  for (CollectiveAlgo a : candidates) {
    CommPlan p = build(op, group, bytes.value(), topo, a);
    CommPlan costed;
    if (nccl_costed) {
      costed = p;
      apply_nccl_cost(costed, topo, Seconds(0.0));
    }
    const double t = estimate(nccl_costed ? costed : p, topo).value();
    if (t < best_time) {
      best_time = t;
      best = std::move(p);
    }
  }
  return best;
}

namespace {

// One measured row: nodes of 8 GPUs, the benchmark's printed "RDMA"/"IB" GB/s of dispatch
// and combine, and the NIC's line rate in GB/s.
struct FlexPoint {
  int nodes;
  double dispatch, combine, nic;
};

// Both benchmarks count a token once per destination node, its own node included
// (HybridEP tests/utils.py count_rdma_send_from_routing_map keeps the local node "to align
// with the implementation in the DeepEP"; DeepEP tests/test_internode.py num_rdma_token_sent
// the same), but the kernels copy the own node's share locally, not over the NIC
// (csrc/kernels/legacy/internode.cu at deepseek-ai/DeepEP dd758caf: the RDMA put only when
// dst_rdma_rank != rdma_rank). Both route uniformly at random, so 1/nodes of the counted
// bytes stay home: the NIC moves the printed rate x (nodes - 1) / nodes.
double nic_share(const FlexPoint& p, double printed) {
  return printed * (p.nodes - 1) / p.nodes / p.nic;
}

// DeepEP normal kernels: README "Normal kernels with NVLink and RDMA forwarding" at
// deepseek-ai/DeepEP 77bb07aa: H800, one CX7 400 Gb/s NIC a GPU ("~50 GB/s maximum
// bandwidth"), 4096 tokens, hidden 7168, top-4 groups, top-8, FP8 dispatch, BF16 combine.
// EP 16: 43 / 43 GB/s; EP 32: 44 / 47; EP 64: 46 / 45.
constexpr FlexPoint kDeepEp[] = {{2, 43, 43, 50}, {4, 44, 47, 50}, {8, 46, 45, 50}};
// HybridEP: docs/README_Hybrid-EP.md at deepseek-ai/DeepEP 94a9f8f6 (branch hybrid-ep),
// H100 table, "Kernel Only", 16 SMs (the most measured), BF16 dispatch and combine; 4096
// tokens, hidden 7168, top 8, 8 local experts, uniform router. The H100 systems' NIC is
// not stated; taken as 400 Gb/s (50 GB/s) a GPU, as DGX H100's ConnectX-7.
// 16 ranks: 71.71 / 62.95 GB/s; 32: 57.69 / 57.46; 64: 49.97 / 49.77.
constexpr FlexPoint kHybridEp[] = {
    {2, 71.71, 62.95, 50}, {4, 57.69, 57.46, 50}, {8, 49.97, 49.77, 50}};

double harmonic_fraction(const FlexPoint& p) {
  return 2.0 / (1.0 / nic_share(p, p.dispatch) + 1.0 / nic_share(p, p.combine));
}

}  // namespace

double flex_exchange_nic_fraction(ParallelismSpec::EpBackend backend, int nodes) {
  ORRERY_CHECK(nodes >= 2, "the flex exchange's NIC rate applies across nodes");
  const FlexPoint* table = backend == ParallelismSpec::EpBackend::hybridep ? kHybridEp : kDeepEp;
  constexpr size_t n = 3;
  if (nodes <= table[0].nodes) return harmonic_fraction(table[0]);
  for (size_t i = 1; i < n; ++i) {
    if (nodes > table[i].nodes) continue;
    const double lo = std::log2(table[i - 1].nodes), hi = std::log2(table[i].nodes);
    const double w = (std::log2(static_cast<double>(nodes)) - lo) / (hi - lo);
    return (1 - w) * harmonic_fraction(table[i - 1]) + w * harmonic_fraction(table[i]);
  }
  return harmonic_fraction(table[n - 1]);
}

CommPlan plan_expert_exchange(const std::vector<int>& group, Bytes bytes, const MoeSpec& moe,
                              const Topology& topo, ParallelismSpec::EpBackend backend) {
  ORRERY_CHECK(group.size() >= 2, "a collective needs two ranks");
  const auto nodes = by_node(group, topo);
  const double S = bytes.value();
  if (!uniform(nodes))
    return build(CollectiveOp::all_to_all, group, S, topo, CollectiveAlgo::direct);
  std::vector<int> node_of_rank(group.size());
  std::map<int, int> node_index;
  for (size_t i = 0; i < group.size(); ++i) {
    const auto it = node_index.emplace(topo.node_of(group[i]), static_cast<int>(node_index.size()));
    node_of_rank[i] = it.first->second;
  }
  const ExpertRouting r = expert_routing(moe, node_of_rank);
  CommPlan plan;
  plan.op = CollectiveOp::all_to_all;
  plan.algo = CollectiveAlgo::hierarchical;
  plan.bytes = bytes;
  plan.ranks = static_cast<int>(group.size());
  for (int i = 0; i < plan.ranks; ++i) plan.index_of[group[static_cast<size_t>(i)]] = i;
  // One copy of the rank's tokens (S holds top_k copies, the naive exchange's bytes).
  const double unit = S / moe.top_k;
  const size_t k = nodes.front().size(), m = nodes.size();
  // DeepEP's internode dispatch (csrc/kernels/legacy/internode.cu at deepseek-ai/DeepEP
  // dd758caf; README at 77bb07a, "Normal kernels with NVLink and RDMA forwarding"; the
  // DeepSeek-V3 report, section 3.2.2): a token crosses the NICs once per destination node,
  // to the GPU of its own local index there, which forwards it over NVLink once per
  // destination GPU of that node; tokens for the sender's own node go over NVLink
  // directly. The forwarding runs while the next chunks arrive, so both levels are one
  // phase. The combine is the same exchange reversed; on this symmetric placement it loads
  // the same links, so one plan times both.
  CommPhase ph;
  ph.steps = 1;
  // Across nodes the kernels reach their measured NIC rate, not NCCL's: the phase's flows
  // (the NVLink forwarding with them, which the NICs' far lower rate leaves idle part of
  // the time) run at that fraction of line rate.
  if (m > 1)
    ph.rate_scale = std::min(
        1.0, flex_exchange_nic_fraction(backend, static_cast<int>(m)) / topo.inter_efficiency());
  for (size_t a = 0; a < m; ++a)
    for (size_t b = 0; b < m; ++b)
      for (size_t j = 0; j < k && a != b; ++j) {
        const double sent = unit * r.node_share[static_cast<size_t>(node_of_rank.at(
                                       static_cast<size_t>(plan.index_of.at(nodes[b][j]))))];
        if (sent > 0) ph.transfers.push_back({nodes[a][j], nodes[b][j], Bytes(sent)});
      }
  for (size_t b = 0; b < m; ++b)
    for (size_t j = 0; j < k; ++j)
      for (size_t i = 0; i < k; ++i) {
        if (i == j) continue;
        // What all m nodes' local-index-j ranks send to rank (b, i), through (b, j).
        const double sent = unit * static_cast<double>(m) *
                            r.rank_share[static_cast<size_t>(plan.index_of.at(nodes[b][i]))];
        if (sent > 0) ph.transfers.push_back({nodes[b][j], nodes[b][i], Bytes(sent)});
      }
  plan.phases.push_back(ph);
  return plan;
}

}  // namespace orrery
