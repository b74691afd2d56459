// Speed of `orrery run`'s simulation (scenario already parsed): the symmetric mode for
// the two large shipped scenarios, and the full mode (every GPU simulated). Targets
// (issues 3 and 4): GPT-3 175B on 1024 A100 <= 10 ms; Llama 3 405B on 16,384 H100 <= 50 ms
// symmetric (also with cp 16 and FSDP) and <= 5 s full; issue 15: the cp 16 FSDP split with
// --full <= 10 s on 16,384 GPUs, cost linear in tasks. Results are reported in
// docs/simulator.md, not asserted.
#include <benchmark/benchmark.h>

#include <string>

#include "core/allocator.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace {

orrery::Scenario load(const char* rel) {
  return orrery::load_scenario_file(std::string(ORRERY_SOURCE_DIR) + "/" + rel);
}

// The shipped cp 16 FSDP split (scenarios/llama3-405b-h100-16k-cp16-fsdp.yaml) on `nodes`
// HGX H100 nodes, dp = nodes / 16, 16 sequences per data-parallel replica in
// micro-batches of `microbatch`: small enough for --full to run in seconds, the same
// tasks per GPU as at 16,384 GPUs.
orrery::Scenario cp16_fsdp(int nodes, int microbatch) {
  const int dp = nodes / 16;
  return orrery::load_scenario_text(
      "cluster: {preset: hgx-h100-roce, nodes: " + std::to_string(nodes) +
          "}\nmodel: {preset: llama3-405b}\nparallelism: {tp: 8, pp: 1, cp: 16, dp: " +
          std::to_string(dp) + ", fsdp: true, sequence_parallel: true, microbatch: " +
          std::to_string(microbatch) + ", global_batch: " + std::to_string(16 * dp) +
          "}\ntraining: {precision: bf16, recompute: full}\n",
      "cp16-fsdp-bench.yaml");
}

void BM_SimulateCp16Fsdp(benchmark::State& state, int nodes, int microbatch) {
  const orrery::Scenario s = cp16_fsdp(nodes, microbatch);
  orrery::SimulationOptions opt;
  opt.full = true;
  std::size_t tasks = 0;
  for (auto _ : state) {
    const orrery::StepResult r = orrery::simulate_step(s, opt);
    tasks = r.tasks;
    benchmark::DoNotOptimize(r.step_time);
  }
  state.counters["tasks"] = static_cast<double>(tasks);
  state.counters["tasks_per_gpu"] = static_cast<double>(tasks) / (8.0 * nodes);
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
// The shipped micro-batch (one of 16 sequences) on 1,024 GPUs, and the same batch as 16
// micro-batches of 1 (16 times the FSDP units) on 256.
BENCHMARK_CAPTURE(BM_SimulateCp16Fsdp, cp16_fsdp_1024_full, 128, 16)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK_CAPTURE(BM_SimulateCp16Fsdp, cp16_fsdp_256_16microbatches_full, 32, 1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

}  // namespace

int main(int argc, char** argv) {
  orrery::keep_freed_memory();  // as the orrery executable does
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
