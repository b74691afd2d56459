// CNN workloads from a per-layer table (model.layer_table). One row becomes one layer of
// one op, for a micro-batch of b images:
//   conv  FLOPs 2*b*in*out*k^2*size^2, params in*out*k^2 (no bias: batch norm follows),
//         keeps its input (b*in*(size*stride)^2 elements);
//   bn    params 2*out (scale and shift; running statistics are buffers), keeps its input;
//   relu  keeps its output; maxpool keeps its input and int64 indices; add, avgpool keep
//         nothing; fc FLOPs 2*b*in*out, params in*out + out, keeps its input.
// The input of a conv or pool is size*stride wide, which holds for the "same"-padded
// layers of ResNets.
#include "model/op_builder.h"
#include "model/workload.h"

namespace orrery {

Workload build_cnn_workload(const ModelSpec& m, const TrainingSpec& tr, const Shard& sh) {
  const detail::OpBuilder B(tr, sh);
  const double b = sh.microbatch;
  const double e = B.act;
  Workload w;
  w.shard = sh;
  double prev_size = m.image_size;
  double prev_channels = 3;
  for (const CnnLayer& row : m.cnn_layers) {
    Layer L;
    L.name = row.name;
    L.kind = LayerKind::cnn;
    const double out = row.out_channels;
    const double size = row.out_size;
    const double out_elems = b * out * size * size;
    Op op;
    switch (row.op) {
      case CnnOp::conv: {
        const double in = row.in_channels;
        const double in_size = size * row.stride;
        const double k2 = static_cast<double>(row.kernel) * row.kernel;
        const double in_elems = b * in * in_size * in_size;
        op = B.gemm(row.name, b * size * size, in * k2, out, in * out * k2, in_elems);
        op.kind = OpKind::conv;
        // cuDNN's convolution kernels, not cuBLAS's GEMMs: cluster.gpu.unaligned_gemm_
        // efficiency, measured on cuBLAS's alignment-1 kernels, says nothing of them
        // (ResNet-50's first layer would otherwise be marked: k = 3 x 7 x 7 = 147).
        op.alignment = 8;
        // An implicit GEMM reads the input once, not once per kernel tap.
        op.fwd_read = Bytes(in_elems * e + in * k2 * out * B.weight);
        op.bwd_read = Bytes((out_elems + in_elems) * e + in * k2 * out * B.weight);
        op.bwd_written = Bytes(in_elems * e + in * k2 * out * B.weight);
        L.input = Bytes(in_elems * e);
        break;
      }
      case CnnOp::bn:
        op = B.memory_bound(row.name, OpKind::norm, out_elems, out_elems, e * out_elems, 2 * out);
        break;
      case CnnOp::relu:
        op = B.memory_bound(row.name, OpKind::elementwise, out_elems, out_elems, e * out_elems);
        break;
      case CnnOp::maxpool: {
        const double in_size = size * row.stride;
        const double in_elems = b * out * in_size * in_size;
        op = B.memory_bound(row.name, OpKind::pool, in_elems, out_elems,
                            e * in_elems + 8.0 * out_elems);
        break;
      }
      case CnnOp::avgpool: {
        const double in_elems = b * prev_channels * prev_size * prev_size;
        op = B.memory_bound(row.name, OpKind::pool, in_elems, out_elems, 0);
        break;
      }
      case CnnOp::add:
        op = B.memory_bound(row.name, OpKind::elementwise, 2 * out_elems, out_elems, 0);
        break;
      case CnnOp::fc: {
        const double in = row.in_channels;
        op = B.gemm(row.name, b, in, out, in * out + out, b * in);
        break;
      }
    }
    L.ops.push_back(op);
    w.layers.push_back(std::move(L));
    prev_size = size;
    prev_channels = out;
  }
  return w;
}

}  // namespace orrery
