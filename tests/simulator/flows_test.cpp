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
