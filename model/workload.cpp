#include "model/workload.h"

#include "core/error.h"
#include "model/op_builder.h"

namespace orrery {

Workload build_transformer_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& s);
Workload build_cnn_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& s);

const char* to_string(OpKind k) {
  switch (k) {
    case OpKind::gemm: return "gemm";
    case OpKind::attention: return "attention";
    case OpKind::norm: return "norm";
    case OpKind::elementwise: return "elementwise";
    case OpKind::softmax: return "softmax";
    case OpKind::dropout: return "dropout";
    case OpKind::embedding: return "embedding";
    case OpKind::loss: return "loss";
    case OpKind::router: return "router";
    case OpKind::conv: return "conv";
    case OpKind::pool: return "pool";
  }
  return "?";
}

const char* to_string(LayerKind k) {
  switch (k) {
    case LayerKind::embedding: return "embedding";
    case LayerKind::transformer: return "transformer";
    case LayerKind::head: return "head";
    case LayerKind::cnn: return "cnn";
  }
  return "?";
}

double activation_bytes(Precision p) {
  return (p == Precision::fp32 || p == Precision::tf32) ? 4.0 : 2.0;
}

double weight_bytes(Precision p) {
  return (p == Precision::fp32 || p == Precision::tf32) ? 4.0 : 2.0;
}

namespace detail {

OpBuilder::OpBuilder(Precision p)
    : act(activation_bytes(p)),
      weight(weight_bytes(p)),
      // Transformer Engine keeps the FP8 cast of a linear layer's input for its
      // backward GEMM, so those inputs cost 1 byte an element under fp8.
      saved_gemm_input(p == Precision::fp8 ? 1.0 : activation_bytes(p)),
      fp8(p == Precision::fp8) {}

Op OpBuilder::gemm(const std::string& name, double m, double k, double n, double params,
                   double saved_elems) const {
  Op op;
  op.name = name;
  op.kind = OpKind::gemm;
  op.fwd_flops = Flop(2.0 * m * k * n);
  op.bwd_flops = Flop(4.0 * m * k * n);
  op.fwd_flops_useful = op.fwd_flops;
  op.fwd_read = Bytes(m * k * act + k * n * weight);
  op.fwd_written = Bytes(m * n * act);
  op.bwd_read = Bytes((m * n + m * k) * act + k * n * weight);
  op.bwd_written = Bytes(m * k * act + k * n * weight);
  op.params = params;
  op.weight_k = k;
  op.weight_n = n;
  op.saved = Bytes(saved_elems * saved_gemm_input);
  if (fp8) {
    // Transformer Engine casts a linear layer's input to FP8 and writes its transpose
    // for the weight-gradient GEMM (read 16-bit, write two 1-byte copies); backward does
    // the same for the output gradient.
    op.aux_fwd_bytes = Bytes(m * k * (act + 2.0));
    op.aux_bwd_bytes = Bytes(m * n * (act + 2.0));
  }
  return op;
}

Op OpBuilder::memory_bound(const std::string& name, OpKind kind, double in_elems,
                           double out_elems, double saved, double params) const {
  Op op;
  op.name = name;
  op.kind = kind;
  op.fwd_read = Bytes(in_elems * act);
  op.fwd_written = Bytes(out_elems * act);
  op.bwd_read = Bytes(out_elems * act + saved);
  op.bwd_written = Bytes(in_elems * act);
  op.params = params;
  op.saved = Bytes(saved);
  return op;
}

}  // namespace detail

Flop Layer::fwd_flops() const {
  Flop f;
  for (const auto& op : ops) f += op.fwd_flops;
  return f;
}

Flop Layer::bwd_flops() const {
  Flop f;
  for (const auto& op : ops) f += op.bwd_flops;
  return f;
}

Flop Layer::fwd_flops_useful() const {
  Flop f;
  for (const auto& op : ops) f += op.fwd_flops_useful;
  return f;
}

double Layer::params() const {
  double p = 0;
  for (const auto& op : ops) p += op.params;
  return p;
}

double Layer::expert_params() const {
  double p = 0;
  for (const auto& op : ops)
    if (op.expert) p += op.params;
  return p;
}

Bytes Layer::saved(Recompute r) const {
  if (r == Recompute::full && kind == LayerKind::transformer) return input;
  Bytes b;
  for (const auto& op : ops) {
    b += op.saved;
    if (r == Recompute::none) b += op.saved_selective;
  }
  return b;
}

Flop Layer::recompute_flops(Recompute r) const {
  if (r == Recompute::none || kind != LayerKind::transformer) return Flop(0);
  Flop f;
  for (const auto& op : ops) {
    if (r == Recompute::full || op.selective) f += op.fwd_flops;
  }
  return f;
}

double Workload::params() const {
  double p = 0;
  for (const auto& l : layers) p += l.params();
  return p;
}

Flop Workload::fwd_flops() const {
  Flop f;
  for (const auto& l : layers) f += l.fwd_flops();
  return f;
}

Flop Workload::bwd_flops() const {
  Flop f;
  for (const auto& l : layers) f += l.bwd_flops();
  return f;
}

Flop Workload::fwd_flops_useful() const {
  Flop f;
  for (const auto& l : layers) f += l.fwd_flops_useful();
  return f;
}

Bytes Workload::saved(Recompute r) const {
  Bytes b;
  for (const auto& l : layers) b += l.saved(r);
  return b;
}

Flop Workload::recompute_flops(Recompute r) const {
  Flop f;
  for (const auto& l : layers) f += l.recompute_flops(r);
  return f;
}

Shard shard_of(const ParallelismSpec& p) {
  Shard s;
  s.microbatch = p.microbatch;
  s.tp = p.tp;
  s.sequence_parallel = p.sequence_parallel;
  s.cp = p.cp;
  s.ep = p.ep;
  return s;
}

Workload build_workload(const ModelSpec& m, const TrainingSpec& t, const Shard& shard) {
  ORRERY_CHECK(shard.microbatch >= 1 && shard.tp >= 1 && shard.cp >= 1 && shard.ep >= 1,
               "shard degrees must be positive");
  if (m.family == ModelFamily::cnn) return build_cnn_workload(m, t, shard);
  return build_transformer_workload(m, t, shard);
}

}  // namespace orrery
