// Topology: routes are the shortest paths of the device graph, capacities come from the
// cluster spec, oversubscription divides leaf uplinks.
#include "simulator/topology.h"

#include <gtest/gtest.h>

#include "scenario/load.h"

namespace orrery {
namespace {

ClusterSpec cluster(const std::string& system, int nodes, const std::string& extra = "") {
  const std::string yaml = "cluster: {preset: " + system + ", nodes: " + std::to_string(nodes) +
                           extra + "}\nmodel: llama3-8b\nparallelism: {global_batch: " +
                           std::to_string(8 * nodes) + "}\ntraining: {precision: fp16}\n";
  return load_scenario_text(yaml, "topo.yaml").cluster;
}

TEST(Topology, IntraNodeRouteIsNvlinkUpThenDown) {
  const Topology t(cluster("dgx-h100", 1));
  std::vector<int> r;
  t.route(0, 5, r);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(t.link(r[0]).cls, LinkClass::nvlink);
  EXPECT_TRUE(t.link(r[0]).up);
  EXPECT_FALSE(t.link(r[1]).up);
  // 450 GB/s per direction x 0.82 ring efficiency (systems.yaml).
  EXPECT_DOUBLE_EQ(t.link(r[0]).capacity.value(), 450e9 * 0.82);
  EXPECT_EQ(t.bfs_hops(0, 5), 2);
}

TEST(Topology, RoutesAreShortestPaths) {
  // 80 nodes: 3 leaves per rail (32 nodes each), so some routes cross the spine.
  const Topology t(cluster("dgx-h100", 80));
  EXPECT_EQ(t.leaves(), 8 * 3);
  std::vector<int> r;
  for (int b : {8, 8 * 31, 8 * 32, 8 * 79, 8 * 40 + 3}) {
    r.clear();
    t.route(0, b, r);
    // The graph also counts the GPU-NIC attachments at both ends.
    EXPECT_EQ(static_cast<int>(r.size()) + 2, t.bfs_hops(0, b)) << "to GPU " << b;
  }
  r.clear();
  t.route(0, 8 * 31, r);  // same rail, same leaf: NIC up, NIC down
  EXPECT_EQ(r.size(), 2u);
  r.clear();
  t.route(0, 8 * 32, r);  // same rail, next leaf: through the spine
  EXPECT_EQ(r.size(), 4u);
  EXPECT_EQ(t.link(r[1]).cls, LinkClass::spine);
}

TEST(Topology, OversubscriptionDividesLeafUplinks) {
  const Topology t(cluster("hgx-h100-roce", 64, ", inter_node: {oversubscription: 2}"));
  // Fat-tree: 64 nodes x 8 NICs = 512 ports = 16 leaves of 32 downlinks, each uplink
  // 32 x 50 GB/s x 0.94 / 2.
  EXPECT_EQ(t.leaves(), 16);
  std::vector<int> r;
  t.route(0, 8 * 63, r);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_DOUBLE_EQ(t.link(r[1]).capacity.value(), 32 * 50e9 * 0.94 / 2);
}

TEST(Topology, SharedNicsWhenFewerNicsThanGpus) {
  // DGX-1: 4 NICs for 8 GPUs: GPUs 0 and 1 share NIC 0.
  const Topology t(cluster("dgx-1-v100", 2));
  std::vector<int> a, b;
  t.route(0, 8, a);
  t.route(1, 9, b);
  EXPECT_EQ(a.front(), b.front());
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Topology, BackgroundLoadLeavesItsComplement) {
  // Other jobs use 30 % of each inter-node link: 400 Gb/s x 0.94 x 0.7 remains.
  const Topology t(cluster("dgx-h100", 2, ", inter_node: {background_load: 0.3}"));
  std::vector<int> r;
  t.route(0, 8, r);
  EXPECT_DOUBLE_EQ(t.link(r.front()).capacity.value(), 50e9 * 0.94 * 0.7);
  r.clear();
  t.route(0, 1, r);  // NVLink untouched
  EXPECT_DOUBLE_EQ(t.link(r.front()).capacity.value(), 450e9 * 0.82);
}

}  // namespace
}  // namespace orrery
