// Max-min fair sharing.
#include "simulator/flows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace orrery {
namespace {

TEST(Flows, ThreeFlowMaxMinExample) {
  // Links: L0 capacity 1, L1 capacity 2. Flows: A on L0, B on L0 and L1, C on L1.
  // Progressive filling: all rise to 0.5, where L0 is full (A + B = 1) and L1 has
  // 2 - 1 = 1 left, which C alone takes: A = B = 0.5, C = 1.5.
  FlowNetwork net({1.0, 2.0});
  const int a = net.start({{0}}, 10.0, 0);
  const int b = net.start({{0}, {1}}, 10.0, 1);
  const int c = net.start({{1}}, 10.0, 2);
  EXPECT_DOUBLE_EQ(net.rate(a), 0.5);
  EXPECT_DOUBLE_EQ(net.rate(b), 0.5);
  EXPECT_DOUBLE_EQ(net.rate(c), 1.5);
}

TEST(Flows, WeightedCopiesTakeTheirShare) {
  // One simulated flow standing for 3 copies shares a link of 4 with one plain flow:
  // rates r for each of the 4 streams, 4r = 4, r = 1.
  FlowNetwork net({4.0});
  const int copies = net.start({{0, 3.0}}, 1.0, 0);
  const int plain = net.start({{0, 1.0}}, 1.0, 1);
  EXPECT_DOUBLE_EQ(net.rate(copies), 1.0);
  EXPECT_DOUBLE_EQ(net.rate(plain), 1.0);
}

TEST(Flows, CompletionFreesBandwidth) {
  // Two flows of 1 and 3 bytes on a link of 2 bytes/s: both at 1 until t = 1, then the
  // second alone at 2: it ends at 1 + 2/2 = 2.
  FlowNetwork net({2.0});
  net.start({{0}}, 1.0, 7);
  net.start({{0}}, 3.0, 8);
  EXPECT_DOUBLE_EQ(net.next_completion(), 1.0);
  net.advance(1.0);
  std::vector<int> done;
  net.collect_finished(done);
  ASSERT_EQ(done, std::vector<int>{7});
  EXPECT_DOUBLE_EQ(net.next_completion(), 2.0);
  net.advance(2.0);
  done.clear();
  net.collect_finished(done);
  EXPECT_EQ(done, std::vector<int>{8});
  EXPECT_DOUBLE_EQ(net.bytes_per_link()[0], 4.0);
}

TEST(Flows, ManyRateChangesKeepEveryCompletion) {
  // 200 flows of 1, 2, ..., 200 bytes on one link of 1 byte/s, started one at a time at
  // t = 0 with their rates read after each start: every start re-rates all the flows
  // before it, so 200 x 201 / 2 = 20,100 completion entries are pushed for 200 live
  // ones, and the stale ones are dropped in bulk (compact_heap) along the way. Max-min
  // sharing then finishes flow k once the k - 1 before it are gone: between the (k - 1)th
  // and kth completions the 201 - k flows left share the link, each moving the 1 byte
  // flow k has beyond flow k - 1, so T_k = T_(k-1) + (201 - k) = sum over j <= k of (201 - j).
  FlowNetwork net({1.0});
  for (int i = 1; i <= 200; ++i) {
    const int id = net.start({{0}}, static_cast<double>(i), i);
    EXPECT_DOUBLE_EQ(net.rate(id), 1.0 / i);
  }
  double expected = 0;
  std::vector<int> done;
  for (int k = 1; k <= 200; ++k) {
    expected += 201 - k;
    const double t = net.next_completion();
    ASSERT_NEAR(t, expected, 1e-9 * expected) << "flow " << k;
    net.advance(t);
    done.clear();
    net.collect_finished(done);
    ASSERT_EQ(done, std::vector<int>{k});
  }
  EXPECT_EQ(net.active(), 0);
  EXPECT_TRUE(std::isinf(net.next_completion()));
  EXPECT_NEAR(net.bytes_per_link()[0], 200.0 * 201.0 / 2.0, 1e-6);
}

TEST(Flows, ScaleSlowsOnlyThatFlow) {
  FlowNetwork net({2.0});
  const int a = net.start({{0}}, 1.0, 0, 0.5);
  const int b = net.start({{0}}, 1.0, 1);
  EXPECT_DOUBLE_EQ(net.rate(a), 0.5);  // fair share 1, scaled by 0.5
  EXPECT_DOUBLE_EQ(net.rate(b), 1.0);  // the freed half is not redistributed
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

TEST(Flows, AFlowOverAFailedLinkNeverCompletes) {
  // Regression: a flow whose only link lost all its capacity got rate 0 and completion
  // time infinity, and (inf - now) * 0 = NaN made it look due at once.
  FlowNetwork net({1.0, 1.0});
  const int a = net.start({{0}}, 10.0, 7);
  const int b = net.start({{1}}, 10.0, 8);
  net.set_capacity(0, 0.0);
  EXPECT_DOUBLE_EQ(net.rate(a), 0.0);
  EXPECT_DOUBLE_EQ(net.rate(b), 1.0);
  EXPECT_DOUBLE_EQ(net.next_completion(), 10.0);
  net.advance(10.0);
  std::vector<int> done;
  net.collect_finished(done);
  EXPECT_EQ(done, std::vector<int>{8});
  EXPECT_EQ(net.active(), 1);
  EXPECT_TRUE(std::isinf(net.next_completion()));
  // Capacity back: the stalled flow resumes with its 10 bytes left.
  net.set_capacity(0, 2.0);
  EXPECT_DOUBLE_EQ(net.next_completion(), 15.0);
}

}  // namespace
}  // namespace orrery
