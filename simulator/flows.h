// Bandwidth sharing: active flows on directed links get max-min fair rates (progressive
// filling, Bertsekas & Gallager, "Data Networks", section 6.5.2). A flow may stand for
// several identical copies on some of its links (the symmetric ranks that are not
// simulated): on such a link it consumes `weight` times its rate.
//
// Contract with the event loop: start/finish flows, `advance(t)` to move time forward,
// `next_completion()` to learn when the next flow ends. Rates are recomputed only when
// the set of flows or a scale changes.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace orrery {

struct FlowLink {
  int link;
  double weight = 1.0;  // copies of this flow that cross the link
};

class FlowNetwork {
 public:
  explicit FlowNetwork(std::vector<double> capacity_bytes_per_s);

  // Starts a flow of `bytes` over `links`; returns its id. `owner` is passed back on
  // completion. `scale` (0, 1] slows the flow below its fair share (a GPU whose SMs are
  // busy with compute), without freeing bandwidth for others.
  // The links are copied into a slot a finished flow left, reusing its storage.
  int start(const std::vector<FlowLink>& links, double bytes, int owner, double scale = 1.0);
  void set_scale(int flow, double scale);
  // Changes a link's capacity (a modelled fault); the flows on it are re-shared.
  void set_capacity(int link, double capacity_bytes_per_s);

  // Moves time to `now` (>= the last time). Progress is credited lazily, per flow, when
  // its rate changes or it completes.
  void advance(double now);
  // Time at which the earliest active flow completes; +inf when none is active.
  double next_completion();
  // Removes flows that have completed by the current time; appends their owners.
  void collect_finished(std::vector<int>& owners);

  double rate(int flow);  // current rate in bytes/s
  int active() const { return active_count_; }
  // Bytes carried so far per link (weighted by copies), up to the last rate change or
  // completion of each flow: complete once every flow has finished.
  const std::vector<double>& bytes_per_link() const { return link_bytes_; }
  // Bumped whenever rates may have changed; the event loop uses it to drop stale events.
  std::uint64_t version() const { return version_; }

 private:
  struct Flow {
    std::vector<FlowLink> links;
    double remaining = 0;  // as of `updated`
    double rate = 0;
    double scale = 1;
    double updated = 0;
    int owner = -1;
    bool active = false;
    bool in_component = false;
    std::uint64_t version = 0;
  };
  struct Pending {
    double t;
    int flow;
    std::uint64_t version;
    bool operator<(const Pending& o) const {  // a min-heap on (t, flow)
      if (t != o.t) return t > o.t;
      return flow > o.flow;
    }
  };
  void recompute();
  void settle(Flow& f);
  void mark_dirty(const Flow& f);
  bool live(const Pending& p) const {
    const Flow& f = flows_[p.flow];
    return f.active && f.version == p.version;
  }
  void push_pending(const Pending& p);
  void pop_pending();
  void compact_heap();

  std::vector<double> capacity_;
  std::vector<Flow> flows_;
  std::vector<int> free_;
  std::vector<int> retired_;  // finished, still listed on their links until next recompute
  std::vector<double> link_bytes_;
  std::vector<std::vector<int>> link_flows_;  // active flows on each link
  // Completion times, a binary heap (std::push_heap / pop_heap on Pending's order). An
  // entry goes stale when its flow finishes or gets a new rate; stale entries are skipped
  // when they reach the top, and dropped all at once when they outnumber the live ones
  // (compact_heap), so a large component whose rates change at every event does not
  // leave a heap of dead entries to pop one by one.
  std::vector<Pending> heap_;
  double now_ = 0;
  int active_count_ = 0;
  std::uint64_t version_ = 0;
  // Scratch for recompute.
  std::vector<double> residual_, weight_sum_;
  std::vector<char> link_mark_, frozen_;
  std::vector<int> dirty_links_, comp_links_, comp_flows_;
};

}  // namespace orrery
