// What `orrery run` prints: step time, its breakdown, throughput, MFU, memory, traffic;
// as a table, JSON or CSV; and the simulated timeline as a Chrome/Perfetto trace.
#pragma once

#include <string>

#include "scenario/spec.h"
#include "simulator/predict.h"

namespace orrery {

std::string render_run_table(const Scenario& s, const Prediction& prediction);
std::string render_run_json(const Scenario& s, const Prediction& prediction);
// A header line and one row; fields never contain commas.
std::string render_run_csv(const Scenario& s, const Prediction& prediction);
// Chrome trace-event JSON: a process per simulated GPU (pipeline stage) with a thread
// per stream, and a process per link class with a thread per busy link, each collective
// shown on every link its flows cross. Times in microseconds.
std::string render_trace(const Scenario& s, const StepResult& r);

}  // namespace orrery
