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

namespace {

// Length of the well-formed UTF-8 sequence at text[i] (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or 0 if there is none.
std::size_t utf8_length(const std::string& text, std::size_t i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b = at(i);
  if (b < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

}  // namespace

bool is_utf8(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_or_marks(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    out += n == 0 ? std::string("?") : text.substr(i, n);
    i += n == 0 ? 1 : n;
  }
  return out;
}

void require_utf8(const std::string& text, const std::string& file) {
  int line = 1;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    if (n == 0) {
      throw InputError(InputLocation{file, line}, "", "",
                       fmt::format("not UTF-8: byte 0x{:02X} does not begin or continue a "
                                   "UTF-8 character",
                                   static_cast<unsigned char>(text[i])));
    }
    if (text[i] == '\n') ++line;
    i += n;
  }
}

}  // namespace orrery
