#include "model/fabric.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace orrery {

int leaf_count(int nodes, int nics_per_node, InterNodeTopology topology) {
  if (nodes <= 1) return 0;
  const int nics = nodes * nics_per_node;
  return topology == InterNodeTopology::rail_optimized
             ? nics_per_node * ((nodes + kLeafDownlinks - 1) / kLeafDownlinks)
             : (nics + kLeafDownlinks - 1) / kLeafDownlinks;
}

FabricCount count_fabric(const ClusterSpec& c) {
  FabricCount f;
  const int per_node = std::max(1, c.inter_node.nics_per_node);
  f.leaves = leaf_count(c.nodes, per_node, c.inter_node.topology);
  if (f.leaves == 0) return f;
  f.nics = c.nodes * per_node;
  // Downlinks per leaf, filled as simulator/topology.cpp plugs NICs in.
  std::vector<int> down(static_cast<std::size_t>(f.leaves), 0);
  const bool rail = c.inter_node.topology == InterNodeTopology::rail_optimized;
  for (int node = 0; node < c.nodes; ++node) {
    for (int n = 0; n < per_node; ++n) {
      const int leaf = rail ? n * (f.leaves / per_node) + node / kLeafDownlinks
                            : (node * per_node + n) / kLeafDownlinks;
      ++down[static_cast<std::size_t>(leaf)];
    }
  }
  const double over = c.inter_node.oversubscription;
  auto uplinks_of = [over](int d) { return static_cast<int>(std::ceil(d / over - 1e-9)); };
  f.uplinks_per_leaf = uplinks_of(kLeafDownlinks);
  if (f.leaves > 1) {
    for (int d : down) f.uplinks += uplinks_of(d);
    f.spines = (f.uplinks + kSwitchPorts - 1) / kSwitchPorts;
  }
  f.switches = f.leaves + f.spines;
  f.switch_ports = f.nics + 2 * f.uplinks;
  f.cables = f.nics + f.uplinks;
  f.transceivers = 2 * f.cables;
  return f;
}

}  // namespace orrery
