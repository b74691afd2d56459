#include "profiler/driver_version.h"

#include <regex>

namespace orrery::profiler {

std::string parse_nvidia_driver_version(const std::string& proc_text) {
  const std::string first = proc_text.substr(0, proc_text.find('\n'));
  if (first.find("NVRM version:") == std::string::npos) return "";
  // The first whitespace-separated token shaped like a version: digits, then one or
  // two dot-separated groups of digits.
  static const std::regex version(R"((?:^|\s)(\d+\.\d+(?:\.\d+)?)(?=\s|$))");
  std::smatch m;
  return std::regex_search(first, m, version) ? m[1].str() : "";
}

}  // namespace orrery::profiler
