#include "model/fabric.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace orrery {
namespace {

// Uplinks of a switch with `down` ports facing down at `over`:1.
int uplinks_at(int down, double over) { return static_cast<int>(std::ceil(down / over - 1e-9)); }

int switches_for(int ports) { return (ports + kSwitchPorts - 1) / kSwitchPorts; }

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
  if (c.nodes <= 1) return f;  // no inter-node fabric
  const int per_node = std::max(1, c.inter_node.nics_per_node);
  f.nics = c.nodes * per_node;
  const bool rail = c.inter_node.topology == InterNodeTopology::rail_optimized;
  const double over = c.inter_node.oversubscription;
  f.uplinks_per_leaf = uplinks_at(kLeafDownlinks, over);
  // Pods of pod_size GPUs (whole nodes), each with its own leaves and spine, the spines
  // joined by an aggregation layer (simulator/topology.cpp); without pods, one.
  const int pod_nodes =
      c.inter_node.pod_size > 0
          ? std::min(c.nodes, std::max(1, c.inter_node.pod_size / std::max(1, c.gpus_per_node)))
          : c.nodes;
  const bool pods = pod_nodes < c.nodes;
  for (int first = 0; first < c.nodes; first += pod_nodes) {
    const LeafTier t = leaf_tier(std::min(pod_nodes, c.nodes - first), per_node, rail, over);
    f.leaves += t.leaves;
    f.uplinks += t.uplinks;
    if (pods) {
      // The pod's uplinks to the aggregation layer carry 1 / pod_oversubscription of what
      // its leaves send up; its spine switches take both sets of ports.
      const int up = uplinks_at(t.uplinks, c.inter_node.pod_oversubscription);
      f.pod_uplinks += up;
      f.spines += switches_for(t.uplinks + up);
    }
  }
  if (pods) {
    f.aggregation = switches_for(f.pod_uplinks);
  } else if (f.leaves > 1) {
    f.spines = switches_for(f.uplinks);
  } else {
    f.uplinks = 0;  // one leaf: no spine to go up to
  }
  f.switches = f.leaves + f.spines + f.aggregation;
  f.switch_ports = f.nics + 2 * f.uplinks + 2 * f.pod_uplinks;
  f.cables = f.nics + f.uplinks + f.pod_uplinks;
  f.transceivers = 2 * f.cables;
  return f;
}

}  // namespace orrery
