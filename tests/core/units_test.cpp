#include "core/units.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace orrery {
namespace {

double parse_ok(const std::string& text, Dimension dim) {
  double v = 0;
  std::string why;
  EXPECT_TRUE(parse_quantity(text, dim, v, why)) << text << ": " << why;
  return v;
}

std::string parse_error(const std::string& text, Dimension dim) {
  double v = 0;
  std::string why;
  EXPECT_FALSE(parse_quantity(text, dim, v, why)) << text;
  return why;
}

TEST(Units, ParsesTheIssueExamples) {
  EXPECT_DOUBLE_EQ(parse_ok("400 GB/s", Dimension::bandwidth), 400e9);
  EXPECT_DOUBLE_EQ(parse_ok("80 GiB", Dimension::bytes), 80.0 * 1024 * 1024 * 1024);
  EXPECT_DOUBLE_EQ(parse_ok("2.5 us", Dimension::seconds), 2.5e-6);
  EXPECT_DOUBLE_EQ(parse_ok("989 TFLOP/s", Dimension::flop_rate), 989e12);
  // Lower-case b is bits: 200 Gb/s = 200e9 / 8 bytes per second.
  EXPECT_DOUBLE_EQ(parse_ok("200 Gb/s", Dimension::bandwidth), 25e9);
}

TEST(Units, DecimalAndBinaryPrefixesDiffer) {
  EXPECT_DOUBLE_EQ(parse_ok("1 GB", Dimension::bytes), 1e9);
  EXPECT_DOUBLE_EQ(parse_ok("1 GiB", Dimension::bytes), 1073741824.0);
  EXPECT_DOUBLE_EQ(parse_ok("81559 MiB", Dimension::bytes), 81559.0 * 1048576.0);
  EXPECT_DOUBLE_EQ(parse_ok("700W", Dimension::power), 700.0);
  EXPECT_DOUBLE_EQ(parse_ok("10.2 kW", Dimension::power), 10200.0);
  EXPECT_DOUBLE_EQ(parse_ok("3 ms", Dimension::seconds), 3e-3);
}

TEST(Units, RejectsMissingAndWrongUnits) {
  EXPECT_NE(parse_error("400", Dimension::bandwidth).find("missing unit"), std::string::npos);
  EXPECT_NE(parse_error("400 GB", Dimension::bandwidth).find("not a bandwidth"), std::string::npos);
  EXPECT_NE(parse_error("fast", Dimension::bandwidth).find("expected a bandwidth"),
            std::string::npos);
  EXPECT_NE(parse_error("nan GB/s", Dimension::bandwidth).find("not finite"), std::string::npos);
  EXPECT_NE(parse_error("inf GiB", Dimension::bytes).find("not finite"), std::string::npos);
  EXPECT_NE(parse_error("1e308 TB", Dimension::bytes).find("overflows"), std::string::npos);
}

TEST(Units, QuantityArithmeticKeepsDimensions) {
  const Seconds t = Flop(989e12) / FlopRate(989e12 / 2);
  EXPECT_DOUBLE_EQ(t.value(), 2.0);
  const Seconds copy = Bytes(3.35e12) / Bandwidth(3.35e12);
  EXPECT_DOUBLE_EQ(copy.value(), 1.0);
}

TEST(Units, FormatsForReports) {
  EXPECT_EQ(format_bytes(Bytes(80.0 * 1073741824.0)), "80.00 GiB");
  EXPECT_EQ(format_bandwidth(Bandwidth(3.35e12)), "3.35 TB/s");
  EXPECT_EQ(format_flop_rate(FlopRate(989.4e12)), "989.4 TFLOP/s");
  EXPECT_EQ(format_seconds(Seconds(2.5e-6)), "2.500 us");
  EXPECT_EQ(format_count(174.6e9), "174.60 B");
  EXPECT_EQ(format_count(12), "12.00");
}

TEST(ClosestMatch, SuggestsTyposOnly) {
  EXPECT_EQ(closest_match("tensor_paralel", {"tp", "sequence_parallel", "tensor_parallel"}),
            "tensor_parallel");
  EXPECT_EQ(closest_match("globl_batch", {"microbatch", "global_batch"}), "global_batch");
  EXPECT_EQ(closest_match("zzzzzz", {"tp", "pp"}), "");
}

}  // namespace
}  // namespace orrery
