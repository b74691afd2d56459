#include "model/fabric.h"

#include <gtest/gtest.h>

namespace orrery {
namespace {

ClusterSpec cluster(int nodes, int nics, InterNodeTopology t, double over) {
  ClusterSpec c;
  c.nodes = nodes;
  c.gpus_per_node = 8;
  c.inter_node.nics_per_node = nics;
  c.inter_node.topology = t;
  c.inter_node.oversubscription = over;
  return c;
}

TEST(Fabric, TwoTierFatTreeNonBlocking) {
  // 64 nodes x 8 NICs = 512 NIC ports. Leaves: 512 / 32 downlinks = 16, each with 32
  // uplinks at 1:1 = 512 uplinks; spines: 512 / 64 ports = 8. Switches 16 + 8 = 24.
  // Cables: 512 NIC-leaf + 512 leaf-spine = 1024; transceivers 2 x 1024 = 2048. Ports in
  // use: 512 + 2 x 512 = 1536 = 24 switches x 64, every port used.
  const FabricCount f = count_fabric(cluster(64, 8, InterNodeTopology::fat_tree, 1.0));
  EXPECT_EQ(f.nics, 512);
  EXPECT_EQ(f.leaves, 16);
  EXPECT_EQ(f.uplinks_per_leaf, 32);
  EXPECT_EQ(f.uplinks, 512);
  EXPECT_EQ(f.spines, 8);
  EXPECT_EQ(f.switches, 24);
  EXPECT_EQ(f.switch_ports, 1536);
  EXPECT_EQ(f.cables, 1024);
  EXPECT_EQ(f.transceivers, 2048);
}

TEST(Fabric, PodsUnderAnAggregationLayer) {
  // 16 nodes x 8 NICs in pods of 64 GPUs (8 nodes), fat tree at 1:1, 7:1 above the pods.
  // Per pod: 64 NIC ports on 2 leaves, 32 uplinks each = 64; to the aggregation layer
  // ceil(64 / 7) = 10 links; the pod's spine takes 64 + 10 = 74 ports: 2 switches.
  // Both pods: leaves 4, spines 4, aggregation ceil(20 / 64) = 1; switches 9. Cables
  // 128 + 128 + 20 = 276, transceivers 552; ports 128 + 2 x 128 + 2 x 20 = 424.
  ClusterSpec c = cluster(16, 8, InterNodeTopology::fat_tree, 1.0);
  c.inter_node.pod_size = 64;
  c.inter_node.pod_oversubscription = 7.0;
  const FabricCount f = count_fabric(c);
  EXPECT_EQ(f.leaves, 4);
  EXPECT_EQ(f.uplinks, 128);
  EXPECT_EQ(f.pod_uplinks, 20);
  EXPECT_EQ(f.spines, 4);
  EXPECT_EQ(f.aggregation, 1);
  EXPECT_EQ(f.switches, 9);
  EXPECT_EQ(f.cables, 276);
  EXPECT_EQ(f.transceivers, 552);
  EXPECT_EQ(f.switch_ports, 424);
  // One pod holding the whole cluster is the plain two-tier fabric: 4 leaves, 128
  // uplinks, 2 spines, no aggregation.
  c.inter_node.pod_size = 128;
  const FabricCount one = count_fabric(c);
  EXPECT_EQ(one.spines, 2);
  EXPECT_EQ(one.aggregation, 0);
  EXPECT_EQ(one.cables, 256);
}

TEST(Fabric, RailOptimizedOversubscribedWithAPartialGroup) {
  // 40 nodes x 8 rails, 2:1. Each rail has ceil(40 / 32) = 2 leaves: 8 x 2 = 16. Per rail
  // one leaf holds 32 NICs (16 uplinks at 2:1), the other 8 (4 uplinks): 8 x (16 + 4) =
  // 160 uplinks; spines ceil(160 / 64) = 3; switches 19. Cables 320 + 160 = 480,
  // transceivers 960, ports 320 + 2 x 160 = 640.
  const FabricCount f = count_fabric(cluster(40, 8, InterNodeTopology::rail_optimized, 2.0));
  EXPECT_EQ(f.nics, 320);
  EXPECT_EQ(f.leaves, 16);
  EXPECT_EQ(f.uplinks_per_leaf, 16);
  EXPECT_EQ(f.uplinks, 160);
  EXPECT_EQ(f.spines, 3);
  EXPECT_EQ(f.switches, 19);
  EXPECT_EQ(f.switch_ports, 640);
  EXPECT_EQ(f.cables, 480);
  EXPECT_EQ(f.transceivers, 960);
}

TEST(Fabric, OneLeafHasNoSpineAndOneNodeNoFabric) {
  // 2 nodes x 8 NICs = 16 ports on one fat-tree leaf: no uplinks, 16 cables.
  const FabricCount two = count_fabric(cluster(2, 8, InterNodeTopology::fat_tree, 1.0));
  EXPECT_EQ(two.leaves, 1);
  EXPECT_EQ(two.spines, 0);
  EXPECT_EQ(two.uplinks, 0);
  EXPECT_EQ(two.cables, 16);
  EXPECT_EQ(two.transceivers, 32);
  // The same two nodes rail-optimized: one leaf per rail (8), joined by a spine: 8 leaves
  // x ceil(2 / 1) = 16 uplinks, 1 spine.
  const FabricCount rail = count_fabric(cluster(2, 8, InterNodeTopology::rail_optimized, 1.0));
  EXPECT_EQ(rail.leaves, 8);
  EXPECT_EQ(rail.uplinks, 16);
  EXPECT_EQ(rail.spines, 1);
  EXPECT_EQ(rail.cables, 32);
  const FabricCount one = count_fabric(cluster(1, 8, InterNodeTopology::fat_tree, 1.0));
  EXPECT_EQ(one.switches, 0);
  EXPECT_EQ(one.cables, 0);
}

}  // namespace
}  // namespace orrery
