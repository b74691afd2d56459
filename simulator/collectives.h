// Collectives decomposed into transfers between GPUs, by algorithm, in the way NCCL
// runs them. A plan is a sequence of phases; the transfers of a phase run concurrently
// as flows on the topology, and each phase first pays `steps` message latencies.
//
// Sizes follow nccl-tests: S is the whole buffer of an all-reduce or broadcast, the
// input of a reduce-scatter (n shards), the output of an all-gather, the send buffer
// of an all-to-all (n pieces), the message of a send/recv.
//
//   ring all-reduce      each rank sends 2(n-1)/n * S to its successor, 2(n-1) steps
//   ring reduce-scatter  (n-1)/n * S, n-1 steps; ring all-gather the same
//   ring across nodes    (k members on each of m nodes, k > 1) NCCL's channels: C =
//                        min(k, 32) rings of S/C, each entering every node at one member
//                        and leaving by that member's NIC (the node's last member reaching
//                        it over NVLink, PXN); all hops in one phase (pipelined), NCCL's
//                        ring latency
//   tree all-reduce      reduce up a binary tree then broadcast down, S per edge each
//                        way, 2 * ceil(log2 n) steps
//   hierarchical         intra-node reduce-scatter, inter-node ring all-reduce of S/k
//                        between the k-th ranks of each node, intra-node all-gather
//                        (k = group members per node); reduce-scatter / all-gather use
//                        the matching halves
//   nvls                 all-reduce in the NVSwitch (NVLink SHARP): every GPU sends S up
//                        and receives S down, 2 steps, at the NVLS efficiency
//   all-to-all           direct: S/n from every rank to every other, 1 step
//   broadcast            pipelined ring: S per hop, n-1 steps
//   send/recv            one transfer of S, 1 step
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/collective.h"
#include "core/units.h"
#include "simulator/task_graph.h"
#include "simulator/topology.h"

