// From a sweep section to its candidates: the expansion in the documented order (sweep.h),
// each candidate's scenario and the settings that rewrite the scenario file into it.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "scenario/validate.h"
#include "sweep/sweep.h"

namespace orrery {
namespace {

std::vector<int> divisors_up_to(int n, int limit) {
  std::vector<int> out;
  for (int d = 1; d <= n && d <= limit; ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

bool derives_dp(const SweepSpec& w) {
  return !w.dp.swept() && (w.tp.swept() || w.pp.swept() || w.nodes.swept());
}

}  // namespace

std::vector<Assignment> expand(const SweepInput& in) {
  const SweepSpec& w = in.spec;
  std::vector<Assignment> out;
  auto values = [](const IntAxis& axis, int fallback) {
    return axis.values.empty() ? std::vector<int>{fallback} : axis.values;
  };
  for (std::size_t g = 0; g < in.raw.size(); ++g) {
    const Scenario& base = in.raw[g];
    const ParallelismSpec& bp = base.parallelism;
    for (int nodes : values(w.nodes, base.cluster.nodes)) {
      const int gpus = nodes * base.cluster.gpus_per_node;
      const std::vector<Precision> precisions =
          w.precision.empty() ? std::vector<Precision>{base.training.precision} : w.precision;
      const std::vector<CompressionSpec::Scheme> schemes =
          w.compression.empty() ? std::vector{base.training.compression.scheme} : w.compression;
      const std::vector<Recompute> recomputes =
          w.recompute.empty() ? std::vector<Recompute>{base.training.recompute} : w.recompute;
      for (Precision prec : precisions)
        for (auto scheme : schemes)
          for (int gb : values(w.global_batch, bp.global_batch)) {
            const std::vector<int> tps =
                w.tp.automatic ? divisors_up_to(gpus, std::max(1, base.model.heads))
                               : values(w.tp, bp.tp);
            const std::vector<int> pps =
                w.pp.automatic ? divisors_up_to(gpus, std::max(1, base.model.layers))
                               : values(w.pp, bp.pp);
            for (int tp : tps)
              for (int pp : pps) {
                std::vector<int> vps;
                if (w.vp.automatic) {
                  vps.push_back(1);
                  for (int v = 2; pp >= 2 && pp * v <= base.model.layers; ++v)
                    if (base.model.layers % (pp * v) == 0) vps.push_back(v);
                } else {
                  vps = values(w.vp, bp.virtual_pipeline_stages);
                }
                const std::vector<int> dps =
                    w.dp.swept() ? w.dp.values : std::vector<int>{derives_dp(w) ? 0 : bp.dp};
                for (int vp : vps)
                  for (int dp : dps) {
                    const int model_ranks = tp * pp * bp.cp;
                    const int dp_eff =
                        dp > 0 ? dp : (gpus % model_ranks == 0 ? gpus / model_ranks : 0);
                    std::vector<int> mbs;
                    if (w.microbatch.automatic && dp_eff > 0) {
                      for (int b = 1; b * dp_eff <= gb; ++b)
                        if (gb % (b * dp_eff) == 0) mbs.push_back(b);
                    }
                    if (mbs.empty()) mbs = values(w.microbatch, bp.microbatch);
                    for (int mb : mbs)
                      for (int zero : values(w.zero_stage, bp.zero_stage))
                        for (Recompute rc : recomputes) {
                          Assignment a;
                          a.gpu = static_cast<int>(g);
                          a.nodes = nodes;
                          a.tp = tp;
                          a.pp = pp;
                          a.vp = vp;
                          a.dp = dp;
                          a.microbatch = mb;
                          a.global_batch = gb;
                          a.zero_stage = zero;
                          a.recompute = rc;
                          a.precision = prec;
                          a.compression = scheme;
                          out.push_back(a);
                        }
                  }
              }
          }
    }
  }
  if (out.empty()) {
    throw InputError(w.where("sweep"), "sweep", "", "the sweep has no candidates");
  }
  return out;
}

Scenario candidate_scenario(const SweepInput& in, const Assignment& a) {
  const SweepSpec& w = in.spec;
  Scenario s = in.raw.at(static_cast<std::size_t>(a.gpu));
  ParallelismSpec& p = s.parallelism;
  auto mark = [&](const char* sweep_key, const char* key) { s.origin[key] = w.where(sweep_key); };
  if (w.nodes.swept()) {
    s.cluster.nodes = a.nodes;
    mark("sweep.nodes", "cluster.nodes");
  }
  if (!w.precision.empty()) {
    s.training.precision = a.precision;
    mark("sweep.precision", "training.precision");
    // training.fp8 says how the fp8 candidates train; the others have no use for it.
    if (a.precision != Precision::fp8) s.training.fp8.reset();
  }
  if (!w.compression.empty()) {
    s.training.compression.scheme = a.compression;
    mark("sweep.compression", "training.gradient_compression.scheme");
  }
  if (w.global_batch.swept()) {
    p.global_batch = a.global_batch;
    mark("sweep.global_batch", "parallelism.global_batch");
  }
  if (w.tp.swept()) {
    p.tp = a.tp;
    mark("sweep.tp", "parallelism.tp");
  }
  if (w.pp.swept()) {
    p.pp = a.pp;
    mark("sweep.pp", "parallelism.pp");
  }
  if (w.vp.swept()) {
    p.virtual_pipeline_stages = a.vp;
    mark("sweep.vp", "parallelism.virtual_pipeline_stages");
    // The schedule follows the virtual stages unless the file names another kind.
    if (p.schedule == PipelineSchedule::one_f_one_b ||
        p.schedule == PipelineSchedule::interleaved_1f1b) {
      s.origin.erase("parallelism.schedule");
    }
  }
  if (w.dp.swept()) {
    p.dp = a.dp;
    mark("sweep.dp", "parallelism.dp");
  } else if (derives_dp(w)) {
    s.origin.erase("parallelism.dp");
  }
  if (w.microbatch.swept()) {
    p.microbatch = a.microbatch;
    mark("sweep.microbatch", "parallelism.microbatch");
  }
  if (w.zero_stage.swept()) {
    p.zero_stage = a.zero_stage;
    mark("sweep.zero_stage", "parallelism.zero_stage");
  }
  if (!w.recompute.empty()) {
    s.training.recompute = a.recompute;
    mark("sweep.recompute", "training.recompute");
  }
  complete_and_validate(s);
  return s;
}

std::vector<std::pair<std::string, std::string>> candidate_settings(const SweepInput& in,
                                                                    const CandidateResult& c) {
  const SweepSpec& w = in.spec;
  const Assignment& a = c.a;
  std::vector<std::pair<std::string, std::string>> out;
  auto num = [](int v) { return std::to_string(v); };
  if (!w.gpu.empty()) out.emplace_back("cluster.gpu", w.gpu.at(static_cast<std::size_t>(a.gpu)));
  if (w.nodes.swept()) out.emplace_back("cluster.nodes", num(a.nodes));
  if (w.tp.swept()) out.emplace_back("parallelism.tp", num(a.tp));
  if (w.pp.swept()) out.emplace_back("parallelism.pp", num(a.pp));
  if (w.dp.swept() || derives_dp(w)) out.emplace_back("parallelism.dp", num(c.dp));
  if (w.vp.swept()) {
    out.emplace_back("parallelism.virtual_pipeline_stages", num(a.vp));
    const Scenario& raw = in.raw.at(static_cast<std::size_t>(a.gpu));
    if (raw.origin.count("parallelism.schedule") &&
        (raw.parallelism.schedule == PipelineSchedule::one_f_one_b ||
         raw.parallelism.schedule == PipelineSchedule::interleaved_1f1b)) {
      out.emplace_back(
          "parallelism.schedule",
          to_string(a.vp > 1 ? PipelineSchedule::interleaved_1f1b : PipelineSchedule::one_f_one_b));
    }
  }
  if (w.microbatch.swept()) out.emplace_back("parallelism.microbatch", num(a.microbatch));
  if (w.global_batch.swept()) out.emplace_back("parallelism.global_batch", num(a.global_batch));
  if (w.zero_stage.swept()) out.emplace_back("parallelism.zero_stage", num(a.zero_stage));
  if (!w.recompute.empty()) out.emplace_back("training.recompute", to_string(a.recompute));
  if (!w.precision.empty()) {
    out.emplace_back("training.precision", to_string(a.precision));
    // A candidate other than fp8 trains without the fp8 recipe (candidate_scenario).
    if (a.precision != Precision::fp8 && in.raw.at(static_cast<std::size_t>(a.gpu)).training.fp8) {
      out.emplace_back("training.fp8", "");
    }
  }
  if (!w.compression.empty()) {
    out.emplace_back("training.gradient_compression.scheme", to_string(a.compression));
  }
  return out;
}

}  // namespace orrery
