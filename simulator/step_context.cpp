#include "simulator/step_context.h"

#include <utility>

#include "model/moe_routing.h"
#include "model/pipeline.h"
#include "simulator/step.h"

namespace orrery::detail {

StepContext::StepContext(const Scenario& scenario, const SimulationOptions& options,
                         const Hardware& hardware, const Workload& workload)
    : s(scenario),
      p(scenario.parallelism),
      opt(options),
      topo(hardware.cluster),
      model(hardware.model),
      work(workload) {
  L.tp = p.tp;
  L.cp = p.cp;
  L.dp = p.dp;
  L.pp = p.pp;
  L.etp = p.etp();
  // Expert layouts (expert_gpu) keep the default order: rank_order is refused with ep > 1.
  L.pp_inner = p.rank_order == ParallelismSpec::RankOrder::tp_cp_pp_dp;
  L.embedding_stages = embedding_group_stages(s);
  // Failed NICs hold for the whole step: routes go around them (Topology::fail_nic). The
  // symmetric step then follows the GPU behind the first one, whose groups are the
  // slowest, so that the step waits for them as the real synchronous step would.
  bool followed = false;
  for (const FaultSpec& f : s.faults) {
    if (f.kind != FaultSpec::Kind::failed_link || f.link != FaultSpec::Link::nic) continue;
    topo.fail_nic(f.node, f.nic);
    if (followed) continue;
    followed = true;
    const Layout::Coords at = L.coords(topo.gpu_of_nic(f.node, f.nic));
    L.follow_t = at.t;
    L.follow_c = at.c;
    L.follow_d = at.d;
  }
  for (int i = 0; i < topo.link_count(); ++i) capacity.push_back(topo.link(i).capacity);
  bytes = message_sizes(s);
  // The busiest rank computes its rows where the workload's expert ops hold the mean's
  // (model/moe_routing.h): load_imbalance times them, capped at the capacity.
  if (s.model.moe) expert_time_scale = orrery::expert_time_scale(*s.model.moe);
  local_dp = p.node_dp(s.cluster.gpus_per_node);
  engine.compute_slowdown = hardware.compute_slowdown;
  engine.comm_slowdown = s.simulation.comm_slowdown;
  dual = p.schedule == PipelineSchedule::dualpipe;
}

bool StepContext::groups_inside_node() const {
  const int g = s.cluster.gpus_per_node;
  // An expert-parallel group spans etp x ep consecutive ranks (Layout::expert_gpu).
  return p.tp <= g && g % p.tp == 0 && (p.ep == 1 || p.etp() * p.ep <= g);
}

}  // namespace orrery::detail
