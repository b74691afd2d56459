// Bad input is reported as an InputError: it names the file, the line (when known),
// the key and the value, and says what was wrong. Library code throws it; only `main`
// turns it into a message and exit code 2. Broken invariants inside the program are
// not InputErrors: they use ORRERY_CHECK, which stays on in release builds.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace orrery {

struct InputLocation {
  std::string file;          // path as the user gave it, or "preset <name>"
  std::optional<int> line;   // 1-based line number in that file, when known
};

class InputError : public std::runtime_error {
 public:
  InputError(InputLocation where, std::string key, std::string value, std::string why);

  const InputLocation& where() const { return where_; }
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  const std::string& why() const { return why_; }

 private:
  InputLocation where_;
  std::string key_;
  std::string value_;
  std::string why_;
};

// Throws InputError naming `file` and the line unless `text` is well-formed UTF-8 (the
// input readers' text: orrery echoes it into messages and JSON, which must stay UTF-8).
void require_utf8(const std::string& text, const std::string& file);

// Whether `text` is well-formed UTF-8 (RFC 3629), and `text` with every byte that is not
// part of a UTF-8 character replaced by '?' (to echo such text in a message).
bool is_utf8(const std::string& text);
std::string utf8_or_marks(const std::string& text);

// "error: FILE:LINE: key 'KEY' = 'VALUE': WHY" (parts that are empty are left out).
std::string format_input_error(const InputLocation& where, const std::string& key,
                               const std::string& value, const std::string& why);

// The candidate closest to `word` by edit distance, if it is close enough to be a
// plausible typo (distance <= max(2, |word|/3)); empty otherwise.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

[[noreturn]] void invariant_failed(const char* expr, const char* file, int line,
                                   const std::string& msg);

}  // namespace orrery

// An internal invariant; violated means a bug in orrery, not bad input. Always on.
#define ORRERY_CHECK(cond, msg)                                              \
  do {                                                                       \
    if (!(cond)) ::orrery::invariant_failed(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
