#include "simulator/flows.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace orrery {

namespace {
// A flow whose remaining bytes fall below this is complete: crediting `rate * dt` at
// its exact completion time leaves rounding dust.
constexpr double kDoneBytes = 1e-3;
}  // namespace

FlowNetwork::FlowNetwork(std::vector<double> capacity)
    : capacity_(std::move(capacity)),
      link_bytes_(capacity_.size(), 0.0),
      link_flows_(capacity_.size()),
      residual_(capacity_.size(), 0.0),
      weight_sum_(capacity_.size(), 0.0),
      link_mark_(capacity_.size(), 0) {}

void FlowNetwork::mark_dirty(const Flow& f) {
  for (const FlowLink& l : f.links) {
    if (!link_mark_[l.link]) {
      link_mark_[l.link] = 1;
      dirty_links_.push_back(l.link);
    }
  }
}

int FlowNetwork::start(const std::vector<FlowLink>& links, double bytes, int owner, double scale) {
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
  f.links.assign(links.begin(), links.end());
  f.remaining = bytes;
  f.rate = 0;
  f.scale = scale;
  f.owner = owner;
  f.active = true;
  f.updated = now_;
  ++f.version;
  for (const FlowLink& l : f.links) link_flows_[l.link].push_back(id);
  mark_dirty(f);
  ++active_count_;
  ++version_;
  return id;
}

void FlowNetwork::set_scale(int flow, double scale) {
  ORRERY_CHECK(scale > 0 && scale <= 1, "flow scale in (0, 1]");
  Flow& f = flows_.at(flow);
  if (!f.active || f.scale == scale) return;
  f.scale = scale;
  mark_dirty(f);
  ++version_;
}

void FlowNetwork::set_capacity(int link, double capacity) {
  ORRERY_CHECK(link >= 0 && static_cast<size_t>(link) < capacity_.size() && capacity >= 0,
               "a link of the network and a capacity >= 0");
  if (capacity_[link] == capacity) return;
  capacity_[link] = capacity;
  if (!link_mark_[link]) {
    link_mark_[link] = 1;
    dirty_links_.push_back(link);
  }
  ++version_;
}

void FlowNetwork::settle(Flow& f) {
  const double moved = std::min(f.remaining, f.rate * (now_ - f.updated));
  if (moved > 0) {
    f.remaining -= moved;
    for (const FlowLink& l : f.links) link_bytes_[l.link] += moved * l.weight;
  }
  f.updated = now_;
}

void FlowNetwork::advance(double now) {
  ORRERY_CHECK(now >= now_ - 1e-15, "time moves forward");
  now_ = std::max(now_, now);
}

double FlowNetwork::next_completion() {
  if (!dirty_links_.empty()) recompute();
  while (!heap_.empty()) {
    const Pending& top = heap_.front();
    if (live(top)) return std::max(top.t, now_);
    pop_pending();
  }
  return std::numeric_limits<double>::infinity();
}

void FlowNetwork::collect_finished(std::vector<int>& owners) {
  if (!dirty_links_.empty()) recompute();
  while (!heap_.empty()) {
    const Pending top = heap_.front();
    if (!live(top)) {
      pop_pending();
      continue;
    }
    Flow& f = flows_[top.flow];
    // Due now (allowing the rounding of now + remaining / rate), or not yet. A flow with
    // no rate (every path through a failed link) is never due.
    if (top.t > now_ && (f.rate <= 0 || (top.t - now_) * f.rate > kDoneBytes)) break;
    pop_pending();
    settle(f);
    for (const FlowLink& l : f.links) link_bytes_[l.link] += f.remaining * l.weight;
    f.remaining = 0;
    owners.push_back(f.owner);
    f.active = false;
    ++f.version;
    mark_dirty(f);
    // Its entries in link_flows_ are dropped lazily, when recompute next walks the link;
    // the id is reused only after that (see `start`).
    f.links.clear();
    retired_.push_back(top.flow);
    --active_count_;
    ++version_;
  }
}

double FlowNetwork::rate(int flow) {
  if (!dirty_links_.empty()) recompute();
  return flows_.at(flow).rate;
}

