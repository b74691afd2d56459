#include "model/pipeline.h"

#include <algorithm>

#include "core/error.h"

namespace orrery {

int PipelineLayout::on_rank(int rank) const {
  int n = 0;
  for (int c = 0; c < vp; ++c) n += at(rank, c);
  return n;
}

std::vector<std::pair<int, int>> PipelineLayout::place_of_layers() const {
  std::vector<std::pair<int, int>> out;
  for (int s = 0; s < pp * vp; ++s)
    for (int i = 0; i < layers[static_cast<std::size_t>(s)]; ++i) out.emplace_back(s % pp, s / pp);
  return out;
}

PipelineLayout pipeline_layout(const ModelSpec& m, const ParallelismSpec& p) {
  PipelineLayout out;
  out.pp = p.pp;
  out.vp = p.virtual_pipeline_stages;
  const int n = p.pp * out.vp;
  out.layers.assign(static_cast<std::size_t>(n), 0);
  out.loss_stage = n - 1;
  if (!p.pipeline_layout.empty()) {
    const LayoutParse parsed = parse_pipeline_layout(p.pipeline_layout);
    ORRERY_CHECK(parsed.error.empty() && static_cast<int>(parsed.stages.size()) == n,
                 "validated pipeline layout");
    for (int s = 0; s < n; ++s) {
      const std::string& st = parsed.stages[static_cast<std::size_t>(s)];
      out.layers[static_cast<std::size_t>(s)] =
          static_cast<int>(std::count(st.begin(), st.end(), 't'));
      if (st.find('E') != std::string::npos) out.embedding_stage = s;
      if (st.find('L') != std::string::npos) out.loss_stage = s;
    }
    out.mtp_stage = standalone_mtp_stage(p.pipeline_layout);
    return out;
  }
  const int v = out.vp;
  if (p.first_stage_layers || p.last_stage_layers) {
    // get_num_layers_to_build: the first (last) rank's count, the middle ranks' share of
    // the rest; each rank's count over its v chunks.
    const int first = p.first_stage_layers.value_or(0), last = p.last_stage_layers.value_or(0);
    const int middle_ranks = p.pp - (p.first_stage_layers ? 1 : 0) - (p.last_stage_layers ? 1 : 0);
    const int rest = m.layers - first - last;
    const int middle = middle_ranks > 0 ? rest / middle_ranks : 0;
    ORRERY_CHECK(middle_ranks > 0 ? rest % middle_ranks == 0 : rest == 0, "validated uneven split");
    for (int r = 0; r < p.pp; ++r) {
      int on_rank = middle;
      if (r == 0 && p.first_stage_layers) on_rank = first;
      if (r == p.pp - 1 && p.last_stage_layers) on_rank = last;
      ORRERY_CHECK(on_rank % v == 0, "validated uneven split over virtual stages");
      for (int c = 0; c < v; ++c) out.layers[static_cast<std::size_t>(c * p.pp + r)] = on_rank / v;
    }
    return out;
  }
  const int total = m.layers + (p.account_for_embedding ? 1 : 0) + (p.account_for_loss ? 1 : 0);
  ORRERY_CHECK(total % n == 0, "validated even split");
  out.layers.assign(static_cast<std::size_t>(n), total / n);
  if (p.account_for_embedding) --out.layers.front();
  if (p.account_for_loss) --out.layers.back();
  ORRERY_CHECK(out.layers.front() >= 0 && out.layers.back() >= 0, "validated accounted split");
  return out;
}

int mtp_embedding_copy_rank(const ModelSpec& m, const ParallelismSpec& p) {
  if (m.mtp_layers <= 0 || p.pp < 2 || !m.is_transformer() ||
      p.schedule == PipelineSchedule::dualpipe || p.pipeline_engine != PipelineEngine::megatron)
    return -1;
  const int standalone = standalone_mtp_stage(p.pipeline_layout);
  return standalone >= 0 ? standalone % p.pp : p.pp - 1;
}

std::vector<int> stage_of_layers(const ModelSpec& m, const ParallelismSpec& p) {
  std::vector<int> stage;
  for (const auto& [rank, chunk] : pipeline_layout(m, p).place_of_layers()) stage.push_back(rank);
  ORRERY_CHECK(static_cast<int>(stage.size()) == m.layers, "layout holds every layer");
  return stage;
}

std::vector<std::pair<int, int>> interleaved_table(int microbatches, int chunks, int group) {
  std::vector<std::pair<int, int>> out;
  for (int first = 0; first < microbatches; first += group) {
    const int end = first + group >= microbatches ? microbatches : first + group;
    for (int c = 0; c < chunks; ++c)
      for (int mb = first; mb < end; ++mb) out.emplace_back(mb, c);
  }
  return out;
}

}  // namespace orrery
