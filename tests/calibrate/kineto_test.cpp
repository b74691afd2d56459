// PyTorch profiler / Kineto Chrome traces: kernels linked to the CPU op that launched
// them through "External id", with the op's input shapes.
#include <gtest/gtest.h>

#include "calibrate/kineto.h"
#include "core/error.h"

namespace orrery {
namespace {

// The event layout torch.profiler writes (export_chrome_trace, record_shapes=True);
// names and numbers made up for the test.
const char* kTrace = R"({
  "schemaVersion": 1,
  "deviceProperties": [{"id": 0, "name": "NVIDIA H100 80GB HBM3", "totalGlobalMem": 85031714816}],
  "traceEvents": [
  {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 100.0, "dur": 20.5,
   "args": {"External id": 7, "Input Dims": [[4096, 1024], [1024, 2048]],
            "Input type": ["c10::BFloat16", "c10::BFloat16"]}},
  {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 110.0,
   "dur": 5.0, "args": {"External id": 7, "correlation": 31}},
  {"ph": "X", "cat": "kernel", "name": "sm90_xmma_gemm_bf16bf16_bf16f32", "pid": 0, "tid": 7,
   "ts": 120.0, "dur": 27.25, "args": {"External id": 7, "correlation": 31, "device": 0}},
  {"ph": "X", "cat": "kernel", "name": "vectorized_elementwise_kernel", "pid": 0, "tid": 7,
   "ts": 150.0, "dur": 3.0, "args": {"correlation": 40, "device": 0}},
  {"ph": "X", "cat": "kernel", "name": "splitk_reduce", "pid": 0, "tid": 7,
   "ts": 148.0, "dur": 1.5, "args": {"correlation": 31, "device": 0}},
  {"ph": "i", "cat": "cpu_instant_event", "name": "marker", "ts": 160.0},
  {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "GPU 0"}}
  ]
})";

TEST(Kineto, KernelsCarryTheirOpAndShapes) {
  const KinetoTrace t = read_kineto_text(kTrace, "trace.json");
  EXPECT_EQ(t.gpu, "NVIDIA H100 80GB HBM3");
  ASSERT_EQ(t.kernels.size(), 3u);
  const TraceKernel& g = t.kernels[0];
  EXPECT_EQ(g.name, "sm90_xmma_gemm_bf16bf16_bf16f32");
  EXPECT_DOUBLE_EQ(g.duration.value(), 27.25e-6);
  EXPECT_EQ(g.op, "aten::mm");
  ASSERT_EQ(g.dims.size(), 2u);
  EXPECT_EQ(g.dims[0], (std::vector<std::int64_t>{4096, 1024}));
  EXPECT_EQ(g.types[1], "c10::BFloat16");
  EXPECT_EQ(g.op_id, 7);
  // A kernel with no External id and a correlation no runtime call has keeps no op.
  EXPECT_TRUE(t.kernels[1].op.empty());
  EXPECT_FALSE(t.kernels[1].op_id);
  // One with only a correlation is linked through cudaLaunchKernel (correlation 31,
  // External id 7) to aten::mm.
  EXPECT_EQ(t.kernels[2].op, "aten::mm");
  EXPECT_EQ(t.kernels[2].op_id, 7);
}

std::string error_of(const std::string& text) {
  try {
    read_kineto_text(text, "trace.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Kineto, MalformedJsonNamesTheLine) {
  std::string t = kTrace;
  t.replace(t.find("\"dur\": 27.25"), 12, "\"dur\": 27..25");
  const std::string e = error_of(t);
  EXPECT_NE(e.find("trace.json:11"), std::string::npos) << e;
  EXPECT_NE(e.find("malformed JSON"), std::string::npos) << e;
  // Truncated file (the profiler died while writing).
  EXPECT_NE(error_of(std::string(kTrace).substr(0, 300)).find("malformed JSON"),
            std::string::npos);
}

TEST(Kineto, BadEventNamesTheEventKeyAndValue) {
  std::string t = kTrace;
  t.replace(t.find("\"dur\": 27.25"), 12, "\"dur\": \"27\"");
  const std::string e = error_of(t);
  EXPECT_NE(e.find("'traceEvents[2].dur' = '27'"), std::string::npos) << e;
  std::string neg = kTrace;
  neg.replace(neg.find("\"dur\": 3.0"), 10, "\"dur\": -3.0");
  EXPECT_NE(error_of(neg).find("'traceEvents[3].dur' = '-3.0'"), std::string::npos)
      << error_of(neg);
}

// Regression (profiler/gpu_check.sh's first run on a GPU, an H200 with PyTorch 2.11):
// aten::cat's TensorList input is recorded as the list of its tensors' shapes
// (event 338 of that trace: "Input Dims": [[[8, 1024, 768], [8, 1024, 768],
// [8, 1024, 768]], []]), which the reader refused as "a dimension must be a whole
// number", so `orrery calibrate` could not read any trace of a model with a cat.
TEST(Kineto, TensorListInputsAreReadAsNoShape) {
  std::string t = kTrace;
  const std::string dims = R"("Input Dims": [[4096, 1024], [1024, 2048]])";
  t.replace(t.find(dims), dims.size(),
            R"("Input Dims": [[[8, 1024, 768], [8, 1024, 768]], [], [4096, 1024]])");
  const KinetoTrace k = read_kineto_text(t, "trace.json");
  ASSERT_EQ(k.kernels[0].dims.size(), 3u);
  EXPECT_TRUE(k.kernels[0].dims[0].empty());
  EXPECT_TRUE(k.kernels[0].dims[1].empty());
  EXPECT_EQ(k.kernels[0].dims[2], (std::vector<std::int64_t>{4096, 1024}));
  // A list's shapes are still checked, and the error names the bad dimension.
  std::string bad = kTrace;
  bad.replace(bad.find(dims), dims.size(), R"("Input Dims": [[[8, -1], [8, 2]]])");
  const std::string e = error_of(bad);
  EXPECT_NE(e.find("'traceEvents[0].args.Input Dims' = '-1'"), std::string::npos) << e;
  EXPECT_NE(e.find("a dimension must be a whole number"), std::string::npos) << e;
  std::string mixed = kTrace;
  mixed.replace(mixed.find(dims), dims.size(), R"("Input Dims": [[[8, 2], 8]])");
  EXPECT_NE(error_of(mixed).find("expected a shape"), std::string::npos) << error_of(mixed);
}

TEST(Kineto, ATraceWithoutKernelsIsAnError) {
  EXPECT_NE(error_of(R"({"traceEvents": []})").find("no GPU kernel events"), std::string::npos);
  EXPECT_NE(error_of(R"({"events": []})").find("traceEvents"), std::string::npos);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// Regression (found by kineto_fuzz): a well-formed number too large for a double made
// nlohmann_json throw out_of_range, which escaped the reader as an internal error
// (exit 1) instead of bad input (exit 2).
TEST(Kineto, NumberTooLargeForADoubleIsAnInputError) {
  const std::string t =
      R"({"deviceProperties": [{"id": 0, "totalGlobalMem": 8E031714816}], "traceEvents": []})";
  try {
    read_kineto_text(t, "big.json");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "error: big.json: unreadable JSON: number overflow parsing '8E031714816'");
  }
}

}  // namespace
}  // namespace orrery
