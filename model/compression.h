// Data-parallel gradient compression: what one bucket's reduction sends, through which
// collectives, and what its encode and decode kernels move and compute
// (scenario/spec.h, CompressionSpec; docs/model.md, "Gradient compression").
#pragma once

#include <vector>

#include "core/collective.h"
#include "core/units.h"
#include "model/workload.h"
#include "scenario/spec.h"

namespace orrery {

// The gradients of one bucket on one rank.
struct GradientShape {
  double params = 0;         // elements
  double matrix_params = 0;  // of them, in weight matrices: sum of k * n
  double p_rows = 0;         // sum of n over those matrices (PowerSGD's P is n x r)
  double q_rows = 0;         // sum of k (Q is k x r)
};
// Adds the dense (expert = false) or expert parameters of `layer`'s ops.
void add_gradients(GradientShape& g, const Layer& layer, bool expert);
// Adds the parameters of one op.
void add_op_gradients(GradientShape& g, const Op& op);

// The collectives a reduction becomes; bytes S as nccl-tests' size column counts them
// (all-gather: the whole gathered buffer; all-to-all: each rank's send buffer).
struct WireStep {
  CollectiveOp op = CollectiveOp::all_reduce;
  double bytes = 0;
};

struct CompressedReduction {
  std::vector<WireStep> steps;  // in order, each after the previous
  Bytes encode_bytes, decode_bytes;  // HBM traffic of the kernels before and after
  Flop encode_flops, decode_flops;   // PowerSGD's factor GEMMs and orthogonalization
};

// The reduction of `g` over `ranks` ranks whose gradients are `grad_bytes` an element;
// `scatter`: each rank needs only its shard of the sum (distributed optimizer).
// Scheme none (and local_sgd, whose averaging is a plain reduction) returns the plain
// all-reduce or reduce-scatter with no kernels.
CompressedReduction compress_reduction(const CompressionSpec& c, const GradientShape& g,
                                       double grad_bytes, int ranks, bool scatter);

// Buffers a rank keeps across steps for `g`: error feedback (fp32) and PowerSGD's
// warm-started factors.
Bytes compression_state(const CompressionSpec& c, const GradientShape& g, int ranks);

}  // namespace orrery
