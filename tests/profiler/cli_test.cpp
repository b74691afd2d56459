// orrery-profile's command line end to end, on the fake device and a fake environment.
#include "profiler/cli.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "profiler/fake_device.h"

namespace orrery::profiler {
namespace {

class FakeEnvironment : public Environment {
 public:
  explicit FakeEnvironment(bool terminal = false) : terminal_(terminal) {}
  std::string utc_now_iso8601() override { return "2026-11-27T01:23:45Z"; }
  std::string hostname() override { return "test-host"; }
  bool stderr_is_terminal() override { return terminal_; }

 private:
  bool terminal_;
};

struct Result {
  int code = -1;
  std::string out, err;
  int opened = 0;  // how many times the device factory was called
};

// How the fake factory behaves.
struct FakeSetup {
  int gpus = 2;
  int nodes = 1;
  bool no_device = false;
  bool secondary = false;  // a non-primary MPI rank
  bool without_mpi = false;  // --mpi is refused as a build without MPI refuses it
  bool terminal = false;     // stderr is a terminal
};

Result run(const std::vector<std::string>& args, FakeSetup setup) {
  FakeEnvironment env(setup.terminal);
  std::ostringstream out, err;
  Result r;
  const DeviceFactory factory = [&](const CliOptions& o) -> std::unique_ptr<Device> {
    ++r.opened;
    if (setup.no_device)
      throw DeviceUnavailable("cudaGetDeviceCount: no CUDA-capable device is detected");
    if (o.mpi && setup.without_mpi)
      throw InputError({"command line", std::nullopt}, "--mpi", "", "built without MPI");
    DeviceInfo info = fake_device_info(setup.gpus);
    info.nodes = setup.nodes;
    auto d = std::make_unique<FakeDevice>(info);
    if (setup.secondary) d->secondary();
    return d;
  };
  r.code = profile_main(args, factory, env, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

Result run(const std::vector<std::string>& args, int gpus = 2) {
  FakeSetup s;
  s.gpus = gpus;
  return run(args, s);
}

bool starts(const std::string& s, const std::string& prefix) {
  const bool ok = s.rfind(prefix, 0) == 0;
  if (!ok) ADD_FAILURE() << "'" << s << "' does not start with '" << prefix << "'";
  return ok;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ProfileCli, UnknownFlagIsExit2WithAHint) {
  const Result r = run({"--qiuck"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "error: flag '--qiuck': unknown flag (did you mean '--quick'?)\n"
            "run 'orrery-profile --help' for the flags\n");
  EXPECT_EQ(r.opened, 0);  // bad input is reported before any GPU work
}

TEST(ProfileCli, BadValuesNameTheFlagAndTheValue) {
  EXPECT_TRUE(starts(run({"--warmup", "abc"}).err,
                     "error: flag '--warmup' = 'abc': expected a whole number\n"));
  EXPECT_TRUE(starts(run({"--repetitions=0"}).err,
                     "error: flag '--repetitions' = '0': must be between 1 and 10000\n"));
  const Result only = run({"--only", "gemm,colectives"});
  EXPECT_EQ(only.code, 2);
  EXPECT_NE(only.err.find("unknown item 'colectives' (did you mean 'collectives'?); accepted: "
                          "gemm, memory_bound, attention, launch, collectives"),
            std::string::npos)
      << only.err;
  EXPECT_EQ(run({"--dtypes", "bf8"}).code, 2);
  EXPECT_TRUE(starts(run({"--out"}).err, "error: flag '--out': needs a value\n"));
  EXPECT_TRUE(starts(run({"--quick=yes"}).err, "error: flag '--quick' = 'yes': takes no value\n"));
  EXPECT_EQ(run({"extra"}).code, 2);
}

TEST(ProfileCli, BadGemmShapeSustainedAndAccumulationValuesAreExit2) {
  const Result acc = run({"--fp8-accumulation", "fsat"});
  EXPECT_EQ(acc.code, 2);
  EXPECT_TRUE(starts(acc.err,
                     "error: flag '--fp8-accumulation' = 'fsat': expected fast, split "
                     "or both (did you mean 'fast'?)\n"));
  EXPECT_EQ(acc.opened, 0);
  EXPECT_TRUE(starts(run({"--sustained", "0"}).err,
                     "error: flag '--sustained' = '0': must be between 1 and 3600\n"));
  EXPECT_TRUE(starts(run({"--sustained=1.5"}).err,
                     "error: flag '--sustained' = '1.5': expected a whole number\n"));
  EXPECT_TRUE(starts(run({"--sustained"}).err, "error: flag '--sustained': needs a value\n"));
  for (const std::string bad : {"8192x8192", "8192x8192x0", "8192x8192x8192x2", "axbxc",
                                "8192x-1x8", "8192,", "4x4x3000000000"}) {
    const Result r = run({"--gemm-shapes", "4x4x4," + bad});
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_TRUE(starts(r.err, "error: flag '--gemm-shapes' = '4x4x4," + bad + "': item '"))
        << r.err;
    EXPECT_NE(r.err.find("is not MxNxK with whole numbers from 1 to 2147483647"), std::string::npos)
        << r.err;
  }
  EXPECT_TRUE(starts(run({"--mpi", "--sustained", "10"}).err,
                     "error: flag '--mpi': does not combine with --sustained (an MPI run "
                     "measures no GEMMs)\n"));
}

TEST(ProfileCli, GivenShapesBothAccumulationsSustainedInTheDryRun) {
  FakeSetup s;
  s.no_device = true;
  const Result r =
      run({"--dry-run", "--only", "gemm", "--dtypes", "bf16,fp8", "--gemm-shapes",
           "8192x8192x8192,2048x9216x12288", "--fp8-accumulation", "both", "--sustained", "30"},
          s);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.opened, 0);
  // Shapes sorted (m, n, k); each fp8 shape fast then split. 6 cases x 30 s = 180 s of load.
  EXPECT_EQ(r.out,
            "gemm bf16 m=2048 n=9216 k=12288\n"
            "gemm bf16 m=8192 n=8192 k=8192\n"
            "gemm fp8 fast m=2048 n=9216 k=12288\n"
            "gemm fp8 split m=2048 n=9216 k=12288\n"
            "gemm fp8 fast m=8192 n=8192 k=8192\n"
            "gemm fp8 split m=8192 n=8192 k=8192\n"
            "6 cases, 20 repetitions each after 5 warm-up; GEMMs after 30 s back to back each "
            "(180 s of load)\n");
}

TEST(ProfileCli, SustainedAccumulationFieldsInTheFile) {
  const std::string path = ::testing::TempDir() + "prof_cli_sustained.yaml";
  const Result r = run({"--only", "gemm", "--dtypes", "fp8", "--gemm-shapes", "4096x4096x4096",
                        "--fp8-accumulation", "fast", "--sustained", "20", "--repetitions", "5",
                        "--quiet", "--out", path});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = read(path);
  // fp8 fast 4096^3 under load on the fake: 2 * 4096^3 FLOP / (500e12 * 1.25 * 0.9 FLOP/s)
  // = 137.438953472e9 / 562.5e12 = 244.3 us; the clock 0.9 x 1000 MHz.
  EXPECT_NE(text.find("gemm:\n  - {dtype: fp8, accumulation: fast, m: 4096, n: 4096, k: 4096, "
                      "sustained: 20 s, sm_clock_mhz: 900, median: 244.3 us, "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("skipped: []\n"), std::string::npos) << text;
}

TEST(ProfileCli, NoGpuIsExit3) {
  FakeSetup s;
  s.no_device = true;
  const Result r = run({"--quick"}, s);
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err,
            "error: no GPU to measure: cudaGetDeviceCount: no CUDA-capable device is detected\n");
}

TEST(ProfileCli, UnwritableOutputIsExit1) {
  const Result r = run({"--only", "launch", "--out", "/nonexistent-dir/m.yaml"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "error: cannot write '/nonexistent-dir/m.yaml': '/nonexistent-dir' is not a "
            "writable directory\n");
  EXPECT_EQ(r.opened, 0);  // refused before any GPU work
}

TEST(ProfileCli, HelpAndVersion) {
  EXPECT_EQ(run({"--help"}).code, 0);
  EXPECT_EQ(run({"--help"}).out, usage());
  EXPECT_EQ(run({"--version"}).out, "orrery-profile 0.1.0\n");
}

TEST(ProfileCli, WritesTheFileAndASummary) {
  const std::string path = ::testing::TempDir() + "prof_cli_test.yaml";
  const Result r = run({"--only", "launch,collectives", "--repetitions", "5", "--warmup", "0",
                        "--quick", "--out", path});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = read(path);
  EXPECT_NE(text.find("  date: \"2026-11-27T01:23:45Z\"\n  host: \"test-host\"\n  gpu: \"Fake GPU\"\n"
                      "  gpu_count: 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("  timing: fake\n  warmup: 0\n  repetitions: 5\ngemm: []\n"),
            std::string::npos);
  // Launch: the fake's 2 us floor, times 0.984 (p10) and 1.032 (p90) from the fake's
  // repetition pattern (see sweep_test.cpp). All-reduce of 1 MiB on 2 GPUs: 10 us + 1048576 B *
  // 2(2-1)/2 / 100e9 B/s = 10 us + 10.48576 us = 20.49 us (median: jitter 0).
  EXPECT_NE(text.find("launch:\n  - {kernel: empty, median: 2 us, p10: 1.968 us, p90: 2.064 us}\n"),
            std::string::npos);
  EXPECT_NE(text.find("  - {op: all_reduce, gpus: 2, nodes: 1, bytes: 1 MiB, median: 20.49 us, "),
            std::string::npos)
      << text;
  // Quick: 6 ops x 4 sizes on the 2 GPUs.
  EXPECT_NE(r.err.find("wrote " + path + ": 25 measured, 0 skipped"), std::string::npos);
  // Summary: all-reduce busbw at 1 GiB = 2^30 B * 1 / (10 us + 2^30 B / 100e9 B/s) =
  // 1073741824 / 10.747518 ms = 99.9 GB/s.
  EXPECT_NE(r.out.find("  all_reduce     2 GPUs    99.9 GB/s bus  best of 4 at 1 GiB\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  launch (empty kernel) 2 us\n"), std::string::npos);
  // Progress is silent: stderr is not a terminal in this environment.
  EXPECT_EQ(r.err.find('\r'), std::string::npos);
}

TEST(ProfileCli, ProgressOnATerminalUnlessQuiet) {
  const std::string path = ::testing::TempDir() + "prof_cli_progress.yaml";
  FakeSetup s;
  s.terminal = true;
  const Result shown = run({"--only", "launch", "--repetitions", "5", "--out", path}, s);
  ASSERT_EQ(shown.code, 0);
  EXPECT_EQ(shown.err, "\r\x1b[K[1/1] launch empty: median 2 us\n"
                       "orrery-profile: wrote " + path + ": 1 measured, 0 skipped\n");
  const Result quiet = run({"--only", "launch", "--quiet", "--out", path}, s);
  ASSERT_EQ(quiet.code, 0);
  EXPECT_EQ(quiet.err, "");
}

TEST(ProfileCli, DryRunListsThePlanWithoutAGpu) {
  FakeSetup s;
  s.no_device = true;
  const Result r = run({"--dry-run", "--quick", "--max-gpus", "8"}, s);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.opened, 0);
  // The quick sweep on 8 GPUs, as Plan.QuickSweepContents counts it.
  EXPECT_NE(r.out.find("\n81 cases, 10 repetitions each after 3 warm-up\n"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.rfind("gemm fp32 m=1024 n=1024 k=1024\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nsend_recv gpus=8 nodes=1 bytes=1 GiB\n"), std::string::npos);
  const Result one = run({"--dry-run", "--only", "collectives"}, s);
  EXPECT_EQ(one.out,
            "collectives: skipped: 1 GPU available: collectives need at least 2\n"
            "0 cases, 20 repetitions each after 5 warm-up\n");
}

TEST(ProfileCli, SameInputsSameBytes) {
  const std::string a = ::testing::TempDir() + "prof_cli_a.yaml";
  const std::string b = ::testing::TempDir() + "prof_cli_b.yaml";
  ASSERT_EQ(run({"--quick", "--quiet", "--out", a}, 4).code, 0);
  ASSERT_EQ(run({"--quick", "--quiet", "--out", b}, 4).code, 0);
  EXPECT_EQ(read(a), read(b));
  EXPECT_GT(read(a).size(), 1000u);
}

TEST(ProfileCli, MaxGpusLimitsTheGroups) {
  const std::string path = ::testing::TempDir() + "prof_cli_max.yaml";
  const Result r = run({"--only", "collectives", "--quick", "--max-gpus", "1", "--out", path}, 8);
  ASSERT_EQ(r.code, 0);
  const std::string text = read(path);
  EXPECT_NE(text.find("  gpu_count: 1\n"), std::string::npos);
  EXPECT_NE(text.find("collectives: []\nskipped:\n  - {what: \"collectives\", reason: \"1 GPU "
                      "available: collectives need at least 2\"}\n"),
            std::string::npos)
      << text;
}

TEST(ProfileCliMpi, CollectivesOnTheWholeJobOnly) {
  // 2 nodes x 8 GPUs as one MPI job: every op on all 16 ranks, nodes: 2, quick sizes.
  const std::string path = ::testing::TempDir() + "prof_cli_mpi.yaml";
  FakeSetup s;
  s.gpus = 16;
  s.nodes = 2;
  const Result r = run({"--mpi", "--quick", "--quiet", "--out", path}, s);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string text = read(path);
  EXPECT_NE(text.find("gemm: []\nmemory_bound: []\nattention: []\nlaunch: []\ncollectives:\n"
                      "  - {op: all_reduce, gpus: 16, nodes: 2, bytes: 1 KiB, "),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("gpus: 2,"), std::string::npos);  // no smaller groups
  // 6 ops x 4 sizes.
  EXPECT_NE(r.out.find("all_reduce     16 GPUs"), std::string::npos) << r.out;
}

TEST(ProfileCliMpi, OnlyRankZeroWrites) {
  const std::string path = ::testing::TempDir() + "prof_cli_mpi_secondary.yaml";
  std::remove(path.c_str());
  FakeSetup s;
  s.gpus = 4;
  s.secondary = true;
  const Result r = run({"--mpi", "--quick", "--out", path}, s);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  EXPECT_FALSE(std::ifstream(path).good());
}

TEST(ProfileCliMpi, RefusedCombinationsAreExit2) {
  EXPECT_TRUE(starts(run({"--mpi", "--only", "gemm"}).err,
                     "error: flag '--mpi': an MPI run measures collectives only, and --only asks "
                     "for gemm\n"));
  EXPECT_EQ(run({"--mpi", "--max-gpus", "2"}).code, 2);
  FakeSetup s;
  s.without_mpi = true;
  const Result r = run({"--mpi"}, s);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "error: flag '--mpi': built without MPI\n");
}

}  // namespace
}  // namespace orrery::profiler
