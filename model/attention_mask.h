// How much of the s x s score matrix a fused attention kernel computes under a mask.
//
// A FlashAttention kernel walks the score matrix in tiles of `rows` queries by `cols`
// keys and skips a tile only when the mask hides all of it; a tile the mask cuts (the
// diagonal ones) is computed whole and masked afterwards. FlashAttention-2's forward
// (Dao-AILab/flash-attention csrc/flash_attn/src/flash_fwd_kernel.h, commit 0251105a):
// query tile m runs key tiles n_block_min .. n_block_max - 1 with
//   n_block_max = ceil((m + 1) * kBlockM / kBlockN)                 (causal, local)
//   n_block_min = max(0, m * kBlockM - window_size_left) / kBlockN  (local), else 0.
// Its backward walks the transposed grid (query tiles for each key tile) and keeps the
// same set of tiles: those holding at least one visible (query, key) pair.
#pragma once

#include <cstdint>

#include "scenario/spec.h"

namespace orrery {

// One kernel tile: query rows by key columns.
struct AttentionTile {
  std::int64_t rows = 128;
  std::int64_t cols = 64;
};

// FlashAttention-2's forward tile on A100/H100 for 16-bit inputs without dropout
// (csrc/flash_attn/src/flash_fwd_launch_template.h, commit 0251105a; the same for head
// widths 64 and 128 since the FlashAttention-2 release 4f285b35): head width up to 64:
// 128 x 128; up to 256: 128 x 64 (the 256-wide head runs 64 x 64 on H100, which moves a
// causal fraction by 32/s; not modelled). FlashAttention-3's causal tile for head width
// 128 on H100 is 128 x 128 (hopper/tile_size.h, same commit): the same 128 query rows,
// so the same causal fraction.
AttentionTile flash_tile(double head_dim);

// Tiles of the grid over a len x len score matrix that hold at least one query i and key
// j with i - window < j <= i (window >= len: the causal mask).
double band_tiles(std::int64_t len, std::int64_t window, AttentionTile t);

// The share of the seq_len x seq_len tile grid a fused kernel computes under the model's
// mask: 1 for the full mask, about 1/2 + rows/(2 seq_len) for the causal one (the
// diagonal tiles computed whole), about (w/s)(1 - w/(2s)) for a sliding window of w
// (the first w queries see fewer keys) and document_length/(2 seq_len) for packed
// documents of equal length (varlen kernels run each document as its own causal
// sequence); each plus the tiles the mask's edges cut. Needs a transformer model.
double mask_tile_fraction(const ModelSpec& m, AttentionTile t);

// Bytes the element-wise kernels around ring attention move on one context-parallel
// rank, averaged over the cp ranks (one simulated GPU stands for its cp peers), as
// Transformer Engine's AttnFuncWithCPAndKVP2P runs them with its fused (cuDNN) backend
// (NVIDIA/TransformerEngine v1.8, 3ec998e9, transformer_engine/pytorch/attention.py;
// bshd/sbhd layouts). Forward: the output buffer zeroed, then for each of the cp steps
// the step's output merged into it by its log-sum-exp (flash_attn_fwd_out_correction,
// one torch.compile'd kernel: read the step's output and the buffer, write the buffer,
// 3 element reads or writes), and the contiguous copies of the half of Q or of K/V a
// causal step takes. Backward: the halves of Q, O, dO or K/V copied again, dK and dV
// concatenated per step (torch.cat, the fused path), and each step's dQ and dK/dV copied
// or added into the accumulators as TE's branches do (copy: 2 element passes, add: 3).
// q_elems, o_elems, kv_elems: this rank's Q, O and K + V elements; elem_bytes: bytes of
// one element. The per-row log-sum-exp statistics (head width times fewer) are left out.
// cp == 1 moves nothing.
struct CpMergeBytes {
  double fwd = 0, bwd = 0;
};
CpMergeBytes cp_ring_merge_bytes(int cp, bool causal, double q_elems, double o_elems,
                                 double kv_elems, double elem_bytes);

// Whether Megatron-DeepSpeed's FusedScaleMaskSoftmax (unfused attention under the
// deepspeed stack) takes its PyTorch path instead of its fused kernel for a
// micro-batch of `b` sequences, `heads` attention heads on this rank, `sq` queries and
// `sk` keys, under a causal mask (`causal`; packed documents too, which Megatron keeps as
// AttnMaskType.causal) or none, as training.stack.masked_softmax says: never (fused), always (torch), or
// where is_kernel_available fails with get_batch_per_block's arguments out of order
// (swapped_check). That check (megatron/model/fused_softmax.py at bigscience-workshop/
// Megatron-DeepSpeed ae6277f5, the code NVIDIA/Megatron-LM 40becfc9 brought in) wants a
// 16-bit input, 16 < sq <= 2048, sk % 4 == 0, b * heads % 4 == 0, sk <= 2048 and then,
// causal, b * heads a multiple of the kernel's batches per block, else sq one. The call
// self.get_batch_per_block(sq, sk, b, np) meets a static method declared (b, np, sq, sk),
// which hands the CUDA helper (query_seq_len, key_seq_len, batches, attn_heads) = (b,
// heads, sq, sk): the blocks are sized for a key length of `heads`, not sk. The helper
// (get_batch_per_block in megatron/fused_kernels/scaled_masked_softmax.h, same commit):
// p = the power of two at or above its key length, warp = min(p, 32), 128 / warp warps a
// block, each 2 rows where p <= 128, else 1. At 8 heads a rank that is 32 rows a block,
// so micro-batches of 1 and 2 fall back and 4 and 8 do not. NVIDIA fixed the order the
// same day (0d350c8d, "fix bugs in fused softmax"); BigScience ran the swapped version
// from 9f5f5d4c (2021-10-21, which cherry-picked 40becfc9) until 1cb76a64 (2022-03-06,
// PR 260; PR 259 had found the missed fix on 2022-03-01 and suspected the throughput).
bool masked_softmax_falls_back(StackSpec::MaskedSoftmax how, std::int64_t b,
                               std::int64_t heads, std::int64_t sq, std::int64_t sk,
                               bool causal);
// The same for a run: false where Megatron's softmax does not run (not a transformer,
// flash attention, a PyTorch-native stack); else at `microbatch` sequences, the heads of a
// tensor-parallel rank and the queries of a context-parallel one. The workload
// (model/transformer.cpp) and run --explain both ask this.
bool masked_softmax_falls_back(const ModelSpec& m, const TrainingSpec& tr, int microbatch,
                               int tp, int cp);

}  // namespace orrery
