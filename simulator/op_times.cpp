#include "simulator/op_times.h"

#include "model/moe_routing.h"
#include "simulator/layer_templates.h"

namespace orrery {
namespace {

bool same_times(const std::vector<OpPassTimes>& a, const std::vector<OpPassTimes>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].fwd.value() != b[i].fwd.value() ||
        a[i].bwd.value() != b[i].bwd.value() || a[i].fwd_kernels != b[i].fwd_kernels ||
        a[i].bwd_kernels != b[i].bwd_kernels) {
      return false;
    }
  }
  return true;
}

}  // namespace

OpTimes op_times(const Scenario& s, const ComputeModel& model) {
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  // The busiest rank's expert rows over the mean's (as StepContext takes them).
  const double expert_scale = s.model.moe ? expert_time_scale(*s.model.moe) : 1.0;
  OpTimes out;
  for (const Layer& layer : w.layers) {
    LayerGroupTimes g;
    g.first = g.last = layer.name;
    g.count = 1;
    for (const Op& op : layer.ops) {
      const double scale = op.expert ? expert_scale : 1.0;
      OpPassTimes t;
      t.name = op.name;
      t.kind = op.kind;
      t.fwd = model.op_time(op, Pass::forward) * scale;
      t.bwd = model.op_time(op, Pass::backward) * scale;
      t.fwd_kernels = detail::kernels_of(op, Pass::forward, s.training.fp8);
      t.bwd_kernels = detail::kernels_of(op, Pass::backward, s.training.fp8);
      // The work of the same rank as the time (an expert op's at the busiest rank's rows),
      // so that the rate shown is the kernels' own.
      t.fwd_flops = Flop(op.fwd_flops.value() * op.computed_share * scale);
      t.fwd_bytes = (op.fwd_read + op.fwd_written + op.aux_fwd_bytes) * scale;
      g.fwd += t.fwd;
      g.bwd += t.bwd;
      g.ops.push_back(std::move(t));
    }
    out.fwd += g.fwd;
    out.bwd += g.bwd;
    if (!out.groups.empty() && same_times(out.groups.back().ops, g.ops)) {
      out.groups.back().last = layer.name;
      ++out.groups.back().count;
    } else {
      out.groups.push_back(std::move(g));
    }
  }
  return out;
}

}  // namespace orrery
