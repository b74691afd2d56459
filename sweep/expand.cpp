// From a sweep section to its candidates: the expansion in the documented order (sweep.h),
// each candidate's scenario and the settings that rewrite the scenario file into it.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scenario/validate.h"
#include "sweep/axes.h"
#include "sweep/sweep.h"

namespace orrery {
namespace {

// The axes in the expansion's nesting order (detail::Axis::nesting), slowest first.
std::vector<const detail::Axis*> nested_axes() {
  std::vector<const detail::Axis*> out;
  for (const detail::Axis& axis : detail::axes())
    if (axis.nesting >= 0) out.push_back(&axis);
  std::sort(out.begin(), out.end(),
            [](const detail::Axis* x, const detail::Axis* y) { return x->nesting < y->nesting; });
  return out;
}

// Appends every candidate whose axes before `level` are as in `a`.
void expand_from(const SweepInput& in, const std::vector<const detail::Axis*>& order,
                 std::size_t level, Assignment& a, std::vector<Assignment>& out) {
  if (level == order.size()) {
    out.push_back(a);
    return;
  }
  for (int v : order[level]->values(in, a)) {
    order[level]->set(a, v);
    expand_from(in, order, level + 1, a, out);
  }
}

}  // namespace

std::vector<Assignment> expand(const SweepInput& in) {
  std::vector<Assignment> out;
  Assignment a;
  expand_from(in, nested_axes(), 0, a, out);
  if (out.empty()) {
    throw InputError(in.spec.where("sweep"), "sweep", "", "the sweep has no candidates");
  }
  return out;
}

int rounded_global_batch(double tokens, std::int64_t seq_len, int dp, int microbatch) {
  const double unit = static_cast<double>(dp) * microbatch;
  const double batches = std::llround(tokens / static_cast<double>(seq_len) / unit);
  return static_cast<int>(std::max(1.0, batches) * unit);
}

Scenario candidate_scenario(const SweepInput& in, const Assignment& a) {
  RawScenario raw = in.raw.at(static_cast<std::size_t>(a.gpu));
  for (const detail::Axis& axis : detail::axes())
    if (axis.apply) axis.apply(in, a, raw);
  if (in.spec.global_batch_tokens) {
    // The batch in tokens, rounded for this candidate's dp and microbatch (dp as resolve()
    // derives it when not set: the GPUs over tp*pp*cp; a split that does not divide them is
    // left for resolve() to refuse).
    Scenario& d = raw.draft();
    const char* key = "sweep.global_batch_tokens";
    if (!d.model.is_transformer() || d.model.seq_len <= 0) {
      throw InputError(in.spec.where(key), key, "", "needs a transformer model (model.seq_len)");
    }
    const ParallelismSpec& p = d.parallelism;
    const std::int64_t ranks = std::int64_t{p.tp} * p.pp * p.cp;
    const int dp = raw.is_set("parallelism.dp")    ? p.dp
                   : d.cluster.gpus() % ranks == 0 ? static_cast<int>(d.cluster.gpus() / ranks)
                                                   : 0;
    if (dp > 0) {
      d.parallelism.global_batch =
          rounded_global_batch(*in.spec.global_batch_tokens, d.model.seq_len, dp, p.microbatch);
      raw.set_by("parallelism.global_batch", in.spec.where(key));
    }
  }
  return resolve(std::move(raw));
}

std::vector<std::pair<std::string, std::string>> candidate_settings(const SweepInput& in,
                                                                    const CandidateResult& c) {
  detail::Settings out;
  for (const detail::Axis& axis : detail::axes())
    if (axis.settings) axis.settings(in, c, out);
  return out;
}

}  // namespace orrery
