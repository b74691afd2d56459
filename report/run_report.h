// What `orrery run` prints: step time, its breakdown, throughput, MFU, memory, traffic;
// as a table, JSON or CSV (the trace: report/trace.h).
#pragma once

#include <string>

#include "scenario/spec.h"
#include "simulator/predict.h"

namespace orrery {

std::string render_run_table(const Scenario& s, const Prediction& prediction);
std::string render_run_json(const Scenario& s, const Prediction& prediction);
// A header line and one row; fields never contain commas.
std::string render_run_csv(const Scenario& s, const Prediction& prediction);

}  // namespace orrery
