#include "profiler/stats.h"

#include <gtest/gtest.h>

namespace orrery::profiler {
namespace {

std::vector<Seconds> secs(std::initializer_list<double> v) {
  std::vector<Seconds> out;
  for (double x : v) out.emplace_back(x);
  return out;
}

TEST(Stats, QuantilesInterpolateBetweenOrderStatistics) {
  // Sorted: 1 2 3 4 10 (n = 5). Median: position 0.5*4 = 2 -> 3.
  // p10: position 0.4 -> 1 + 0.4*(2-1) = 1.4. p90: position 3.6 -> 4 + 0.6*(10-4) = 7.6.
  const TimingStats s = summarize(secs({10, 3, 1, 4, 2}));
  EXPECT_NEAR(s.median.value(), 3.0, 1e-12);
  EXPECT_NEAR(s.p10.value(), 1.4, 1e-12);
  EXPECT_NEAR(s.p90.value(), 7.6, 1e-12);
}

TEST(Stats, EvenCountMedianIsTheMeanOfTheMiddleTwo) {
  // 1 2 3 4: position 1.5 -> 2.5.
  EXPECT_NEAR(quantile(secs({4, 1, 3, 2}), 0.5).value(), 2.5, 1e-12);
  EXPECT_NEAR(quantile(secs({4, 1, 3, 2}), 0.0).value(), 1.0, 1e-12);
  EXPECT_NEAR(quantile(secs({4, 1, 3, 2}), 1.0).value(), 4.0, 1e-12);
}

TEST(Stats, OneSampleIsEveryQuantile) {
  const TimingStats s = summarize(secs({2e-6}));
  EXPECT_EQ(s.median.value(), 2e-6);
  EXPECT_EQ(s.p10.value(), 2e-6);
  EXPECT_EQ(s.p90.value(), 2e-6);
}

}  // namespace
}  // namespace orrery::profiler
