#include "model/compression.h"

#include <cmath>

namespace orrery {

void add_op_gradients(GradientShape& g, const Op& op) {
  if (op.params <= 0) return;
  g.params += op.params;
  const double kn = op.weight_k * op.weight_n;
  if (op.kind != OpKind::gemm || kn <= 0) return;
  const double copies = std::floor(op.params / kn + 1e-9);
  g.matrix_params += copies * kn;
  g.p_rows += copies * op.weight_n;
  g.q_rows += copies * op.weight_k;
}

void add_gradients(GradientShape& g, const Layer& layer, bool expert) {
  for (const Op& op : layer.ops)
    if (op.expert == expert) add_op_gradients(g, op);
}

CompressedReduction compress_reduction(const CompressionSpec& c, const GradientShape& g,
                                       double grad_bytes, int ranks, bool scatter) {
  using S = CompressionSpec::Scheme;
  const double n = g.params, k = ranks;
  const CollectiveOp plain = scatter ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce;
  CompressedReduction out;
  switch (c.scheme) {
    case S::none:
    case S::local_sgd:
      out.steps.push_back({plain, n * grad_bytes});
      break;
    case S::fp16:
    case S::bf16: {
      // Cast down, reduce in 16 bits, cast the (shard of the) sum back up.
      out.steps.push_back({plain, n * 2});
      out.encode_bytes = Bytes(n * (4 + 2));
      out.decode_bytes = Bytes(n * (2 + 4) / (scatter ? k : 1));
      break;
    }
    case S::int8:
    case S::int4:
    case S::onebit: {
      // Compressed size C: q bytes an element plus an fp32 scale per block. NCCL cannot
      // sum quantized data, so each rank receives every rank's compressed chunk of its
      // shard (all-to-all), decodes and sums it, and with all-reduce semantics
      // re-encodes the sum and all-gathers the chunks (DeepSpeed's compressed allreduce).
      const double q = c.scheme == S::int8 ? 1.0 : c.scheme == S::int4 ? 0.5 : 0.125;
      const double compressed = n * q + std::ceil(n / c.scale_block) * 4;
      out.steps.push_back({CollectiveOp::all_to_all, compressed});
      if (!scatter) out.steps.push_back({CollectiveOp::all_gather, compressed});
      // Encode: read the fp32 gradient, write C; with error feedback (onebit) also read
      // and write the fp32 error buffer.
      const double feedback = c.scheme == S::onebit ? 8 * n : 0;
      out.encode_bytes = Bytes(4 * n + compressed + feedback);
      // Decode: read the k compressed chunks of the shard, write the fp32 shard sum;
      // all-reduce: re-encode the shard (read it, write C / k) and decode the gathered C.
      double decode = compressed + 4 * n / k;
      if (!scatter) decode += 4 * n / k + compressed / k + compressed + 4 * n;
      out.decode_bytes = Bytes(decode);
      break;
    }
    case S::topk: {
      // Each rank's d*n largest entries as values and int32 indices, all-gathered: the
      // sum of sparse vectors is dense, so no reduction can shrink them on the way.
      const double entries = c.density * n;
      const double per_rank = entries * (grad_bytes + 4);
      out.steps.push_back({CollectiveOp::all_gather, per_rank * k});
      // Encode: add the error-feedback residual (read 2 x 4n, write 4n), select (a pass
      // over the sum), write the entries; decode: zero a dense buffer and scatter-add
      // the k ranks' entries.
      out.encode_bytes = Bytes(12 * n + 4 * n + per_rank);
      out.decode_bytes = Bytes(n * grad_bytes + per_rank * k + entries * k * grad_bytes);
      break;
    }
    case S::powersgd: {
      // Vogels et al. 2019, Algorithm 1: P = M Q (n x r), all-reduce P, orthogonalize,
      // Q = M^T P (k x r), all-reduce Q, M~ = P Q^T; fp32 factors. Parameters outside
      // weight matrices (norms, biases) ride uncompressed with P.
      const double r = c.rank;
      const double rest = n - g.matrix_params;
      out.steps.push_back({CollectiveOp::all_reduce, g.p_rows * r * 4 + rest * grad_bytes});
      out.steps.push_back({CollectiveOp::all_reduce, g.q_rows * r * 4});
      // FLOPs: P = M Q and Q = M^T P, 2 k n r each, Gram-Schmidt on P 2 n r^2; decode
      // P Q^T, 2 k n r. Bytes: M + error read twice and the error written (encode),
      // M~ written and the new error written (decode), fp32.
      out.encode_flops = Flop(4 * r * g.matrix_params + 2 * r * r * g.p_rows);
      out.decode_flops = Flop(2 * r * g.matrix_params);
      out.encode_bytes = Bytes(4 * g.matrix_params * 4);
      out.decode_bytes = Bytes(4 * g.matrix_params * 3);
      break;
    }
  }
  return out;
}

Bytes compression_state(const CompressionSpec& c, const GradientShape& g, int ranks) {
  using S = CompressionSpec::Scheme;
  switch (c.scheme) {
    case S::onebit:
      // 1-bit Adam keeps a worker error (the whole gradient) and a server error (its
      // shard), fp32 (Tang et al. 2021, Algorithm 1).
      return Bytes(4 * g.params * (1.0 + 1.0 / ranks));
    case S::topk:
      return Bytes(4 * g.params);
    case S::powersgd:
      return Bytes(4 * g.matrix_params + 4 * c.rank * (g.p_rows + g.q_rows));
    default:
      return Bytes(0);
  }
}

}  // namespace orrery
