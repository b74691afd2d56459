// `orrery run --trace FILE`: the simulated step as Chrome trace-event JSON (opens in
// Perfetto and chrome://tracing). docs/simulator.md, "Traces", says what it shows.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "scenario/spec.h"
#include "simulator/predict.h"

namespace orrery {

struct TraceOptions {
  // Trace events at most, metadata and counters included. An event is at most ~450 bytes
  // (a collective's slice with its args, 16 GPUs of its group listed) and ~155 on the
  // shipped scenarios, so a trace stays under ~225 MB and is typically ~80 MB at the cap,
  // which Perfetto's UI opens.
  std::size_t max_events = 500000;
};

struct Trace {
  std::string json;
  bool op_level = false;            // compute per op and every collective its own slice
  std::size_t events = 0;           // events written
  std::optional<std::string> note;  // set when the cap cut the timeline short
};

// The timeline of a step simulated for the trace: op by op (SimulationOptions::op_level)
// where the simulator supports it (op_level_supported) and not `full`, else the
// prediction's own, whose compute is one slice per block with the layers' tensor-,
// expert- and context-parallel collectives inside it. The op-level step is close to the
// prediction's but not equal (docs/simulator.md, "Traces"); the trace carries both.
Trace render_trace(const Scenario& s, const Prediction& prediction, bool full,
                   const TraceOptions& options = {});

// The same for a step already simulated (`op_level` says how it was).
Trace render_trace(const Scenario& s, const StepResult& r, bool op_level,
                   const TraceOptions& options = {});

}  // namespace orrery
