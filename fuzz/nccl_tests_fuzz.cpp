// libFuzzer target: the nccl-tests log parser. Without an op hint a log that does not
// name its program is refused; with one it is parsed, so both paths are reached.
#include "calibrate/nccl_tests.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  orrery::fuzz::expect_input_error_or_success(data, size, [](const std::string& t) {
    orrery::looks_like_nccl_tests(t);
    orrery::read_nccl_tests_text(t, "fuzz.log");
  });
  orrery::fuzz::expect_input_error_or_success(data, size, [](const std::string& t) {
    orrery::read_nccl_tests_text(t, "fuzz.log", "all_reduce");
  });
  return 0;
}
