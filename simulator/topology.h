// The cluster as a graph of devices and directed links, built from a ClusterSpec:
//
//   GPU ──nvlink──► NVSwitch ──nvlink──► GPU                      (inside a node)
//   GPU ─► NIC ──nic──► leaf ──uplink──► spine ──downlink──► leaf ──nic──► NIC ─► GPU
//
// Leaves have kLeafDownlinks ports towards NICs (a 64-port switch split evenly between
// downlinks and uplinks, as NVIDIA's Quantum-2 QM9700 is in a non-blocking SuperPOD).
// Rail-optimized: NIC i of every node in a group of kLeafDownlinks nodes plugs into the
// leaf of rail i. Fat-tree: NIC ports fill leaves in order, node by node. A leaf's
// uplinks are one aggregate link of (downlink bandwidth / oversubscription) towards a
// single aggregate spine; with one leaf there is no spine. A GPU uses NIC
// local_index * nics_per_node / gpus_per_node (DGX-1: two GPUs share a NIC).
//
// Pods (inter_node.pod_size, in GPUs): the nodes fall into pods of pod_size /
// gpus_per_node consecutive nodes; leaves group each pod's nodes alone (a pod's last
// leaves may be partly filled), and each pod's leaves uplink to that pod's own aggregate
// spine. With more than one pod the pod spines join through one aggregation switch: a
// pod's uplink to it carries the sum of its leaves' uplink capacities divided by
// inter_node.pod_oversubscription, each direction. A route between pods climbs leaf ->
// pod spine -> aggregation -> pod spine -> leaf; inside a pod it is as without pods.
//
// Link capacities are line rate x the fabric's bus-bandwidth efficiency (what NCCL
// reaches), less the share other jobs keep busy on inter-node links
// (inter_node.background_load); latencies are per message. Routes are up-down (the unique shortest path in
// this tree), deterministic.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/units.h"
#include "scenario/spec.h"

namespace orrery {

enum class LinkClass { nvlink, nic, spine };
const char* to_string(LinkClass c);

struct LinkInfo {
  LinkClass cls = LinkClass::nvlink;
  bool up = true;          // towards the switch (send side) or away from it
  Bandwidth capacity;      // usable bytes/s in this direction
  Seconds latency;         // per message
  int owner = 0;           // GPU (nvlink), NIC index (nic) or leaf (spine)
};

class Topology {
 public:
  static constexpr int kLeafDownlinks = 32;

  explicit Topology(const ClusterSpec& cluster);
  ~Topology();
  Topology(Topology&&) noexcept;
  Topology& operator=(Topology&&) noexcept;

  int gpus() const { return gpus_; }
  int node_of(int gpu) const { return gpu / gpus_per_node_; }
  // The nodes the GPUs of `group` sit in.
  int nodes_spanned(const std::vector<int>& group) const;
  int leaves() const { return leaves_; }
  int link_count() const { return static_cast<int>(links_.size()); }
  const LinkInfo& link(int id) const { return links_.at(id); }

  int nvlink_up(int gpu) const { return nvlink_up_.at(gpu); }
  int nvlink_down(int gpu) const { return nvlink_down_.at(gpu); }
  int nics_per_node() const { return nics_per_node_; }
  // NIC k of a node, each direction; none on a single-node cluster.
  std::optional<int> nic_up(int node, int k) const;
  std::optional<int> nic_down(int node, int k) const;
  // A leaf switch's uplink to the spine (its parallel physical links as one link), each
  // direction, and how many physical uplinks it stands for (downlinks / oversubscription).
  int spine_up(int leaf) const { return spine_up_.at(leaf); }
  int spine_down(int leaf) const { return spine_down_.at(leaf); }
  double leaf_uplinks(int leaf) const { return leaf_uplinks_.at(leaf); }
  // Pods (one when inter_node.pod_size is unset or covers every node), the pod a leaf
  // belongs to, and with several pods the pod spine's link to the aggregation layer,
  // each direction (LinkClass::spine, owner: the pod).
  int pods() const { return pods_; }
  int pod_of_leaf(int leaf) const;
  int pod_up(int pod) const { return pod_up_.at(pod); }
  int pod_down(int pod) const { return pod_down_.at(pod); }
  double intra_efficiency() const { return intra_efficiency_; }
  // The NICs' bus-bandwidth efficiency (inter_node.efficiency): their capacity / line rate,
  // before background load.
  double inter_efficiency() const { return inter_efficiency_; }
  // Fraction of the intra-node bus bandwidth a collective of `bytes` reaches (the
  // measured curve, log-interpolated; below its first point proportional to size, the
  // latency-bound regime); 1 without a curve.
  double intra_size_efficiency(double bytes) const;
  bool has_intra_curve() const { return !intra_curve_.empty(); }

  // Marks NIC k of `node` failed for the whole step. NCCL binds a rank to its NICs when
  // the communicator is created; with PXN (NCCL 2.12+) a rank whose own NIC is gone sends
  // and receives through a peer GPU of its node: over NVLink to the GPU next to the
  // node's next working NIC (in index order), then out of that NIC, which on a
  // rail-optimized fabric sits on another rail's leaf, so the message also crosses the
  // spine. A node with no working NIC keeps its routes; the step then stalls on them.
  void fail_nic(int node, int k);
  bool nic_failed(int node, int k) const;
  bool any_nic_failed() const { return !nic_failed_.empty(); }
  // The first GPU of the node whose traffic NIC k carries.
  int gpu_of_nic(int node, int k) const;

  // Appends to `out` the directed links a message from GPU a to GPU b crosses.
  void route(int a, int b, std::vector<int>& out) const;
  // Latency of one message from a to b: the slowest hop class on its path.
  Seconds latency(int a, int b) const;
  // Hop count of the shortest path between two GPUs by breadth-first search over the
  // device graph (for tests that check `route` is shortest).
  int bfs_hops(int a, int b) const;

 private:
  int nic_of(int gpu) const;
  // The NIC (index on its node) a GPU's inter-node traffic leaves and enters by, and the
  // GPU next to it: its own, or with PXN a peer's when its own has failed.
  int nic_used(int gpu) const;
  void finish_graph();
  int leaf_of_nic(int node, int nic) const;
  // Rail-optimized: the group of up to kLeafDownlinks nodes of one pod a node is in (each
  // rail has one leaf per group); fat-tree: leaves per pod.
  int group_of_node(int node) const;

  struct Graph;
  std::unique_ptr<Graph> graph_;  // Boost.Graph adjacency list, kept out of the header
  int gpus_ = 0;
  int gpus_per_node_ = 1;
  int nics_per_node_ = 1;
  int leaves_ = 0;
  int pods_ = 1, pod_nodes_ = 1;
  int groups_ = 0, groups_per_pod_ = 1, leaves_per_pod_ = 1;
  bool rail_optimized_ = true;
  Seconds intra_latency_, inter_latency_;
  double intra_efficiency_ = 1.0;
  double inter_efficiency_ = 1.0;
  std::vector<std::pair<double, double>> intra_curve_;  // (log bytes, fraction)
  std::vector<LinkInfo> links_;
  // Link ids by owner: nvlink up/down per GPU, nic up/down per NIC, spine up/down per leaf.
  std::vector<int> nvlink_up_, nvlink_down_, nic_up_, nic_down_, spine_up_, spine_down_;
  std::vector<int> pod_up_, pod_down_;  // per pod, with several pods
  std::vector<double> leaf_uplinks_;
  std::vector<char> nic_failed_;  // per NIC of the cluster (node * nics_per_node + k)
};

}  // namespace orrery
