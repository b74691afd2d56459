// Gradient compression (model/compression.h): bytes on the wire and buffers for each
// scheme, derived by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "model/compression.h"

namespace orrery {
namespace {

CompressionSpec scheme(CompressionSpec::Scheme s) {
  CompressionSpec c;
  c.scheme = s;
  return c;
}

// A gradient of `rows` x `cols` elements held as one weight matrix (a linear layer).
GradientShape matrix(double k, double n) {
  Layer l;
  Op op;
  op.kind = OpKind::gemm;
  op.params = k * n;
  op.weight_k = k;
  op.weight_n = n;
  l.ops.push_back(op);
  GradientShape g;
  add_gradients(g, l, false);
  return g;
}

// A gradient of n elements outside any matrix (norms, biases).
GradientShape vector_of(double n) {
  GradientShape g;
  g.params = n;
  return g;
}

using S = CompressionSpec::Scheme;

TEST(Compression, PowerSgdRank4On4096Squared) {
  // Vogels et al. 2019: P (4096 x 4) and Q (4096 x 4), fp32, two all-reduces:
  // (4096 + 4096) * 4 * 4 = 131,072 bytes instead of 4096^2 * 4 = 67,108,864.
  CompressionSpec c = scheme(S::powersgd);
  c.rank = 4;
  const CompressedReduction r = compress_reduction(c, matrix(4096, 4096), 4.0, 8, false);
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.steps[0].op, CollectiveOp::all_reduce);
  EXPECT_DOUBLE_EQ(r.steps[0].bytes, 4096.0 * 4 * 4);
  EXPECT_DOUBLE_EQ(r.steps[1].bytes, 4096.0 * 4 * 4);
  EXPECT_DOUBLE_EQ(r.steps[0].bytes + r.steps[1].bytes, (4096.0 + 4096.0) * 4 * 4);
  const CompressedReduction plain =
      compress_reduction(scheme(S::none), matrix(4096, 4096), 4.0, 8, false);
  EXPECT_DOUBLE_EQ(plain.steps.at(0).bytes, 4096.0 * 4096 * 4);
  // FLOPs: P = M Q and Q = M^T P, 2 * 4096^2 * 4 each; Gram-Schmidt 2 * 4096 * 16.
  EXPECT_DOUBLE_EQ(r.encode_flops.value(), 4.0 * 4 * 4096 * 4096 + 2.0 * 16 * 4096);
  // Buffers: the fp32 error (4096^2 * 4) and both factors ((4096 + 4096) * 4 * 4).
  EXPECT_DOUBLE_EQ(compression_state(c, matrix(4096, 4096), 8).value(),
                   4096.0 * 4096 * 4 + 8192.0 * 4 * 4);
}

TEST(Compression, PowerSgdSendsVectorsUncompressedWithP) {
  // A 1024 x 512 matrix (rank 2) and 1536 bias and norm elements, bf16 gradients:
  // P carries 512 * 2 * 4 + 1536 * 2 bytes, Q 1024 * 2 * 4.
  CompressionSpec c = scheme(S::powersgd);
  c.rank = 2;
  GradientShape g = matrix(1024, 512);
  g.params += 1536;
  const CompressedReduction r = compress_reduction(c, g, 2.0, 4, false);
  EXPECT_DOUBLE_EQ(r.steps.at(0).bytes, 512.0 * 2 * 4 + 1536 * 2);
  EXPECT_DOUBLE_EQ(r.steps.at(1).bytes, 1024.0 * 2 * 4);
}

TEST(Compression, TopOnePercentOf1p3BillionIsAllGathered) {
  // Each rank contributes 0.01 * 1.3e9 entries of fp32 value + int32 index = 1.04e8
  // bytes; the all-gather's whole buffer over 16 ranks is 16 times that.
  CompressionSpec c = scheme(S::topk);
  c.density = 0.01;
  const CompressedReduction r = compress_reduction(c, vector_of(1.3e9), 4.0, 16, false);
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].op, CollectiveOp::all_gather);
  EXPECT_NEAR(r.steps[0].bytes / 16, 0.01 * 1.3e9 * 8, 1e-3);
  EXPECT_DOUBLE_EQ(compression_state(c, vector_of(1.3e9), 16).value(), 4 * 1.3e9);
}

TEST(Compression, QuantizedAllReduceIsAllToAllThenAllGather) {
  // 1e6 elements, 512 per fp32 scale: ceil(1e6 / 512) = 1954 scales = 7816 bytes.
  // int8: 1e6 + 7816; int4: 5e5 + 7816; onebit: 1.25e5 + 7816.
  for (const auto& [s, payload] :
       {std::pair{S::int8, 1e6}, std::pair{S::int4, 5e5}, std::pair{S::onebit, 1.25e5}}) {
    const CompressedReduction r = compress_reduction(scheme(s), vector_of(1e6), 4.0, 8, false);
    ASSERT_EQ(r.steps.size(), 2u) << to_string(s);
    EXPECT_EQ(r.steps[0].op, CollectiveOp::all_to_all);
    EXPECT_EQ(r.steps[1].op, CollectiveOp::all_gather);
    EXPECT_DOUBLE_EQ(r.steps[0].bytes, payload + 7816) << to_string(s);
    EXPECT_DOUBLE_EQ(r.steps[1].bytes, payload + 7816) << to_string(s);
    // With a distributed optimizer the all-to-all alone leaves each rank its shard's sum.
    EXPECT_EQ(compress_reduction(scheme(s), vector_of(1e6), 4.0, 8, true).steps.size(), 1u);
  }
  // QSGD-style quantization is unbiased: no error feedback. 1-bit Adam keeps a worker
  // error (4 bytes an element) and a server error for its 1/8 shard.
  EXPECT_DOUBLE_EQ(compression_state(scheme(S::int8), vector_of(1e6), 8).value(), 0.0);
  EXPECT_DOUBLE_EQ(compression_state(scheme(S::onebit), vector_of(1e6), 8).value(),
                   4e6 * (1 + 1.0 / 8));
}

TEST(Compression, SixteenBitCastHalvesFp32Gradients) {
  const CompressedReduction r = compress_reduction(scheme(S::bf16), vector_of(1e6), 4.0, 8, true);
  ASSERT_EQ(r.steps.size(), 1u);
  EXPECT_EQ(r.steps[0].op, CollectiveOp::reduce_scatter);
  EXPECT_DOUBLE_EQ(r.steps[0].bytes, 2e6);
}

}  // namespace
}  // namespace orrery
