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

}  // namespace orrery
