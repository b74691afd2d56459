// Speed of `orrery run`'s simulation (scenario already parsed): the symmetric mode for
// the two large shipped scenarios, and the full mode (every GPU simulated). Targets
// (issues 3 and 4): GPT-3 175B on 1024 A100 <= 10 ms; Llama 3 405B on 16,384 H100 <= 50 ms
// symmetric (also with cp 16 and FSDP) and <= 5 s full. Results are reported in docs/simulator.md, not asserted.
#include <benchmark/benchmark.h>

#include <string>

#include "core/allocator.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace {

orrery::Scenario load(const char* rel) {
  return orrery::load_scenario_file(std::string(ORRERY_SOURCE_DIR) + "/" + rel);
}

void BM_Simulate(benchmark::State& state, const char* file, bool full) {
  const orrery::Scenario s = load(file);
  orrery::SimulationOptions opt;
  opt.full = full;
  for (auto _ : state) benchmark::DoNotOptimize(orrery::simulate_step(s, opt));
}

BENCHMARK_CAPTURE(BM_Simulate, gpt3_175b_1024_symmetric, "scenarios/gpt3-175b-a100-1024.yaml", false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Simulate, llama3_405b_16k_symmetric, "scenarios/llama3-405b-h100-16k.yaml", false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Simulate, llama3_405b_16k_cp16_fsdp_symmetric,
                  "scenarios/llama3-405b-h100-16k-cp16-fsdp.yaml", false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Simulate, gpt3_175b_1024_full, "scenarios/gpt3-175b-a100-1024.yaml", true)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_Simulate, llama3_405b_16k_full, "scenarios/llama3-405b-h100-16k.yaml", true)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  orrery::keep_freed_memory();  // as the orrery executable does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
