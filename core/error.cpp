#include "core/error.h"

#include <algorithm>
#include <fmt/format.h>

namespace orrery {

std::string format_input_error(const InputLocation& where, const std::string& key,
                               const std::string& value, const std::string& why) {
  std::string out = "error: ";
  if (!where.file.empty()) {
    out += where.file;
    if (where.line) out += fmt::format(":{}", *where.line);
    out += ": ";
  }
  if (!key.empty()) {
    out += fmt::format("key '{}'", key);
    if (!value.empty()) out += fmt::format(" = '{}'", value);
    out += ": ";
  }
  out += why;
  return out;
}

InputError::InputError(InputLocation where, std::string key, std::string value,
                       std::string why)
    : std::runtime_error(format_input_error(where, key, value, why)),
      where_(std::move(where)),
      key_(std::move(key)),
      value_(std::move(value)),
      why_(std::move(why)) {}

namespace {
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}
}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

void invariant_failed(const char* expr, const char* file, int line, const std::string& msg) {
  throw std::logic_error(
      fmt::format("internal error (a bug in orrery): {}:{}: check '{}' failed: {}", file,
                  line, expr, msg));
}

}  // namespace orrery
