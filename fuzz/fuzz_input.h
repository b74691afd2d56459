// The contract every fuzz target checks: a reader given any bytes either returns or
// throws InputError. Anything else escaping (another exception, such as the logic_error
// of a failed ORRERY_CHECK), a crash or a sanitizer report is a bug in orrery.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "core/error.h"

namespace orrery::fuzz {

template <class F>
void expect_input_error_or_success(const std::uint8_t* data, std::size_t size, F&& read) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    read(text);
  } catch (const InputError&) {
    // Bad input, reported as it should be.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: not an InputError: %s\n", e.what());
    std::abort();
  }
}

}  // namespace orrery::fuzz
