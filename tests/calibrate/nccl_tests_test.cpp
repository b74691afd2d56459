// nccl-tests logs as the programs print them (layout of nccl-tests 2.13+, with the
// `root` column and `#wrong`; older logs with `error` and no `root`), including several
// runs in one file, N/A columns, and truncated and malformed rows.
#include <gtest/gtest.h>

#include "calibrate/families.h"
#include "calibrate/nccl_tests.h"
#include "core/error.h"

namespace orrery {
namespace {

// Two runs in one file, as a script running two programs back to back writes it.
// Figures are made up for the test; busbw = algbw x 2(n-1)/n = 1.75 algbw for an
// all-reduce on 8 ranks, and 0.875 algbw for an all-gather.
const char* kTwoRuns = R"(+ ./build/all_reduce_perf -b 1M -e 4M -f 2 -g 8
# nThread 1 nGpus 8 minBytes 1048576 maxBytes 4194304 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#
# Using devices
#  Rank  0 Group  0 Pid  41234 on   node-a device  0 [0x07] NVIDIA A100-SXM4-80GB
#  Rank  1 Group  0 Pid  41234 on   node-a device  1 [0x0b] NVIDIA A100-SXM4-80GB
#  Rank  2 Group  0 Pid  41234 on   node-a device  2 [0x48] NVIDIA A100-SXM4-80GB
#  Rank  3 Group  0 Pid  41234 on   node-a device  3 [0x4c] NVIDIA A100-SXM4-80GB
#  Rank  4 Group  0 Pid  41234 on   node-a device  4 [0x88] NVIDIA A100-SXM4-80GB
#  Rank  5 Group  0 Pid  41234 on   node-a device  5 [0x8b] NVIDIA A100-SXM4-80GB
#  Rank  6 Group  0 Pid  41234 on   node-a device  6 [0xc9] NVIDIA A100-SXM4-80GB
#  Rank  7 Group  0 Pid  41234 on   node-a device  7 [0xcc] NVIDIA A100-SXM4-80GB
#
#                                                              out-of-place                       in-place          
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       
     1048576        262144     float     sum      -1    50.00   20.97   36.70      0    48.00   21.85   38.23      0
     2097152        524288     float     sum      -1    70.00   29.96   52.43    N/A    68.00   30.84   53.97    N/A
     4194304       1048576     float     sum      -1    N/A     N/A     N/A      N/A    90.00   46.60   81.56      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 57.6548 
#
+ ./build/all_gather_perf -b 1M -e 2M -f 2 -g 8
# nThread 1 nGpus 8 minBytes 1048576 maxBytes 2097152 step: 2(factor) warmup iters: 5 iters: 20 agg iters: 1 validation: 1 graph: 0
#
# Using devices
#  Rank  0 Group  0 Pid  41301 on   node-a device  0 [0x07] NVIDIA A100-SXM4-80GB
#  Rank  1 Group  0 Pid  41301 on   node-a device  1 [0x0b] NVIDIA A100-SXM4-80GB
#  Rank  2 Group  0 Pid  41301 on   node-a device  2 [0x48] NVIDIA A100-SXM4-80GB
#  Rank  3 Group  0 Pid  41301 on   node-a device  3 [0x4c] NVIDIA A100-SXM4-80GB
#  Rank  4 Group  0 Pid  41301 on   node-b device  0 [0x07] NVIDIA A100-SXM4-80GB
#  Rank  5 Group  0 Pid  41301 on   node-b device  1 [0x0b] NVIDIA A100-SXM4-80GB
#  Rank  6 Group  0 Pid  41301 on   node-b device  2 [0x48] NVIDIA A100-SXM4-80GB
#  Rank  7 Group  0 Pid  41301 on   node-b device  3 [0x4c] NVIDIA A100-SXM4-80GB
node-a:41301:41301 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.1<0>
#
#                                                              out-of-place                       in-place          
#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong
#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)       
     1048576         32768     float    none      -1    40.00   26.21   22.94      0    39.00   26.89   23.53      0
     2097152         65536     float    none      -1    60.00   34.95   30.58      0    58.00   36.16   31.64      0
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 27.1725 
#
)";

TEST(NcclTests, ReadsBothColumnGroupsOfEveryRunInOneFile) {
  const auto runs = read_nccl_tests_text(kTwoRuns, "bench.log");
  ASSERT_EQ(runs.size(), 2u);
  const NcclTestsRun& ar = runs[0];
  EXPECT_EQ(ar.op, CollectiveOp::all_reduce);  // from the "+ ./build/all_reduce_perf" echo
  EXPECT_EQ(ar.gpus, 8);
  EXPECT_EQ(ar.nodes, 1);
  EXPECT_EQ(ar.gpu, "NVIDIA A100-SXM4-80GB");
  EXPECT_EQ(ar.line, 2);
  ASSERT_EQ(ar.rows.size(), 3u);
  const NcclTestsRow& r0 = ar.rows[0];
  EXPECT_EQ(r0.size.value(), 1048576.0);
  EXPECT_EQ(r0.count, 262144);
  EXPECT_EQ(r0.type, "float");
  EXPECT_EQ(r0.redop, "sum");
  EXPECT_EQ(r0.line, 17);
  ASSERT_TRUE(r0.out_of_place && r0.in_place);
  EXPECT_DOUBLE_EQ(r0.out_of_place->time.value(), 50.00e-6);
  EXPECT_DOUBLE_EQ(r0.out_of_place->busbw.value(), 36.70e9);
  EXPECT_DOUBLE_EQ(r0.in_place->time.value(), 48.00e-6);
  EXPECT_DOUBLE_EQ(r0.in_place->algbw.value(), 21.85e9);
  EXPECT_EQ(r0.in_place->wrong, 0.0);
  // #wrong printed N/A (validation off): the timing stands, the check result is absent.
  ASSERT_TRUE(ar.rows[1].in_place);
  EXPECT_FALSE(ar.rows[1].in_place->wrong.has_value());
  // A group printed N/A is absent; the other group of the row stays.
  EXPECT_FALSE(ar.rows[2].out_of_place);
  ASSERT_TRUE(ar.rows[2].in_place);
  EXPECT_DOUBLE_EQ(ar.rows[2].in_place->time.value(), 90.00e-6);
  ASSERT_TRUE(ar.avg_busbw);
  EXPECT_DOUBLE_EQ(ar.avg_busbw->value(), 57.6548e9);

  const NcclTestsRun& ag = runs[1];
  EXPECT_EQ(ag.op, CollectiveOp::all_gather);
  EXPECT_EQ(ag.gpus, 8);
  EXPECT_EQ(ag.nodes, 2);  // ranks on node-a and node-b
  ASSERT_EQ(ag.rows.size(), 2u);
  EXPECT_EQ(ag.rows[1].redop, "none");
}

// An older nccl-tests layout: no root column, a floating `error` column, rank lines
// without Group, launched with mpirun -np 2 -g 1 (nGpus 1, two Rank lines).
const char* kOldLayout = R"(# nThread 1 nGpus 1 minBytes 8 maxBytes 134217728 step: 2(factor) warmup iters: 5 iters: 20 validation: 1
#
# Using devices
#   Rank  0 Pid   1320 on host-1 device  0 [0x00] Tesla V100-SXM2-16GB
#   Rank  1 Pid   2066 on host-2 device  0 [0x00] Tesla V100-SXM2-16GB
#
#                                                       out-of-place                       in-place
#       size         count      type   redop     time   algbw   busbw  error     time   algbw   busbw  error
#        (B)    (elements)                       (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
     8388608       2097152     float     sum    800.0   10.49   10.49  0e+00    790.0   10.62   10.62  0e+00
    16777216       4194304     float     sum   1580.0   10.62   10.62  1e-07   1570.0   10.69   10.69  0e+00
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 10.605
)";

