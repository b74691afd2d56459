// libFuzzer target: the two calibration-file readers of docs/calibration-format.md, the
// measurement file orrery-profile writes and the profile orrery calibrate writes. Both
// are YAML, so one corpus serves both.
#include "calibrate/measurements.h"
#include "calibrate/profile.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  orrery::fuzz::expect_input_error_or_success(
      data, size, [](const std::string& t) { orrery::read_measurement_text(t, "fuzz.yaml"); });
  orrery::fuzz::expect_input_error_or_success(
      data, size, [](const std::string& t) { orrery::read_profile_text(t, "fuzz.yaml"); });
  return 0;
}
