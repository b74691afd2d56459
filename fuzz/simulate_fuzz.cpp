// libFuzzer target: a scenario the reader accepts, simulated and reported. The reader's
// checks cannot see everything the simulator builds (a fault on a spine the fabric lacks,
// say), so the simulation and the report must also end in a result or an InputError.
// Scenarios that would take long to simulate (large clusters, many micro-batches) and
// those naming a calibration file (the bytes could name any path) are only read.
#include "fuzz/fuzz_input.h"
#include "report/run_report.h"
#include "scenario/load.h"
#include "simulator/predict.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  orrery::fuzz::expect_input_error_or_success(data, size, [](const std::string& t) {
    const orrery::Scenario s = orrery::load_scenario_text(t, "fuzz.yaml");
    const auto& p = s.parallelism;
    const bool small = s.cluster.gpus() <= 512 && p.microbatches() <= 64 && p.pp <= 16 &&
                       s.model.layers <= 128 && !s.cluster.calibration;
    if (!small) return;
    const orrery::Prediction prediction = orrery::predict(s);
    orrery::render_run_table(s, prediction);
    orrery::render_run_json(s, prediction);
  });
  return 0;
}