TEST(NcclTests, ReadsTheOlderLayoutWithAnErrorColumnAndMpiRanks) {
  // busbw = algbw for 2 ranks: 2(2-1)/2 = 1.
  const auto runs = read_nccl_tests_text(kOldLayout, "all_reduce_perf.log");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].op, CollectiveOp::all_reduce);  // from the file name
  EXPECT_EQ(runs[0].gpus, 2);           // two Rank lines, not nThread x nGpus = 1
  EXPECT_EQ(runs[0].nodes, 2);
  EXPECT_EQ(runs[0].gpu, "Tesla V100-SXM2-16GB");
  ASSERT_EQ(runs[0].rows.size(), 2u);
  EXPECT_DOUBLE_EQ(runs[0].rows[1].out_of_place->wrong.value(), 1e-7);
}

TEST(NcclTests, OpHintNamesTheCollectiveOfALogThatDoesNot) {
  const auto runs = read_nccl_tests_text(kOldLayout, "run7.txt", "all_reduce");
  EXPECT_EQ(runs[0].op, CollectiveOp::all_reduce);
}

// Runs `text` and returns the error message, or "" if it read.
std::string error_of(const std::string& text, const std::string& file = "x_all_reduce_perf.log",
                     const std::string& hint = "") {
  try {
    read_nccl_tests_text(text, file, hint);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string with_row(const std::string& row) {
  std::string t = kOldLayout;
  const std::string anchor = "# Out of bounds";
  return t.insert(t.find(anchor), row + "\n");
}

TEST(NcclTests, TruncatedRowIsAnErrorNamingTheLine) {
  // A run cut off mid-row (the job was killed): line 12 holds the stub.
  const std::string e = error_of(with_row("    33554432       8388608     float     sum   31"));
  EXPECT_NE(e.find("x_all_reduce_perf.log:12"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated or malformed row: expected 12 columns"), std::string::npos) << e;
}

TEST(NcclTests, MalformedNumberIsAnErrorNamingLineColumnAndValue) {
  const std::string e = error_of(with_row(
      "    33554432       8388608     float     sum   31x0.0   10.62   10.62  0e+00   3100.0   "
      "10.82   10.82  0e+00"));
  EXPECT_NE(e.find(":12"), std::string::npos) << e;
  EXPECT_NE(e.find("'time'"), std::string::npos) << e;
  EXPECT_NE(e.find("31x0.0"), std::string::npos) << e;
}

TEST(NcclTests, WrongResultsAreRefused) {
  std::string t = kTwoRuns;
  const std::string good = "0    48.00   21.85   38.23      0";
  t.replace(t.find(good), good.size(), "0    48.00   21.85   38.23      3");
  const std::string e = error_of(t, "bench.log");
  EXPECT_NE(e.find("bench.log:17"), std::string::npos) << e;
  EXPECT_NE(e.find("'#wrong' = '3'"), std::string::npos) << e;
}

TEST(NcclTests, UnknownOpIsAnErrorAskingForOp) {
  const std::string e = error_of(kOldLayout, "run7.txt");
  EXPECT_NE(e.find("run7.txt:1"), std::string::npos) << e;
  EXPECT_NE(e.find("pass --op"), std::string::npos) << e;
}

TEST(NcclTests, BusBandwidthThatDoesNotMatchTheOpIsAnError) {
  // The all-gather rows of kTwoRuns (busbw = 0.875 algbw) read as an all-reduce (1.75).
  std::string t = kTwoRuns;
  t.replace(t.find("all_gather_perf"), 15, "all_reduce_perf");
  const std::string e = error_of(t, "bench.log");
  EXPECT_NE(e.find("bench.log:40"), std::string::npos) << e;
  EXPECT_NE(e.find("busbw / algbw = 0.875"), std::string::npos) << e;
}

TEST(NcclTests, RowBeforeHeaderAndEmptyRunAndNoRunAreErrors) {
  EXPECT_NE(error_of("     8388608       2097152     float     sum    800.0\n").find(":1"),
            std::string::npos);
  const std::string header_only = std::string(kOldLayout).substr(0, std::string(kOldLayout).find("     8388608"));
  EXPECT_NE(error_of(header_only).find("no result rows"), std::string::npos);
  EXPECT_NE(error_of("hello\n").find("no nccl-tests run found"), std::string::npos);
  EXPECT_NE(error_of(kOldLayout, "a.log", "allreduce").find("'--op' = 'allreduce'"),
            std::string::npos);
}

// Regression: nThread x nGpus was multiplied in int, which overflowed (undefined
// behaviour, reported by UBSan) for 999999 x 999999 before any check on the rank count.
TEST(NcclTests, RankCountOverflowingIntIsRefused) {
  const std::string text =
      "# nThread 999999 nGpus 999999 minBytes 8 maxBytes 16 step: 2(factor)\n"
      "#       size         count      type   redop    root     time   algbw   busbw #wrong"
      "     time   algbw   busbw #wrong\n"
      "           8             2     float     sum      -1    10.00    0.00    0.00      0"
      "    10.00    0.00    0.00      0\n";
  // 999999^2 = 999998000001 ranks, above the 2^24 = 16777216 any profile accepts.
  EXPECT_EQ(error_of(text),
            "error: x_all_reduce_perf.log:1: key 'nThread x nGpus' = '999998000001': more ranks "
            "than any cluster orrery models (at most 16777216)");
  // At the bound itself the run reads: 4096 x 4096 = 2^24 ranks.
  std::string at_bound = text;
  at_bound.replace(at_bound.find("999999 nGpus 999999"), 19, "4096 nGpus 4096");
  EXPECT_EQ(read_nccl_tests_text(at_bound, "x_all_reduce_perf.log").at(0).gpus, 16777216);
}

TEST(NcclTests, BusBandwidthFactorsFollowNcclTests) {
  // nccl-tests PERFORMANCE.md: all-reduce 2(n-1)/n, all-gather (n-1)/n, broadcast 1.
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::all_reduce, 8), 1.75);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::all_gather, 8), 0.875);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::reduce_scatter, 4), 0.75);
  EXPECT_DOUBLE_EQ(busbw_factor(CollectiveOp::broadcast, 8), 1.0);
}

}  // namespace
}  // namespace orrery