// Only the flows connected (through shared links) to a change need new rates. Within that
// component, progressive filling: raise all unfrozen flows' rates together until some
// link is full, freeze the flows crossing it, repeat. A flow consumes weight x rate.
void FlowNetwork::recompute() {
  // The component: links and flows reachable from the dirty links.
  comp_links_.clear();
  comp_flows_.clear();
  for (size_t i = 0; i < dirty_links_.size(); ++i) {
    const int l = dirty_links_[i];
    comp_links_.push_back(l);
    std::vector<int>& on = link_flows_[l];
    on.erase(std::remove_if(on.begin(), on.end(), [&](int id) { return !flows_[id].active; }),
             on.end());
    for (int id : on) {
      Flow& f = flows_[id];
      if (f.in_component) continue;
      f.in_component = true;
      comp_flows_.push_back(id);
      for (const FlowLink& fl : f.links) {
        if (!link_mark_[fl.link]) {
          link_mark_[fl.link] = 1;
          dirty_links_.push_back(fl.link);
        }
      }
    }
  }
  for (int l : comp_links_) {
    link_mark_[l] = 0;
    residual_[l] = capacity_[l];
    weight_sum_[l] = 0;
  }
  dirty_links_.clear();
  // Finished flows' link entries were dropped above; their ids may be reused now.
  free_.insert(free_.end(), retired_.begin(), retired_.end());
  retired_.clear();
  std::sort(comp_flows_.begin(), comp_flows_.end());  // a fixed order: deterministic sums
  for (int id : comp_flows_) {
    Flow& f = flows_[id];
    f.in_component = false;
    settle(f);
    for (const FlowLink& l : f.links) weight_sum_[l.link] += l.weight;
  }
  frozen_.assign(comp_flows_.size(), 0);
  size_t unfrozen = comp_flows_.size();
  double level = 0;
  while (unfrozen > 0) {
    double delta = std::numeric_limits<double>::infinity();
    for (int l : comp_links_) {
      if (weight_sum_[l] > 1e-12) delta = std::min(delta, residual_[l] / weight_sum_[l]);
    }
    ORRERY_CHECK(std::isfinite(delta), "every unfrozen flow crosses a link");
    level += delta;
    for (int l : comp_links_) {
      if (weight_sum_[l] > 1e-12) residual_[l] -= delta * weight_sum_[l];
    }
    for (size_t i = 0; i < comp_flows_.size(); ++i) {
      if (frozen_[i]) continue;
      Flow& f = flows_[comp_flows_[i]];
      bool saturated = false;
      for (const FlowLink& l : f.links) {
        saturated = saturated || residual_[l.link] <= 1e-9 * capacity_[l.link];
      }
      if (!saturated) continue;
      frozen_[i] = 1;
      --unfrozen;
      f.rate = level * f.scale;
      ++f.version;
      push_pending({now_ + f.remaining / f.rate, comp_flows_[i], f.version});
      for (const FlowLink& l : f.links) weight_sum_[l.link] -= l.weight;
    }
  }
  ++version_;
  compact_heap();
}

// std::push_heap and pop_heap build a max-heap on operator<, which Pending defines
// reversed: the front is the earliest (t, flow).
void FlowNetwork::push_pending(const Pending& p) {
  heap_.push_back(p);
  std::push_heap(heap_.begin(), heap_.end());
}

void FlowNetwork::pop_pending() {
  std::pop_heap(heap_.begin(), heap_.end());
  heap_.pop_back();
}

// Each active flow has exactly one live entry, and (t, flow) orders the live entries
// totally, so which of them comes first does not depend on the heap's shape: dropping
// the stale ones and rebuilding leaves every later completion, and so every output, as
// it was.
void FlowNetwork::compact_heap() {
  if (heap_.size() < 4096 || heap_.size() < 4 * static_cast<size_t>(active_count_)) return;
  std::erase_if(heap_, [this](const Pending& p) { return !live(p); });
  std::make_heap(heap_.begin(), heap_.end());
}

}  // namespace orrery
