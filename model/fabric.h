// The inter-node fabric orrery builds for a cluster (simulator/topology.h), counted as a
// bill of materials: switches, their ports, cables and transceivers, for the purchase cost
// (model/training_run.h). The leaves are counted as simulator/topology.cpp plugs NICs in
// (the leaf size is shared: a static_assert there).
//
// Switches have kSwitchPorts ports (NVIDIA Quantum-2 QM9700: 64 NDR 400 Gb/s ports,
// QM9700 datasheet); a leaf gives kLeafDownlinks of them to NICs and ceil(downlinks /
// oversubscription) to uplinks.
//  - Rail-optimized: NIC i of every node in a group of kLeafDownlinks nodes goes to the
//    leaf of rail i: nics_per_node * ceil(nodes / kLeafDownlinks) leaves.
//  - Fat tree: NIC ports fill leaves in order: ceil(nodes * nics_per_node / kLeafDownlinks).
//  - One leaf: no spine. Several: the spine layer has ceil(total uplinks / kSwitchPorts)
//    switches, every uplink ending on a spine port.
//  - Pods (inter_node.pod_size): each pod's leaves as above under its own spine switches,
//    which also take the pod's ceil(uplinks / pod_oversubscription) links to the
//    aggregation layer, ceil(those links / kSwitchPorts) switches.
// Cables: one per NIC (NIC to leaf) and one per uplink (leaf to spine, pod spine to
// aggregation). Transceivers: one
// per cable end (two per cable), every link taken as optical; passive copper (DAC) links
// inside a rack, or twin-port modules serving two switch ports, lower the count.
#pragma once

#include "scenario/spec.h"

namespace orrery {

inline constexpr int kSwitchPorts = 64;
inline constexpr int kLeafDownlinks = kSwitchPorts / 2;

struct FabricCount {
  int nics = 0;  // nodes * nics_per_node (0 with one node: no fabric)
  int leaves = 0;
  int uplinks_per_leaf = 0;  // of a full leaf: ceil(kLeafDownlinks / oversubscription)
  int uplinks = 0;           // every leaf's, each ceil(its downlinks / oversubscription)
  int spines = 0;             // with pods: every pod's spine switches
  int pod_uplinks = 0;        // pod spines to the aggregation layer (inter_node.pod_size)
  int aggregation = 0;        // aggregation switches above the pods
  int switches = 0;      // leaves + spines + aggregation
  int switch_ports = 0;  // ports in use: NIC downlinks + uplinks at both ends
  int cables = 0;        // NIC-leaf + leaf-spine + pod spine-aggregation
  int transceivers = 0;  // two per cable
};

// The whole fabric of the cluster (its node count, NICs, topology and oversubscription).
FabricCount count_fabric(const ClusterSpec& c);

}  // namespace orrery
