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

  explicit OpBuilder(Precision p);

  // A linear layer Y[m x n] = X[m x k] W[k x n] (k and n are this rank's share).
  // `params` is what this rank holds (weights and biases); `saved_elems` the input
  // elements it keeps for backward (0 when another op already keeps that tensor).
  Op gemm(const std::string& name, double m, double k, double n, double params,
          double saved_elems) const;
  // A memory-bound op reading `in_elems` and writing `out_elems` activations, keeping
  // `saved` bytes for backward.
  Op memory_bound(const std::string& name, OpKind kind, double in_elems, double out_elems,
                  double saved, double params = 0) const;
};

}  // namespace orrery::detail
