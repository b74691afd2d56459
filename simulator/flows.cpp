#include "simulator/flows.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace orrery {

namespace {
// A flow whose remaining bytes fall below this fraction of a byte is complete: the
// credit of `rate * dt` at its exact completion time leaves rounding dust.
constexpr double kDoneBytes = 1e-3;
}  // namespace

FlowNetwork::FlowNetwork(std::vector<double> capacity)
    : capacity_(std::move(capacity)),
      link_bytes_(capacity_.size(), 0.0),
      residual_(capacity_.size(), 0.0),
      weight_sum_(capacity_.size(), 0.0) {}

int FlowNetwork::start(std::vector<FlowLink> links, double bytes, int owner, double scale) {
  ORRERY_CHECK(!links.empty(), "a flow crosses at least one link");
  ORRERY_CHECK(bytes >= 0 && scale > 0 && scale <= 1, "flow bytes and scale in range");
  int id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<int>(flows_.size());
    flows_.emplace_back();
  }
  Flow& f = flows_[id];
  f.links = std::move(links);
  f.remaining = bytes;
  f.rate = 0;
  f.scale = scale;
  f.owner = owner;
  f.active = true;
  active_ids_.push_back(id);
  ++active_count_;
  dirty_ = true;
  ++version_;
  return id;
}

void FlowNetwork::set_scale(int flow, double scale) {
  ORRERY_CHECK(scale > 0 && scale <= 1, "flow scale in (0, 1]");
  Flow& f = flows_.at(flow);
  if (!f.active || f.scale == scale) return;
  f.scale = scale;
  dirty_ = true;
  ++version_;
}

void FlowNetwork::advance(double now) {
  ORRERY_CHECK(now >= now_ - 1e-15, "time moves forward");
  if (dirty_) recompute();
  const double dt = now - now_;
  if (dt > 0) {
    for (int id : active_ids_) {
      Flow& f = flows_[id];
      const double moved = std::min(f.remaining, f.rate * dt);
      f.remaining -= moved;
      for (const FlowLink& l : f.links) link_bytes_[l.link] += moved * l.weight;
    }
  }
  now_ = std::max(now_, now);
}

double FlowNetwork::next_completion() {
  if (dirty_) recompute();
  double best = std::numeric_limits<double>::infinity();
  for (int id : active_ids_) {
    const Flow& f = flows_[id];
    const double t = f.remaining <= kDoneBytes ? now_ : now_ + f.remaining / f.rate;
    best = std::min(best, t);
  }
  return best;
}

void FlowNetwork::collect_finished(std::vector<int>& owners) {
  bool any = false;
  for (size_t i = 0; i < active_ids_.size();) {
    const int id = active_ids_[i];
    Flow& f = flows_[id];
    if (f.remaining <= kDoneBytes) {
      owners.push_back(f.owner);
      f.active = false;
      f.links.clear();
      free_.push_back(id);
      active_ids_.erase(active_ids_.begin() + static_cast<long>(i));
      --active_count_;
      any = true;
    } else {
      ++i;
    }
  }
  if (any) {
    dirty_ = true;
    ++version_;
  }
}

double FlowNetwork::rate(int flow) {
  if (dirty_) recompute();
  return flows_.at(flow).rate;
}

// Progressive filling: raise all unfrozen flows' rates together until some link is
// full; freeze the flows crossing it; repeat. Weighted: a flow consumes weight x rate.
void FlowNetwork::recompute() {
  dirty_ = false;
  if (active_ids_.empty()) return;
  std::vector<int> touched;
  for (int id : active_ids_) {
    for (const FlowLink& l : flows_[id].links) {
      if (weight_sum_[l.link] == 0 && residual_[l.link] == 0) touched.push_back(l.link);
      residual_[l.link] = capacity_[l.link];
      weight_sum_[l.link] += l.weight;
    }
  }
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  frozen_.assign(active_ids_.size(), 0);
  size_t unfrozen = active_ids_.size();
  double level = 0;
  while (unfrozen > 0) {
    double delta = std::numeric_limits<double>::infinity();
    for (int l : touched) {
      if (weight_sum_[l] > 0) delta = std::min(delta, residual_[l] / weight_sum_[l]);
    }
    ORRERY_CHECK(std::isfinite(delta), "every unfrozen flow crosses a link");
    level += delta;
    for (int l : touched) {
      if (weight_sum_[l] > 0) residual_[l] -= delta * weight_sum_[l];
    }
    for (size_t i = 0; i < active_ids_.size(); ++i) {
      if (frozen_[i]) continue;
      Flow& f = flows_[active_ids_[i]];
      bool saturated = false;
      for (const FlowLink& l : f.links) {
        saturated = saturated || residual_[l.link] <= 1e-9 * capacity_[l.link];
      }
      if (!saturated) continue;
      frozen_[i] = 1;
      --unfrozen;
      f.rate = level * f.scale;
      for (const FlowLink& l : f.links) weight_sum_[l.link] -= l.weight;
    }
  }
  for (int l : touched) {
    residual_[l] = 0;
    weight_sum_[l] = 0;
  }
}

}  // namespace orrery
