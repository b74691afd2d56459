// What `orrery run` prints: step time, its breakdown, throughput, MFU, memory, traffic;
// as a table, JSON or CSV (the trace: report/trace.h).
#pragma once

#include <string>

#include "calibrate/compute_model.h"
#include "scenario/spec.h"
#include "simulator/predict.h"

namespace orrery {

std::string render_run_table(const Scenario& s, const Prediction& prediction);
// `run --explain`'s training-stack section: each mechanism of training.stack as resolved,
// and whether the file or the preset set it (docs/model.md, "Training stacks").
std::string render_stack_explanation(const Scenario& s);
// `run --explain`'s op-by-op section: every op of one micro-batch alone on the GPU, its
// forward and backward time, the kernels the host issues and the forward's work and rate
// (simulator/op_times.h); identical consecutive layers as one group.
std::string render_op_explanation(const Scenario& s, const ComputeModel& model);
std::string render_run_json(const Scenario& s, const Prediction& prediction);
// A header line and one row; fields never contain commas.
std::string render_run_csv(const Scenario& s, const Prediction& prediction);

}  // namespace orrery
