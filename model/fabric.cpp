#include "model/fabric.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace orrery {
namespace {

// Uplinks of a switch with `down` ports facing down at `over`:1.
int uplinks_at(int down, double over) { return static_cast<int>(std::ceil(down / over - 1e-9)); }

}  // namespace

int leaf_count(int nodes, int nics_per_node, InterNodeTopology topology) {
  if (nodes <= 1) return 0;
  const int nics = nodes * nics_per_node;
  return topology == InterNodeTopology::rail_optimized
             ? nics_per_node * ((nodes + kLeafDownlinks - 1) / kLeafDownlinks)
             : (nics + kLeafDownlinks - 1) / kLeafDownlinks;
}

namespace {

// Leaves and their uplinks for `nodes` consecutive nodes (one pod, or the whole cluster),
// the NICs plugged in as simulator/topology.cpp plugs them.
struct LeafTier {
  int leaves = 0, uplinks = 0;
};
LeafTier leaf_tier(int nodes, int per_node, bool rail, double over) {
  LeafTier t;
  t.leaves = rail ? per_node * ((nodes + kLeafDownlinks - 1) / kLeafDownlinks)
                  : (nodes * per_node + kLeafDownlinks - 1) / kLeafDownlinks;
  std::vector<int> down(static_cast<std::size_t>(t.leaves), 0);
  for (int node = 0; node < nodes; ++node) {
    for (int n = 0; n < per_node; ++n) {
      const int leaf = rail ? n * (t.leaves / per_node) + node / kLeafDownlinks
                            : (node * per_node + n) / kLeafDownlinks;
      ++down[static_cast<std::size_t>(leaf)];
    }
  }
  for (int d : down) t.uplinks += uplinks_at(d, over);
  return t;
}

}  // namespace

FabricCount count_fabric(const ClusterSpec& c) {
  FabricCount f;
  const int per_node = std::max(1, c.inter_node.nics_per_node);
  f.leaves = leaf_count(c.nodes, per_node, c.inter_node.topology);
  if (f.leaves == 0) return f;
  f.nics = c.nodes * per_node;
  const bool rail = c.inter_node.topology == InterNodeTopology::rail_optimized;
  const double over = c.inter_node.oversubscription;
  f.uplinks_per_leaf = uplinks_at(kLeafDownlinks, over);
  // Pods of pod_size GPUs (whole nodes), each with its own leaves and spine, the spines
  // joined by an aggregation layer (simulator/topology.cpp).
  const int pod_nodes =
      c.inter_node.pod_size > 0
          ? std::min(c.nodes, std::max(1, c.inter_node.pod_size / std::max(1, c.gpus_per_node)))
          : c.nodes;
  if (pod_nodes >= c.nodes) {
    const LeafTier t = leaf_tier(c.nodes, per_node, rail, over);
    if (f.leaves > 1) {
      f.uplinks = t.uplinks;
      f.spines = (f.uplinks + kSwitchPorts - 1) / kSwitchPorts;
    }
  } else {
    f.leaves = 0;
    for (int first = 0; first < c.nodes; first += pod_nodes) {
      const LeafTier t = leaf_tier(std::min(pod_nodes, c.nodes - first), per_node, rail, over);
      // The pod's uplinks to the aggregation layer carry 1 / pod_oversubscription of what
      // its leaves send up; its spine switches take both sets of ports.
      const int up = uplinks_at(t.uplinks, c.inter_node.pod_oversubscription);
      f.leaves += t.leaves;
      f.uplinks += t.uplinks;
      f.pod_uplinks += up;
      f.spines += (t.uplinks + up + kSwitchPorts - 1) / kSwitchPorts;
    }
    f.aggregation = (f.pod_uplinks + kSwitchPorts - 1) / kSwitchPorts;
  }
  f.switches = f.leaves + f.spines + f.aggregation;
  f.switch_ports = f.nics + 2 * f.uplinks + 2 * f.pod_uplinks;
  f.cables = f.nics + f.uplinks + f.pod_uplinks;
  f.transceivers = 2 * f.cables;
  return f;
}

}  // namespace orrery
