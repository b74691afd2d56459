// libFuzzer target: the PyTorch profiler / Kineto Chrome-trace reader.
#include "calibrate/kineto.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  orrery::fuzz::expect_input_error_or_success(data, size, [](const std::string& t) {
    orrery::looks_like_chrome_trace(t);
    orrery::read_kineto_text(t, "fuzz.json");
  });
  return 0;
}
