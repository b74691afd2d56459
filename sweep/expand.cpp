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
#include "sweep/space.h"
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

}  // namespace

namespace detail {

CandidateSpace::CandidateSpace(const SweepInput& in) : in_(in), order_(nested_axes()) {
  values_.resize(order_.size());
  pos_.resize(order_.size());
  valid_ = fill(0);
}

// Sets the axes from `level` on to their first values that leave a candidate (an axis
// may have no value for some outer ones); false when none does.
bool CandidateSpace::fill(std::size_t level) {
  if (level == order_.size()) return true;
  order_[level]->values(in_, a_, values_[level]);
  for (pos_[level] = 0; pos_[level] < values_[level].size(); ++pos_[level]) {
    order_[level]->set(a_, values_[level][pos_[level]]);
    if (fill(level + 1)) return true;
  }
  return false;
}

void CandidateSpace::next() {
  ++index_;
  for (std::size_t l = order_.size(); l-- > 0;) {
    while (++pos_[l] < values_[l].size()) {
      order_[l]->set(a_, values_[l][pos_[l]]);
      if (fill(l + 1)) return;
    }
  }
  valid_ = false;
}

void CandidateSpace::position(std::vector<std::uint16_t>& out) const {
  for (std::size_t p : pos_) out.push_back(static_cast<std::uint16_t>(p));
}

Assignment CandidateSpace::at(const std::uint16_t* p) const {
  Assignment a;
  std::vector<int> values;
  for (std::size_t l = 0; l < order_.size(); ++l) {
    order_[l]->values(in_, a, values);
    order_[l]->set(a, values.at(p[l]));
  }
  return a;
}

std::int64_t CandidateSpace::count(const SweepInput& in) {
  std::int64_t n = 0;
  for (CandidateSpace s(in); s.valid(); s.next()) ++n;
  return n;
}

}  // namespace detail

std::vector<Assignment> expand(const SweepInput& in) {
  std::vector<Assignment> out;
  for (detail::CandidateSpace s(in); s.valid(); s.next()) out.push_back(s.current());
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