namespace orrery {

enum class CollectiveAlgo { automatic, ring, tree, hierarchical, nvls, direct };
const char* to_string(CollectiveAlgo a);

// NVLS all-reduce reaches ~273 GB/s algorithm bandwidth on 8 H100 whose NVLink line
// rate is 450 GB/s per direction: 0.607 of line rate (shared/data row
// nccl-issue1455-h100-ring-vs-nvls). Flows of an NVLS phase run at this fraction of
// line rate instead of the ring efficiency.
constexpr double kNvlsEfficiency = 273.0 / 450.0;

struct Transfer {
  int src = -1;  // GPU
  int dst = -1;  // GPU; for NVLS, src == dst names the GPU's own switch port (see below)
  Bytes bytes;
  bool to_switch = false;    // NVLS: src's uplink only
  bool from_switch = false;  // NVLS: dst's downlink only
};

struct CommPhase {
  std::vector<Transfer> transfers;
  int steps = 0;    // message latencies paid before the data moves
  double rate_scale = 1.0;  // fraction of the links' capacity the phase's flows may use
  Seconds extra_latency;    // paid once before the data moves, beside steps (nccl_cost)
};

struct CommPlan {
  CollectiveOp op = CollectiveOp::all_reduce;
  CollectiveAlgo algo = CollectiveAlgo::ring;
  Bytes bytes;  // S
  int ranks = 0;
  std::vector<CommPhase> phases;
  std::map<int, int> index_of;  // GPU -> its position in the group
};

// Plans `op` of S bytes over `group` (GPU ids, in ring order). `automatic` picks the
// algorithm NCCL would be expected to pick: the one with the smallest idle-network time
// (`estimate`) among those that apply; with `nccl_costed` (the caller applies
// apply_nccl_cost to the result), the smallest time under NCCL's latency and protocol
// model, which replaces each plan's own latency.
CommPlan plan_collective(CollectiveOp op, const std::vector<int>& group, Bytes bytes,
                         const Topology& topo, bool nvls_available,
                         CollectiveAlgo algo = CollectiveAlgo::automatic,
                         bool nccl_costed = false);

// An MoE token exchange over the ep `group` as DeepEP's internode kernels run it: one copy
// of a token per destination node over the NICs (to the GPU of the sender's local index),
// then one per destination GPU over NVLink, with where the tokens go from
// model/moe_routing.h. `bytes` is what the naive exchange sends per rank (top_k copies of
// every token); a group whose nodes hold unequal numbers of ranks gets the direct plan.
// Over more than one node the exchange's flows run at the measured NIC rate of `backend`'s
// kernels at the group's node count (flex_exchange_nic_fraction) instead of NCCL's
// efficiency: the phase's rate_scale is that fraction / inter_node.efficiency (at most 1).
CommPlan plan_expert_exchange(
    const std::vector<int>& group, Bytes bytes, const MoeSpec& moe, const Topology& topo,
    ParallelismSpec::EpBackend backend = ParallelismSpec::EpBackend::deepep);

// The fraction of NIC line rate the flex dispatcher's internode kernels reach in their
// authors' benchmarks (dispatch and combine of equal bytes: the harmonic mean of the two),
// at an expert-parallel group of `nodes` nodes (8 GPUs each in every benchmark):
// interpolated linearly in log2(nodes) between the measured 2, 4 and 8 nodes, the 8-node
// figure held beyond (no published point), the 2-node one below it is never asked for
// (one node is NVLink only). Points, byte convention and sources next to the tables in
// collectives.cpp.
double flex_exchange_nic_fraction(ParallelismSpec::EpBackend backend, int nodes);

// NCCL's own cost model of a ring all-gather or reduce-scatter (NVIDIA/nccl
// src/graph/tuning.cc at commit 5067397c, ncclTopoTuneModel and ncclTopoGetAlgoTime):
// time = latency + bytes / bandwidth per protocol, the protocol with the smallest time
// chosen. Ring latency = baseLat + (nsteps - nInterSteps) x intraLat + nInterSteps x
// interLat, nsteps = ranks - 1, nInterSteps = nodes - 1 (a ring built node by node
// crosses each node boundary once); across nodes intraLat is at least the network
// overhead (1 us, 3x for Simple). Simple: 8.4 + 3.4/step in a node, 14/step across;
// LL128: 14 + 1.9/step, 4.0/step across, at 0.92 of Simple's bandwidth. With one GPU per
// node NCCL may pick PAT instead: 8 + log2(nodes) x 14/3.5 + 2.8 x ranks, at 0.75 of the
// bandwidth. LL (bandwidth capped far below the others) is left out: the gathers it
// would win are kilobytes.
struct NcclCost {
  Seconds latency;
  double bandwidth_scale = 1.0;  // of the Simple protocol's (the flows' capacity)
  const char* protocol = "simple";
};
// `data` is the plan's time without latency (data_time); nodes and ranks of the group.
NcclCost nccl_cost(CollectiveOp op, int ranks, int nodes, Seconds data);
// A plan's time on an idle network without its latencies.
Seconds data_time(const CommPlan& plan, const Topology& topo);
// Replaces the plan's latencies (per-step and extra) with NCCL's cost (nccl_cost; the bandwidth
// scale applied to every phase, the latency to the first) plus `host` per collective.
// On one node with a measured bus-bandwidth curve, the curve already holds NCCL's
// latency: only `host` is added.
void apply_nccl_cost(CommPlan& plan, const Topology& topo, Seconds host);

// The links a transfer crosses.
void transfer_links(const Transfer& t, const Topology& topo, std::vector<int>& out);

// Time of a plan on an otherwise idle network: per phase, steps x the slowest hop latency
// plus extra_latency plus the largest transfer over its slowest link (links shared within
// a phase counted).
Seconds estimate(const CommPlan& plan, const Topology& topo);

// Routes a plan's transfers into flows for the engine. `siblings` are other groups (same
// size, same order) that run the same collective at the same moment but are not
// simulated (symmetric ranks): their transfers are routed too, and on a link that k of
// all transfers cross, where j are this plan's flows, each flow counts k / j copies, so
// it gets the share it would get if every copy were simulated. `aggregate` keeps one flow
// per class of equivalent transfers (same bytes, same link classes and shares): exact on
// symmetric clusters, and what keeps a 2048-rank ring at a handful of flows.
PlannedComm place(const CommPlan& plan, const Topology& topo,
                  const std::vector<std::vector<int>>& siblings = {}, bool aggregate = false);

// Bytes one run of the plan moves per link class, times `copies` groups running it: a
// transfer counts once for every class its path crosses.
std::map<LinkClass, double> traffic(const CommPlan& plan, const Topology& topo, double copies);

}  // namespace orrery
