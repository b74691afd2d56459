// Whether a simulated step's time depends on what ran before it in the process (the
// allocator's state: freed memory returned to the system, large blocks mapped afresh,
// pages faulted in again). Times the Llama 3 405B symmetric step on 16,384 H100
// (scenarios/llama3-405b-h100-16k.yaml) in three states: first in a fresh process, right
// after itself, and after a --full simulation of GPT-3 175B on 1024 A100 has run and
// freed its memory; with the page faults each took. Repeat it as a process to see the
// spread (bench/startup_timing.sh does). Runs with the executables' allocator settings
// (core/allocator.h); with any argument, with glibc's defaults. Prints one line;
// reports, asserts nothing.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "core/allocator.h"
#include "scenario/load.h"
#include "simulator/step.h"

namespace {

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

struct Timed {
  double ms;
  long faults;
};

Timed time_step(const orrery::Scenario& s, const orrery::SimulationOptions& o = {}) {
  const long f0 = minor_faults();
  const auto t0 = std::chrono::steady_clock::now();
  const orrery::StepResult r = orrery::simulate_step(s, o);
  const auto t1 = std::chrono::steady_clock::now();
  if (r.tasks == 0) std::printf("empty step\n");
  return {std::chrono::duration<double, std::milli>(t1 - t0).count(), minor_faults() - f0};
}

}  // namespace

int main(int argc, char**) {
  // With an argument: glibc's default allocator settings, to compare.
  if (argc < 2) orrery::keep_freed_memory();
  const std::string root = ORRERY_SOURCE_DIR;
  const orrery::Scenario big =
      orrery::load_scenario_file(root + "/scenarios/llama3-405b-h100-16k.yaml");
  const orrery::Scenario gpt =
      orrery::load_scenario_file(root + "/scenarios/gpt3-175b-a100-1024.yaml");
  const Timed first = time_step(big);
  const Timed again = time_step(big);
  orrery::SimulationOptions full;
  full.full = true;
  time_step(gpt, full);
  const Timed after_full = time_step(big);
  std::printf(
      "405B symmetric step: first %.2f ms (%ld faults), again %.2f ms (%ld), after a full "
      "GPT-3 run %.2f ms (%ld)\n",
      first.ms, first.faults, again.ms, again.faults, after_full.ms, after_full.faults);
  return 0;
}
