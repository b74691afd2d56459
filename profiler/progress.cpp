#include "profiler/progress.h"

#include <fmt/format.h>

namespace orrery::profiler {

void Progress::step(std::size_t index, std::size_t total, const std::string& what,
                    const std::string& result) {
  if (!enabled_) return;
  // "\r" returns to the line start, "\x1b[K" clears what a longer line left behind.
  out_ << fmt::format("\r\x1b[K[{}/{}] {}: {}", index, total, what, result) << std::flush;
  open_line_ = true;
}

void Progress::finish() {
  if (enabled_ && open_line_) out_ << "\n" << std::flush;
  open_line_ = false;
}

}  // namespace orrery::profiler
