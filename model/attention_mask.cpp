#include "model/attention_mask.h"

#include <algorithm>

namespace orrery {

AttentionTile flash_tile(double head_dim) {
  if (head_dim <= 64) return {128, 128};
  return {128, 64};
}

double band_tiles(std::int64_t len, std::int64_t window, AttentionTile t) {
  double tiles = 0;
  for (std::int64_t first = 0; first < len; first += t.rows) {
    const std::int64_t last = std::min(len, first + t.rows) - 1;  // the tile row's last query
    // Key tiles from the one holding the first query's oldest visible key to the one
    // holding the last query itself.
    const std::int64_t oldest = std::max<std::int64_t>(0, first - window + 1);
    tiles += static_cast<double>(last / t.cols - oldest / t.cols + 1);
  }
  return tiles;
}

double mask_tile_fraction(const ModelSpec& m, AttentionTile t) {
  const std::int64_t s = m.seq_len;
  if (s <= 0) return 1.0;
  const double grid = static_cast<double>((s + t.rows - 1) / t.rows) *
                      static_cast<double>((s + t.cols - 1) / t.cols);
  double tiles = grid;
  switch (m.attention_mask) {
    case AttentionMask::full:
      break;
    case AttentionMask::causal:
      tiles = band_tiles(s, s, t);
      break;
    case AttentionMask::sliding_window:
      tiles = band_tiles(s, std::min(m.attention_window, s), t);
      break;
    case AttentionMask::document: {
      // Documents of equal length, each its own causal sequence starting on a tile edge
      // (varlen kernels); the last one is what remains of the sequence.
      const std::int64_t L = std::clamp<std::int64_t>(m.document_length, 1, s);
      tiles = static_cast<double>(s / L) * band_tiles(L, L, t) + band_tiles(s % L, s % L, t);
      break;
    }
  }
  return tiles / grid;
}

CpMergeBytes cp_ring_merge_bytes(int cp, bool causal, double q_elems, double o_elems,
                                 double kv_elems, double elem_bytes) {
  CpMergeBytes out;
  if (cp <= 1) return out;
  const double Q = q_elems, O = o_elems, K = kv_elems;
  constexpr double kCopy = 2, kAdd = 3, kMerge = 3;  // element reads + writes per kernel
  for (int r = 0; r < cp; ++r) {
    // Forward (AttnFuncWithCPAndKVP2P.forward): out = empty_like(q).zero_().
    double fwd = O;
    for (int i = 0; i < cp; ++i) {
      if (!causal || i == 0) {
        fwd += kMerge * O;  // the diagonal (or unmasked) step: whole Q against whole K/V
      } else if (i <= r) {
        fwd += kCopy * K / 2 + kMerge * O;  // kv[:, :, 0].contiguous(): the first half
      } else {
        fwd += kCopy * Q / 2 + kMerge * O / 2;  // q[:, 1].contiguous(): the second half
      }
    }
    // Backward (AttnFuncWithCPAndKVP2P.backward), step i against the K/V of rank r - 1 - i.
    double bwd = 0;
    for (int i = 0; i < cp; ++i) {
      double dkv_step = K;  // elements of this step's dK/dV
      if (!causal) {
        bwd += (i == 0 ? kCopy : kAdd) * (Q + K);
      } else if (i == cp - 1) {  // the diagonal block
        bwd += (r == 0 ? (kAdd + kCopy) * K / 2 : kAdd * K);
      } else if (i >= cp - 1 - r) {  // the first half of K/V
        bwd += kCopy * K / 2;
        dkv_step = K / 2;
        bwd += (i == 0 && r == cp - 1 ? kCopy : kAdd) * K / 2;
      } else {  // the second half of Q, O and dO against the whole K/V
        bwd += kCopy * (Q + 2 * O) / 2;
        bwd += (i > 0 ? kAdd : kCopy) * K;
      }
      bwd += kCopy * dkv_step;  // torch.cat((dk_, dv_))
      if (!causal) continue;
      // dQ: whole for the diagonal and first-half-K/V steps, half for the others.
      if (i > cp - 1 - r) {
        bwd += kAdd * Q;
      } else if (i == cp - 1 - r) {
        bwd += (r == cp - 1 ? kCopy * Q : (kCopy + kAdd) * Q / 2);
      } else {
        bwd += (i > 0 ? kAdd : kCopy) * Q / 2;
      }
    }
    out.fwd += fwd;
    out.bwd += bwd;
  }
  out.fwd *= elem_bytes / cp;
  out.bwd *= elem_bytes / cp;
  return out;
}

bool masked_softmax_falls_back(StackSpec::MaskedSoftmax how, std::int64_t b,
                               std::int64_t heads, std::int64_t sq, std::int64_t sk,
                               bool causal) {
  switch (how) {
    case StackSpec::MaskedSoftmax::fused: return false;
    case StackSpec::MaskedSoftmax::torch: return true;
    case StackSpec::MaskedSoftmax::swapped_check: break;
  }
  const std::int64_t batches = b * heads;
  if (!(sq > 16 && sq <= 2048 && sk % 4 == 0 && batches % 4 == 0 && sk <= 2048)) return true;
  // get_batch_per_block with `heads` as its key length.
  std::int64_t p = 1;
  while (p < heads) p *= 2;
  const std::int64_t warp = std::min<std::int64_t>(p, 32);
  const std::int64_t per_block = (128 / warp) * (p <= 128 ? 2 : 1);
  return causal ? batches % per_block != 0 : sq % per_block != 0;
}

bool masked_softmax_falls_back(const ModelSpec& m, const TrainingSpec& tr, int microbatch,
                               int tp, int cp) {
  if (!m.is_transformer() || tr.flash_attention || tr.stack.pytorch_native()) return false;
  return masked_softmax_falls_back(tr.stack.masked_softmax, microbatch, m.heads / tp,
                                   m.seq_len / cp, m.seq_len,
                                   m.attention_mask != AttentionMask::full);
}

}  // namespace orrery
