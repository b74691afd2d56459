#include "scenario/pipeline_layout.h"

#include <fmt/format.h>

#include <cctype>

namespace orrery {

namespace {

bool layer_char(char c) { return c == 'E' || c == 't' || c == 'm' || c == 'L'; }

// Recursive descent over the layout text; positions are offsets in the original text.
class LayoutParser {
 public:
  explicit LayoutParser(const std::string& text) : s_(text) {}

  LayoutParse run() {
    LayoutParse out;
    try {
      std::string flat;
      sequence(flat, false);
      out.stages.emplace_back();
      for (char c : flat) {
        if (c == '|') {
          out.stages.emplace_back();
        } else {
          out.stages.back() += c;
        }
      }
    } catch (const Failure& f) {
      out.stages.clear();
      out.error = f.why;
      out.position = f.at;
    }
    return out;
  }

 private:
  struct Failure {
    std::string why;
    std::size_t at;
  };

  void skip_commas() {
    while (i_ < s_.size() && s_[i_] == ',') ++i_;
  }

  // "*N" after an item, if present; 1 when absent.
  long repeat() {
    skip_commas();
    if (i_ >= s_.size() || s_[i_] != '*') return 1;
    const std::size_t star = i_++;
    skip_commas();
    const std::size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ == start) throw Failure{"'*' must be followed by a repeat count", star};
    if (i_ - start > 6) throw Failure{"repeat count too large", start};
    const long n = std::stol(s_.substr(start, i_ - start));
    skip_commas();
    if (i_ < s_.size() && s_[i_] == '*')
      throw Failure{"a repeat cannot itself be repeated; use brackets", i_};
    return n;
  }

  void sequence(std::string& out, bool in_bracket) {
    while (true) {
      skip_commas();
      if (i_ >= s_.size()) {
        if (in_bracket) throw Failure{"'(' is never closed", open_};
        return;
      }
      const char c = s_[i_];
      if (c == ')') {
        if (!in_bracket) throw Failure{"')' without a matching '('", i_};
        return;
      }
      if (c == '(') {
        if (in_bracket) throw Failure{"brackets cannot be nested", i_};
        open_ = i_++;
        const std::size_t open = open_;
        std::string inner;
        sequence(inner, true);
        if (inner.empty()) throw Failure{"empty brackets", open};
        const std::size_t close = i_++;
        skip_commas();
        if (i_ >= s_.size() || s_[i_] != '*')
          throw Failure{"a bracketed group must be followed by '*N'", close};
        const long n = repeat();
        if (static_cast<double>(out.size()) + static_cast<double>(inner.size()) * n > kMaxItems)
          throw Failure{"the layout unrolls to more than 1,000,000 items", open};
        for (long k = 0; k < n; ++k) out += inner;
        continue;
      }
      if (c == '|' || layer_char(c)) {
        const std::size_t at = i_++;
        const long n = repeat();
        if (static_cast<double>(out.size()) + n > kMaxItems)
          throw Failure{"the layout unrolls to more than 1,000,000 items", at};
        out.append(static_cast<std::size_t>(n), c);
        continue;
      }
      if (c == '*') throw Failure{"'*' must follow a layer character, '|' or a bracket", i_};
      throw Failure{fmt::format("'{}' is not a layer character (E embedding, t transformer "
                                "layer, m multi-token prediction, L loss, | stage boundary)",
                                c),
                    i_};
    }
  }

  static constexpr double kMaxItems = 1e6;

  const std::string& s_;
  std::size_t i_ = 0;
  std::size_t open_ = 0;
};

}  // namespace

LayoutParse parse_pipeline_layout(const std::string& text) { return LayoutParser(text).run(); }

int standalone_mtp_stage(const std::string& text) {
  if (text.empty()) return -1;
  const LayoutParse parsed = parse_pipeline_layout(text);
  for (std::size_t i = 0; i < parsed.stages.size(); ++i) {
    const std::string& st = parsed.stages[i];
    if (st.find('m') != std::string::npos)
      return st.find('L') == std::string::npos ? static_cast<int>(i) : -1;
  }
  return -1;
}

}  // namespace orrery
