// Topology: routes are the shortest paths of the device graph, capacities come from the
// cluster spec, oversubscription divides leaf uplinks.
#include "simulator/topology.h"

#include <gtest/gtest.h>

#include "scenario/load.h"
#include "simulator/flows.h"

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

// Two tiers on a fat-tree (the RoCE HGX H100 preset): 16 nodes of 8 GPUs, 8 NICs of
// 400 Gb/s = 50 GB/s at 0.94 = 47 GB/s; pods of 64 GPUs = 8 nodes, 2 pods. A pod's
// 8 x 8 = 64 NIC ports fill two leaves of 32 (leaves 0-1 pod 0, 2-3 pod 1); a leaf's
// uplink at 1:1 is 32 x 47 = 1,504 GB/s; a pod's uplink to the aggregation layer at 1:7
// is (2 x 1,504) / 7 = 429.71 GB/s.
TEST(Topology, TwoTierOversubscriptionRoute) {
  const Topology t(
      cluster("hgx-h100-roce", 16, ", inter_node: {pod_size: 64, pod_oversubscription: 7}"));
  EXPECT_EQ(t.pods(), 2);
  EXPECT_EQ(t.leaves(), 4);
  EXPECT_EQ(t.pod_of_leaf(1), 0);
  EXPECT_EQ(t.pod_of_leaf(2), 1);
  const double nic = 50e9 * 0.94, leaf_up = 32 * nic, pod_up = 2 * leaf_up / 7;
  // GPU 0 (node 0, port 0, leaf 0) to GPU 120 (node 15 = node 7 of pod 1, port 56 of the
  // pod: leaf 1 of pod 1 = leaf 3): NIC, leaf up, pod up, pod down, leaf down, NIC.
  std::vector<int> r;
  t.route(0, 120, r);
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[1], t.spine_up(0));
  EXPECT_EQ(r[2], t.pod_up(0));
  EXPECT_EQ(r[3], t.pod_down(1));
  EXPECT_EQ(r[4], t.spine_down(3));
  EXPECT_DOUBLE_EQ(t.link(r[0]).capacity.value(), nic);
  EXPECT_DOUBLE_EQ(t.link(r[1]).capacity.value(), leaf_up);
  EXPECT_NEAR(t.link(r[2]).capacity.value(), pod_up, 1e-6 * pod_up);
  EXPECT_NEAR(t.link(r[3]).capacity.value(), pod_up, 1e-6 * pod_up);
  EXPECT_EQ(static_cast<int>(r.size()) + 2, t.bfs_hops(0, 120));
  // GPU 0 to GPU 32 (node 4, port 32: leaf 1, same pod): leaf up and down only.
  r.clear();
  t.route(0, 32, r);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[1], t.spine_up(0));
  EXPECT_EQ(r[2], t.spine_down(1));
  EXPECT_EQ(static_cast<int>(r.size()) + 2, t.bfs_hops(0, 32));

  // Every GPU of pod 0 sends to its peer 64 GPUs on in pod 1 at once: 64 flows share the
  // pod uplink, 429.71 / 64 = 6.714 GB/s each, below the NIC's 47 and a leaf uplink's
  // 1,504 / 32 = 47. At 1:1 between pods the pod uplink is 3,008 GB/s, 47 each: the NICs
  // bound it.
  for (const double over : {7.0, 1.0}) {
    const Topology u(cluster(
        "hgx-h100-roce", 16,
        ", inter_node: {pod_size: 64, pod_oversubscription: " + std::to_string(over) + "}"));
    std::vector<double> cap;
    for (int l = 0; l < u.link_count(); ++l) cap.push_back(u.link(l).capacity.value());
    FlowNetwork net(cap);
    std::vector<int> flows;
    for (int g = 0; g < 64; ++g) {
      std::vector<int> path;
      u.route(g, g + 64, path);
      std::vector<FlowLink> links;
      for (int l : path) links.push_back({l});
      flows.push_back(net.start(links, 1e9, g));
    }
    const double expected = over == 7.0 ? 2 * leaf_up / 7 / 64 : nic;
    for (int f : flows) EXPECT_NEAR(net.rate(f), expected, 1e-9 * expected) << "1:" << over;
  }
}

TEST(Topology, PodsOnARailOptimizedFabric) {
  // 4 DGX H100 in pods of 16 GPUs (2 nodes): each rail has one leaf per pod (2 nodes
  // each), 8 x 2 = 16 leaves; rail r's leaves are 2r (pod 0) and 2r + 1 (pod 1).
  const Topology t(cluster("dgx-h100", 4, ", inter_node: {pod_size: 16, pod_oversubscription: 2}"));
  EXPECT_EQ(t.pods(), 2);
  EXPECT_EQ(t.leaves(), 16);
  std::vector<int> r;
  t.route(0, 8, r);  // node 1, rail 0: same leaf
  EXPECT_EQ(r.size(), 2u);
  r.clear();
  t.route(0, 9, r);  // node 1, rail 1: leaf 2, same pod
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[2], t.spine_down(2));
  r.clear();
  t.route(0, 16, r);  // node 2, rail 0: leaf 1 of pod 1, through the aggregation layer
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[4], t.spine_down(1));
  // Each leaf has 2 NICs below it: uplink 2 x 47 GB/s; pod 0's 8 leaves send up 16 x 47,
  // halved at 2:1.
  EXPECT_DOUBLE_EQ(t.link(r[1]).capacity.value(), 2 * 47e9);
  EXPECT_NEAR(t.link(r[2]).capacity.value(), 16 * 47e9 / 2, 1e-3);
  EXPECT_EQ(static_cast<int>(r.size()) + 2, t.bfs_hops(0, 16));
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
