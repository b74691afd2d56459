// The scenario's faults (scenario/spec.h FaultSpec) as changes the engine applies at
// their times: a straggler's rank or a link slowed or stopped (simulator/engine.h).
#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "core/error.h"
#include "simulator/step_passes.h"

namespace orrery::detail {

std::vector<EngineChange> fault_changes(const StepContext& ctx,
                                        const std::vector<int>& stage_of_rank) {
  const Scenario& s = ctx.s;
  const Topology& topo = ctx.topo;
  const Layout& L = ctx.L;
  std::vector<EngineChange> out;
  for (size_t i = 0; i < s.faults.size(); ++i) {
    const FaultSpec& f = s.faults[i];
    auto bad = [&](const char* key, int value, const std::string& why) {
      const std::string path = fmt::format("faults[{}].{}", i, key);
      return InputError(s.where(path), path, std::to_string(value), why);
    };
    auto window = [&](EngineChange c) {
      c.t = f.from;
      out.push_back(c);
      if (f.until) {
        c.t = *f.until;
        c.factor = 1.0;
        out.push_back(c);
      }
    };
    // A leaf's spine uplinks, which a fabric of one leaf switch does not have.
    auto check_leaf = [&] {
      if (topo.leaves() < 2)
        throw bad("leaf", f.leaf, "the fabric has a single leaf switch and no spine uplinks");
      if (f.leaf >= topo.leaves())
        throw bad("leaf", f.leaf, fmt::format("the fabric has {} leaf switches", topo.leaves()));
    };
    auto on_rank = [&](int rank, double factor) {
      window({Seconds(0), rank, std::nullopt, factor});
    };
    // A link the cluster lacks (a NIC of a single-node cluster) changes nothing.
    auto on_link = [&](std::optional<int> link, double factor) {
      if (link) window({Seconds(0), std::nullopt, *link, factor});
    };
    const int gpn = s.cluster.gpus_per_node;
    switch (f.kind) {
      case FaultSpec::Kind::straggler: {
        // The stage's first simulated GPU: the stage itself when one GPU stands for it.
        const auto it = std::find(stage_of_rank.begin(), stage_of_rank.end(), f.stage);
        on_rank(static_cast<int>(it - stage_of_rank.begin()), f.factor);
        break;
      }
      case FaultSpec::Kind::slow_link:
        switch (f.link) {
          case FaultSpec::Link::nic:
            for (int k = 0; k < topo.nics_per_node(); ++k) {
              on_link(topo.nic_up(f.node, k), f.factor);
              on_link(topo.nic_down(f.node, k), f.factor);
            }
            break;
          case FaultSpec::Link::spine:
            check_leaf();
            on_link(topo.spine_up(f.leaf), f.factor);
            on_link(topo.spine_down(f.leaf), f.factor);
            break;
          case FaultSpec::Link::nvlink:
            on_link(topo.nvlink_up(f.gpu), f.factor);
            on_link(topo.nvlink_down(f.gpu), f.factor);
            break;
        }
        break;
      case FaultSpec::Kind::failed_link: {
        if (f.link == FaultSpec::Link::nic) {
          // Routed around (Topology::fail_nic); traffic still on it is a node with no
          // working NIC left, which then stalls.
          on_link(topo.nic_up(f.node, f.nic), 0.0);
          on_link(topo.nic_down(f.node, f.nic), 0.0);
          break;
        }
        check_leaf();
        // The leaf's other uplinks carry its traffic (ECMP spreads flows over them).
        const double uplinks = topo.leaf_uplinks(f.leaf);
        const double factor = std::max(0.0, uplinks - f.lost) / uplinks;
        on_link(topo.spine_up(f.leaf), factor);
        on_link(topo.spine_down(f.leaf), factor);
        break;
      }
      case FaultSpec::Kind::failed_node: {
        // Every simulated rank whose group has a GPU on the node stops: synchronous
        // collectives wait for it forever. In the symmetric step a rank stands for its
        // stage, so a stage with any GPU on the node stops.
        for (size_t r = 0; r < stage_of_rank.size(); ++r) {
          bool hit = false;
          if (ctx.opt.full) {
            hit = static_cast<int>(r) / gpn == f.node;
          } else {
            for (int t = 0; t < L.tp && !hit; ++t)
              for (int c = 0; c < L.cp && !hit; ++c)
                for (int d = 0; d < L.dp && !hit; ++d)
                  hit = L.gpu(t, c, d, stage_of_rank[r]) / gpn == f.node;
          }
          if (hit) on_rank(static_cast<int>(r), 0.0);
        }
        for (int k = 0; k < topo.nics_per_node(); ++k) {
          on_link(topo.nic_up(f.node, k), 0.0);
          on_link(topo.nic_down(f.node, k), 0.0);
        }
        break;
      }
    }
  }
  return out;
}

}  // namespace orrery::detail
