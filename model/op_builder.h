// Constructors for ops with the byte and FLOP conventions of model/workload.h.
// Private to the model component.
#pragma once

#include "model/workload.h"

namespace orrery::detail {

struct OpBuilder {
  double act;     // bytes per activation element
  double weight;  // bytes per stored weight
  double saved_gemm_input;  // bytes per element of a GEMM input kept for backward
  bool fp8;                 // linear layers run in FP8 (Transformer Engine)
  bool fp8_training;        // precision fp8 (a layer in bf16 has fp8 false)
  // The FP8 recipe (training.fp8); null: the plain fp8 model (every GEMM in fp8, casts of
  // inputs and output gradients only).
  const Fp8Spec* recipe = nullptr;
  double microbatches = 1;  // per step: a cached fp8 weight is cast once in that many
  // The FP4 recipe (training.fp4, precision fp4): `fp8` then means the layer's GEMMs run
  // in fp4, and add_fp4_recipe replaces the fp8 casts.
  const Fp4Spec* fp4 = nullptr;
  // Per-tensor-scaled fp8 tensors (the plain model, delayed and current scaling) are one
  // copy used both ways: the GPU's fp8 GEMMs take any layout (TrainingSpec::
  // fp8_single_copy, from cluster.gpu.fp8_non_tn_gemm). False: each cast also writes a
  // transposed copy, as block-scaled ones always do.
  bool fp8_single_copy = false;

  // fp8 copies a cast of an fp8 GEMM operand writes: 1 or 2 (fp8_single_copy).
  double fp8_copies() const;

  explicit OpBuilder(Precision p);
  // The builder for one layer of a training run: `high_precision` keeps its GEMMs in 16
  // bits under fp8 (training.fp8.bf16_layers).
  OpBuilder(const TrainingSpec& t, const Shard& s, bool high_precision = false);

  // A linear layer Y[m x n] = X[m x k] W[k x n] (k and n are this rank's share).
  // `params` is what this rank holds (weights and biases); `saved_elems` the input
  // elements it keeps for backward (0 when another op already keeps that tensor).
  Op gemm(const std::string& name, double m, double k, double n, double params,
          double saved_elems) const;
  // Adds the costs of the fp8 recipe to an fp8 GEMM (model/workload.cpp).
  void add_recipe(Op& op, double m, double k, double n) const;
  // The same for torchao's row-wise recipes (rowwise, rowwise_gw_hp).
  void add_rowwise_recipe(Op& op, double m, double k, double n) const;
  // The FP4 recipe's casts, saved input, scales and weight copies on one fp4 GEMM.
  void add_fp4_recipe(Op& op, double m, double k, double n) const;
  // A memory-bound op reading `in_elems` and writing `out_elems` activations, keeping
  // `saved` bytes for backward.
  Op memory_bound(const std::string& name, OpKind kind, double in_elems, double out_elems,
                  double saved, double params = 0) const;
};

}  // namespace orrery::detail
