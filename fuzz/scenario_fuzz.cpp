// libFuzzer target: the scenario reader (parse, presets, overrides, validation).
#include "fuzz/fuzz_input.h"
#include "scenario/load.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  orrery::fuzz::expect_input_error_or_success(
      data, size, [](const std::string& t) { orrery::load_scenario_text(t, "fuzz.yaml"); });
  return 0;
}
