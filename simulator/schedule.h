// Pipeline schedules: the order in which one stage runs its forward and backward blocks
// (a model chunk for one micro-batch). Bubbles are not computed here: they come out of
// the dependencies between stages when the engine runs these orders.
#pragma once

#include <vector>

#include "scenario/spec.h"

namespace orrery {

struct Block {
  bool forward = true;
  int chunk = 0;  // model chunk (virtual stage) on this pipeline rank
  int microbatch = 0;
  // A weight-gradient pass (W): the second half of an earlier `split` backward.
  bool weight = false;
  // A backward without its weight-gradient GEMMs (B); its W is a later block.
  bool split = false;
  // DualPipe, or Megatron-Core's combined 1F1B (parallelism.moe_a2a_overlap): this forward
  // and the backward after it run as one overlapped pair (each one's MoE all-to-all hidden
  // under the other's compute), and this block's output leaves after the pair.
  bool fused_with_next = false;
  // The block's output leaves after the next block rather than right after it.
  bool defer_send = false;
};

// GPipe: every forward, then every backward (last micro-batch first). 1F1B (Narayanan
// et al. 2021, PipeDream-Flush): p - stage - 1 warm-up forwards, then one forward and one
// backward alternately, then the remaining backwards. Interleaved 1F1B: Megatron-LM's
// order over the v chunks of each rank. ZB-H1 (Qi et al. 2023, section 2.1): 1F1B's F
// and B order, stage i running the W of micro-batch j after the B of micro-batch j + i,
// the deferred W's filling the cool-down. DualPipe (deepseek-ai/DualPipe, DualPipe.step):
// chunk 0 is the stage this rank holds for micro-batches entering at rank 0, chunk 1 the
// one for those entering at rank p - 1; the eight phases of the reference schedule, a
// rank at distance h = min(r, p-1-r) from the ends running them with the counts it gives.
std::vector<Block> pipeline_order(const ParallelismSpec& p, int stage);

// One instruction of DeepSpeed's PipelineEngine for one stage (pipeline_engine:
// deepspeed): a transfer to or from a neighbouring stage, or a compute block.
struct PipeInstruction {
  enum class Kind { recv_activation, send_grad, send_activation, recv_grad, forward, backward };
  Kind kind = Kind::forward;
  int microbatch = 0;
};

// DeepSpeed's TrainSchedule (deepspeed/runtime/pipe/schedule.py, microsoft/DeepSpeed
// 56c522386878), flattened for `stage` of p stages and m micro-batches. It runs
// 2 (m + p - 1) steps; at step t a stage whose parity equals t's runs a forward, the
// others a backward, of micro-batch
//   forward:  t / 2 - stage / 2            (even stage, even t)
//             (t - 1) / 2 - stage / 2      (odd stage, odd t)
//   backward: t / 2 - p + (stage + 1) / 2  (odd stage, even t)
//             (t - 1) / 2 - p + 1 + stage / 2  (even stage, odd t)
// (integer division; a step whose micro-batch lies outside 0..m-1 computes nothing), so
// that each stage's compute order is 1F1B's and neighbours alternate. Before its compute
// a forward step receives that micro-batch's activation and then sends the gradient of
// the previous step's backward to the stage before; a backward step sends the previous
// step's forward output to the next stage and then receives its micro-batch's gradient
// (none to or from beyond the first or last stage).
std::vector<PipeInstruction> deepspeed_train_schedule(int stages, int microbatches, int stage);

}  // namespace orrery
