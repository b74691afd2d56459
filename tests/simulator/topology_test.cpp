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

TEST(Topology, AFailedNicIsBypassedThroughThePeerNextToTheNextNic) {
  // 2 DGX H100, rail-optimized: GPU i uses NIC i on the leaf of rail i. NIC 3 of node 0
  // fails: GPU 3 (node 0) to GPU 11 (node 1, NIC 3) goes NVLink up from GPU 3, NVLink down
  // into GPU 4, out of NIC 4 on rail 4's leaf, across the spine to rail 3's leaf and in
  // by node 1's NIC 3. The way back mirrors it.
  Topology t(cluster("dgx-h100", 2));
  t.fail_nic(0, 3);
  EXPECT_TRUE(t.nic_failed(0, 3));
  EXPECT_FALSE(t.nic_failed(1, 3));
  std::vector<int> r;
  t.route(3, 11, r);
  const std::vector<int> out = {t.nvlink_up(3), t.nvlink_down(4), t.nic_up(0, 4).value(),
                                t.spine_up(4), t.spine_down(3), t.nic_down(1, 3).value()};
  EXPECT_EQ(r, out);
  r.clear();
  t.route(11, 3, r);
  const std::vector<int> back = {t.nic_up(1, 3).value(), t.spine_up(3), t.spine_down(4),
                                 t.nic_down(0, 4).value(), t.nvlink_up(4), t.nvlink_down(3)};
  EXPECT_EQ(r, back);
  // GPU 5 keeps its own NIC; with NIC 4 failed too, GPU 3 moves on to NIC 5.
  r.clear();
  t.route(5, 13, r);
  EXPECT_EQ(r, (std::vector<int>{t.nic_up(0, 5).value(), t.nic_down(1, 5).value()}));
  t.fail_nic(0, 4);
  r.clear();
  t.route(3, 13, r);
  EXPECT_EQ(r, (std::vector<int>{t.nvlink_up(3), t.nvlink_down(5), t.nic_up(0, 5).value(),
                                 t.nic_down(1, 5).value()}));
  // DGX-1 (4 NICs for 8 GPUs): NIC 1 serves GPUs 2 and 3; the first of them is its peer.
  EXPECT_EQ(Topology(cluster("dgx-1-v100", 2)).gpu_of_nic(1, 1), 10);
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
