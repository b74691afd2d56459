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
  // Trace events at most, metadata and counters included: 500,000 events of about 250
  // bytes each keep a trace under ~125 MB, which Perfetto's UI opens.
  std::size_t max_events = 500000;
};

struct Trace {
  std::string json;
  bool op_level = false;            // compute per op and every collective its own slice
  std::size_t events = 0;           // events written
  std::optional<std::string> note;  // set when the cap cut the timeline short
};

// The timeline of a step simulated for the trace: op by op (SimulationOptions::op_level)
// where the simulator supports it (op_level_supported), else the prediction's own, whose
// compute is one slice per block with the layers' tensor-, expert- and context-parallel
// collectives inside it. `full` as for the prediction.
Trace render_trace(const Scenario& s, const Prediction& prediction, bool full,
                   const TraceOptions& options = {});

// The same for a step already simulated (`op_level` says how it was).
Trace render_trace(const Scenario& s, const StepResult& r, bool op_level,
                   const TraceOptions& options = {});

}  // namespace orrery
