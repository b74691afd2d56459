// run --explain's op-by-op section (report/run_report.h): the op table of
// simulator/op_times.h as text.
#include "report/run_report.h"

#include <fmt/format.h>

#include <string>

#include "simulator/op_times.h"

namespace orrery {

namespace {

std::string format_flops(double f) {
  static const char* names[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP"};
  int i = 0;
  while (i < 5 && f >= 1000.0) {
    f /= 1000.0;
    ++i;
  }
  return fmt::format("{:.2f} {}", f, names[i]);
}

// What an op's forward does and at what rate its time has it: FLOPs (a GEMM's, or the
// score tiles a fused attention kernel computes) or, without FLOPs, the bytes its kernels
// move; at the kernel floor when it moves none.
std::string op_work(const OpPassTimes& t) {
  const double secs = t.fwd.value();
  if (t.fwd_flops.value() > 0) {
    return fmt::format("{} at {}", format_flops(t.fwd_flops.value()),
                       secs > 0 ? format_flop_rate(FlopRate(t.fwd_flops.value() / secs))
                                : std::string("-"));
  }
  if (t.fwd_bytes.value() > 0) {
    return fmt::format("{} at {}", format_bytes(t.fwd_bytes),
                       secs > 0 ? format_bandwidth(Bandwidth(t.fwd_bytes.value() / secs))
                                : std::string("-"));
  }
  return "no bytes: the kernel floor";
}

}  // namespace

std::string render_op_explanation(const Scenario& s, const ComputeModel& model) {
  const OpTimes times = op_times(s, model);
  std::string o =
      "\nexplain (one micro-batch, op by op: each op's kernels alone on the GPU, without "
      "overlap, interference, host time or recompute)\n";
  o += fmt::format("  {:<28}{:>12}{:>12}{:>10}  {}\n", "layer / op", "forward", "backward",
                   "kernels", "forward: work and rate");
  // One op's line, its name in a column of `width` after `indent`.
  const auto op_line = [](const std::string& indent, int width, const OpPassTimes& t) {
    return fmt::format("{}{:<{}}{:>12}{:>12}{:>10}  {}\n", indent, t.name, width,
                       format_seconds(t.fwd), format_seconds(t.bwd),
                       fmt::format("{:.0f} / {:.0f}", t.fwd_kernels, t.bwd_kernels), op_work(t));
  };
  for (const LayerGroupTimes& g : times.groups) {
    // A layer that is one op of its own name (a CNN's rows) is one line.
    if (g.count == 1 && g.ops.size() == 1 && g.ops[0].name == g.first) {
      o += op_line("  ", 28, g.ops[0]);
      continue;
    }
    o += g.count == 1 ? fmt::format("  {}\n", g.first)
                      : fmt::format("  {} .. {} ({} alike)\n", g.first, g.last, g.count);
    for (const OpPassTimes& t : g.ops) o += op_line("    ", 26, t);
    if (g.ops.size() > 1) {
      o += fmt::format("    {:<26}{:>12}{:>12}\n", g.count == 1 ? "the layer" : "one layer",
                       format_seconds(g.fwd), format_seconds(g.bwd));
    }
  }
  o += fmt::format("  {:<28}{:>12}{:>12}  {}\n", "all layers", format_seconds(times.fwd),
                   format_seconds(times.bwd),
                   fmt::format("every pipeline stage's, at this split; {} micro-batch{} a "
                               "pipeline a step",
                               s.parallelism.microbatches(),
                               s.parallelism.microbatches() == 1 ? "" : "es"));
  return o;
}

}  // namespace orrery
