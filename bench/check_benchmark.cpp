// Speed of the analytical path behind `orrery check`: scenario parsing and the
// workload + memory analysis, for the two large shipped scenarios. The design goal is
// about a millisecond per configuration; run with
//   ./build/bench/check_benchmark
// and see the numbers in docs/model.md.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include "model/analysis.h"
#include "scenario/load.h"

namespace {

std::string source(const char* rel) {
  return std::string(ORRERY_SOURCE_DIR) + "/" + rel;
}

void BM_LoadScenario(benchmark::State& state, const char* file) {
  const std::string path = source(file);
  for (auto _ : state) benchmark::DoNotOptimize(orrery::load_scenario_file(path));
}

void BM_AnalyseStep(benchmark::State& state, const char* file) {
  const orrery::Scenario s = orrery::load_scenario_file(source(file));
  for (auto _ : state) benchmark::DoNotOptimize(orrery::analyse_step(s));
}

BENCHMARK_CAPTURE(BM_LoadScenario, gpt3_175b_1024, "scenarios/gpt3-175b-a100-1024.yaml")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AnalyseStep, gpt3_175b_1024, "scenarios/gpt3-175b-a100-1024.yaml")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_AnalyseStep, llama3_405b_16k, "scenarios/llama3-405b-h100-16k.yaml")
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
