#include "simulator/topology.h"

#include <algorithm>
#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/compressed_sparse_row_graph.hpp>
#include <cmath>
#include <optional>
#include <set>

#include "core/error.h"
#include "model/fabric.h"

namespace orrery {

static_assert(Topology::kLeafDownlinks == kLeafDownlinks, "one leaf size (model/fabric.h)");

const char* to_string(LinkClass c) {
  switch (c) {
    case LinkClass::nvlink: return "nvlink";
    case LinkClass::nic: return "nic";
    case LinkClass::spine: return "spine";
  }
  return "?";
}

struct Topology::Graph {
  // Vertices: GPUs, then one NVSwitch per node, NICs, leaves, the spine. Edges are the
  // directed links, plus the GPU-NIC attachments (PCIe, not a bottleneck here). Stored
  // as a compressed sparse row graph: built once from the edge list, one allocation.
  using G = boost::compressed_sparse_row_graph<boost::directedS>;
  G g;
  std::vector<std::pair<int, int>> edges;  // collected while building, then compressed
  int vertices = 0;
  int nvswitch0 = 0, nic0 = 0, leaf0 = 0;
  std::optional<int> spine;        // the (first pod's) spine vertex; none with a single leaf
  std::optional<int> aggregation;  // with several pods, after the pod spines
};

Topology::Topology(Topology&&) noexcept = default;
Topology& Topology::operator=(Topology&&) noexcept = default;
Topology::~Topology() = default;

Topology::Topology(const ClusterSpec& c)
    : gpus_(c.gpus()),
      gpus_per_node_(c.gpus_per_node),
      nics_per_node_(std::max(1, c.inter_node.nics_per_node)),
      rail_optimized_(c.inter_node.topology == InterNodeTopology::rail_optimized),
      intra_latency_(c.intra_node.latency),
      inter_latency_(c.inter_node.latency),
      intra_efficiency_(c.intra_node.efficiency),
      inter_efficiency_(c.inter_node.efficiency) {
  for (const auto& [b, f] : c.intra_node.bus_bandwidth_curve) {
    intra_curve_.emplace_back(std::log(b.value()), f);
  }
  const int nodes = c.nodes;
  const int nics = nodes * nics_per_node_;
  const int pod_size = c.inter_node.pod_size;
  pod_nodes_ = pod_size > 0 ? std::min(nodes, std::max(1, pod_size / gpus_per_node_)) : nodes;
  pods_ = (nodes + pod_nodes_ - 1) / pod_nodes_;
  groups_per_pod_ = (pod_nodes_ + kLeafDownlinks - 1) / kLeafDownlinks;
  leaves_per_pod_ = (pod_nodes_ * nics_per_node_ + kLeafDownlinks - 1) / kLeafDownlinks;
  if (nodes > 1) {
    groups_ = group_of_node(nodes - 1) + 1;
    leaves_ =
        rail_optimized_ ? nics_per_node_ * groups_ : leaf_of_nic(nodes - 1, nics_per_node_ - 1) + 1;
  }
  // One spine per pod when there are several pods, and the aggregation switch above them.
  const int spines = pods_ > 1 ? pods_ + 1 : (leaves_ > 1 ? 1 : 0);
  const int vertices = gpus_ + nodes + nics + leaves_ + spines;
  graph_ = std::make_unique<Graph>();
  Graph& G = *graph_;
  G.vertices = vertices;
  const size_t link_estimate = 2 * static_cast<size_t>(gpus_ + nics + leaves_);
  links_.reserve(link_estimate);
  G.edges.reserve(link_estimate + 2 * static_cast<size_t>(gpus_));
  G.nvswitch0 = gpus_;
  G.nic0 = G.nvswitch0 + nodes;
  G.leaf0 = G.nic0 + nics;
  if (spines > 0) G.spine = G.leaf0 + leaves_;
  if (pods_ > 1) G.aggregation = *G.spine + pods_;

  auto add_link = [&](int from, int to, LinkInfo info) {
    const int id = static_cast<int>(links_.size());
    links_.push_back(info);
    G.edges.emplace_back(from, to);
    return id;
  };
  const Bandwidth nvlink = c.intra_node.bandwidth * c.intra_node.efficiency;
  nvlink_up_.resize(gpus_);
  nvlink_down_.resize(gpus_);
  for (int gpu = 0; gpu < gpus_; ++gpu) {
    const int sw = G.nvswitch0 + gpu / gpus_per_node_;
    nvlink_up_[gpu] = add_link(gpu, sw, {LinkClass::nvlink, true, nvlink, intra_latency_, gpu});
    nvlink_down_[gpu] = add_link(sw, gpu, {LinkClass::nvlink, false, nvlink, intra_latency_, gpu});
  }
  if (nodes <= 1) {
    finish_graph();
    return;
  }

  // Other jobs' traffic takes its share of every inter-node link first.
  const double free_share = 1.0 - c.inter_node.background_load;
  const Bandwidth nic_bw = c.inter_node.nic_bandwidth * (c.inter_node.efficiency * free_share);
  nic_up_.resize(nics);
  nic_down_.resize(nics);
  std::vector<int> downlinks(leaves_, 0);
  for (int node = 0; node < nodes; ++node) {
    for (int n = 0; n < nics_per_node_; ++n) {
      const int nic = node * nics_per_node_ + n;
      const int leaf = leaf_of_nic(node, n);
      ++downlinks[leaf];
      nic_up_[nic] = add_link(G.nic0 + nic, G.leaf0 + leaf,
                              {LinkClass::nic, true, nic_bw, inter_latency_, nic});
      nic_down_[nic] = add_link(G.leaf0 + leaf, G.nic0 + nic,
                                {LinkClass::nic, false, nic_bw, inter_latency_, nic});
    }
    for (int local = 0; local < gpus_per_node_; ++local) {
      const int gpu = node * gpus_per_node_ + local;
      const int nic = G.nic0 + node * nics_per_node_ + nic_of(gpu);
      G.edges.emplace_back(gpu, nic);
      G.edges.emplace_back(nic, gpu);
    }
  }
  if (!G.spine) {
    finish_graph();
    return;
  }
  spine_up_.resize(leaves_);
  spine_down_.resize(leaves_);
  leaf_uplinks_.resize(leaves_);
  std::vector<Bandwidth> pod_uplink(static_cast<size_t>(pods_));
  for (int leaf = 0; leaf < leaves_; ++leaf) {
    // Uplink capacity: what the leaf's downlinks carry, divided by the oversubscription.
    const Bandwidth up = nic_bw * (downlinks[leaf] / c.inter_node.oversubscription);  // after background
    leaf_uplinks_[leaf] = downlinks[leaf] / c.inter_node.oversubscription;
    const int pod = pod_of_leaf(leaf);
    const int spine = *G.spine + (pods_ > 1 ? pod : 0);
    pod_uplink[static_cast<size_t>(pod)] = pod_uplink[static_cast<size_t>(pod)] + up;
    spine_up_[leaf] =
        add_link(G.leaf0 + leaf, spine, {LinkClass::spine, true, up, inter_latency_, leaf});
    spine_down_[leaf] =
        add_link(spine, G.leaf0 + leaf, {LinkClass::spine, false, up, inter_latency_, leaf});
  }
  if (G.aggregation) {
    pod_up_.resize(static_cast<size_t>(pods_));
    pod_down_.resize(static_cast<size_t>(pods_));
    for (int pod = 0; pod < pods_; ++pod) {
      const Bandwidth up = pod_uplink[static_cast<size_t>(pod)] / c.inter_node.pod_oversubscription;
      pod_up_[pod] = add_link(*G.spine + pod, *G.aggregation,
                              {LinkClass::spine, true, up, inter_latency_, pod});
      pod_down_[pod] = add_link(*G.aggregation, *G.spine + pod,
                                {LinkClass::spine, false, up, inter_latency_, pod});
    }
  }
  finish_graph();
}

std::optional<int> Topology::nic_up(int node, int k) const {
  if (nic_up_.empty()) return std::nullopt;
  return nic_up_.at(static_cast<size_t>(node * nics_per_node_ + k));
}

std::optional<int> Topology::nic_down(int node, int k) const {
  if (nic_down_.empty()) return std::nullopt;
  return nic_down_.at(static_cast<size_t>(node * nics_per_node_ + k));
}

void Topology::finish_graph() {
  Graph& G = *graph_;
  G.g = Graph::G(boost::edges_are_unsorted_multi_pass, G.edges.begin(), G.edges.end(),
                 static_cast<std::size_t>(G.vertices));
  G.edges.clear();
  G.edges.shrink_to_fit();
}

double Topology::intra_size_efficiency(double bytes) const {
  if (intra_curve_.empty() || bytes <= 0) return 1.0;
  const double x = std::log(bytes);
  if (x <= intra_curve_.front().first) {
    return std::max(1e-6, intra_curve_.front().second * std::exp(x - intra_curve_.front().first));
  }
  if (x >= intra_curve_.back().first) return intra_curve_.back().second;
  for (size_t i = 1; i < intra_curve_.size(); ++i) {
    if (x <= intra_curve_[i].first) {
      const auto& [x0, y0] = intra_curve_[i - 1];
      const auto& [x1, y1] = intra_curve_[i];
      return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
    }
  }
  return intra_curve_.back().second;
}

int Topology::nodes_spanned(const std::vector<int>& group) const {
  std::set<int> nodes;
  for (int gpu : group) nodes.insert(node_of(gpu));
  return static_cast<int>(nodes.size());
}

int Topology::nic_of(int gpu) const {
  return (gpu % gpus_per_node_) * nics_per_node_ / gpus_per_node_;
}

int Topology::group_of_node(int node) const {
  return (node / pod_nodes_) * groups_per_pod_ + (node % pod_nodes_) / kLeafDownlinks;
}

int Topology::leaf_of_nic(int node, int nic) const {
  if (rail_optimized_) return nic * groups_ + group_of_node(node);
  return (node / pod_nodes_) * leaves_per_pod_ +
         ((node % pod_nodes_) * nics_per_node_ + nic) / kLeafDownlinks;
}

int Topology::pod_of_leaf(int leaf) const {
  return rail_optimized_ ? (leaf % groups_) / groups_per_pod_ : leaf / leaves_per_pod_;
}

void Topology::fail_nic(int node, int k) {
  ORRERY_CHECK(!nic_up_.empty() && node >= 0 && node * gpus_per_node_ < gpus_ && k >= 0 &&
                   k < nics_per_node_,
               "a failed NIC of the cluster");
  if (nic_failed_.empty()) nic_failed_.assign(nic_up_.size(), 0);
  nic_failed_[static_cast<size_t>(node * nics_per_node_ + k)] = 1;
}

bool Topology::nic_failed(int node, int k) const {
  return !nic_failed_.empty() && nic_failed_[static_cast<size_t>(node * nics_per_node_ + k)];
}

int Topology::nic_used(int gpu) const {
  const int own = nic_of(gpu), node = node_of(gpu);
  if (!nic_failed(node, own)) return own;
  for (int i = 1; i < nics_per_node_; ++i) {
    const int k = (own + i) % nics_per_node_;
    if (!nic_failed(node, k)) return k;
  }
  return own;  // none left: the route keeps the dead NIC and the step stalls on it
}

int Topology::gpu_of_nic(int node, int k) const {
  // The first GPU of the node that nic_of maps to NIC k (GPUs and NICs in index order).
  const int local = (k * gpus_per_node_ + nics_per_node_ - 1) / nics_per_node_;
  return node * gpus_per_node_ + local;
}

void Topology::route(int a, int b, std::vector<int>& out) const {
  ORRERY_CHECK(a >= 0 && a < gpus_ && b >= 0 && b < gpus_ && a != b, "route between two GPUs");
  const int na = node_of(a), nb = node_of(b);
  if (na == nb) {
    out.push_back(nvlink_up_[a]);
    out.push_back(nvlink_down_[b]);
    return;
  }
  const int ka = nic_used(a), kb = nic_used(b);
  const int proxy_a = ka == nic_of(a) ? a : gpu_of_nic(na, ka);
  const int proxy_b = kb == nic_of(b) ? b : gpu_of_nic(nb, kb);
  if (proxy_a != a) {  // PXN: to the peer next to a working NIC first
    out.push_back(nvlink_up_[a]);
    out.push_back(nvlink_down_[proxy_a]);
  }
  const int leaf_a = leaf_of_nic(na, ka);
  const int leaf_b = leaf_of_nic(nb, kb);
  out.push_back(nic_up_[na * nics_per_node_ + ka]);
  if (leaf_a != leaf_b) {
    out.push_back(spine_up_[leaf_a]);
    const int pod_a = pod_of_leaf(leaf_a), pod_b = pod_of_leaf(leaf_b);
    if (pod_a != pod_b) {  // through the aggregation layer
      out.push_back(pod_up_[pod_a]);
      out.push_back(pod_down_[pod_b]);
    }
    out.push_back(spine_down_[leaf_b]);
  }
  out.push_back(nic_down_[nb * nics_per_node_ + kb]);
  if (proxy_b != b) {  // and from the peer next to the receiving node's working NIC
    out.push_back(nvlink_up_[proxy_b]);
    out.push_back(nvlink_down_[b]);
  }
}

Seconds Topology::latency(int a, int b) const {
  return node_of(a) == node_of(b) ? intra_latency_ : inter_latency_;
}

int Topology::bfs_hops(int a, int b) const {
  const auto& g = graph_->g;
  std::vector<int> dist(boost::num_vertices(g), -1);
  dist[a] = 0;
  auto vis = boost::make_bfs_visitor(boost::record_distances(
      boost::make_iterator_property_map(dist.begin(), boost::get(boost::vertex_index, g)),
      boost::on_tree_edge()));
  boost::breadth_first_search(g, boost::vertex(a, g), boost::visitor(vis));
  return dist[b];
}

}  // namespace orrery
