// Progress of a sweep on stderr: one line per case, rewritten in place ("\r") on a
// terminal. Silent when stderr is not a terminal or with --quiet; the caller decides.
#pragma once

#include <cstddef>
#include <ostream>
#include <string>

namespace orrery::profiler {

class Progress {
 public:
  // Writes nothing when `enabled` is false.
  Progress(std::ostream& out, bool enabled) : out_(out), enabled_(enabled) {}
  // Case `index` (1-based) of `total` finished with `result` ("1.252 ms" or
  // "skipped: out of memory").
  void step(std::size_t index, std::size_t total, const std::string& what,
            const std::string& result);
  // Ends the in-place line.
  void finish();

 private:
  std::ostream& out_;
  bool enabled_;
  bool open_line_ = false;
};

}  // namespace orrery::profiler
