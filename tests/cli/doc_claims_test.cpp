// Keeps the numbers that prose quotes from orrery's own output true: the predictions that
// docs/*.md and the shipped scenarios' headers state in the present tense. Each claim in
// tests/cli/doc_claims.json names a file, a quote with one {} where the number goes, the
// orrery command (JSON output) that prints it, the value's key in that JSON and how the
// quote rounds and scales it. The test runs the command, formats the value and looks for
// the quote in the file (whitespace, line breaks and YAML's leading '#' folded to one
// space). When the model moves a number, this fails: re-read the sentence around the
// quote (a figure derived from it, or a comparison, may have changed too), then update the
// prose and this file together.
#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;
using testing::source_dir;

// The text with every run of whitespace made one space; in a .yaml file each line's
// leading '#' (a comment's) dropped first, so a header's sentence reads as in prose.
std::string fold(const std::string& text, bool yaml) {
  std::string out;
  bool space = false;
  bool line_start = true;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (yaml && line_start && c == '#') {
      line_start = false;
      space = true;
      continue;
    }
    // A comment's '#' may follow the line's indentation.
    line_start = c == '\n' || (line_start && (c == ' ' || c == '\t'));
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// The value at a '/'-separated path of object keys.
const nlohmann::json* at_path(const nlohmann::json& j, const std::string& path) {
  const nlohmann::json* node = &j;
  size_t from = 0;
  while (from <= path.size()) {
    const size_t slash = path.find('/', from);
    const std::string key = path.substr(from, slash == std::string::npos ? std::string::npos
                                                                         : slash - from);
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
    if (slash == std::string::npos) break;
    from = slash + 1;
  }
  return node;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

TEST(DocClaims, Fold) {
  EXPECT_EQ(fold("a  b\n c\n", false), "a b c");
  EXPECT_EQ(fold("# one\n#   two\nkey: 1 # three\n", true), "one two key: 1 # three");
  EXPECT_EQ(fold("# one\n#two", false), "# one #two");
  EXPECT_EQ(fold("  # a\n  # b", true), "a b");
}

// Where `quote` (with `number` in place of its {}) stands in `text` with the number not
// run into other digits: a quote that starts or ends with {} would otherwise match 1.93
// inside 11.93.
bool quoted(const std::string& text, const std::string& quote, const std::string& number) {
  const size_t hole = quote.find("{}");
  std::string expected = quote;
  expected.replace(hole, 2, number);
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; };
  for (size_t at = text.find(expected); at != std::string::npos;
       at = text.find(expected, at + 1)) {
    const size_t begin = at + hole;
    const size_t end = begin + number.size();
    const bool before = begin > 0 && digit(text[begin - 1]);
    // A full stop after the number ends a sentence; a digit after it would not.
    const bool after = end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]));
    if (!before && !after) return true;
  }
  return false;
}

TEST(DocClaims, QuotedKeepsTheNumberWhole) {
  EXPECT_TRUE(quoted("a 1.93 M", "{} M", "1.93"));
  EXPECT_FALSE(quoted("a 11.93 M", "{} M", "1.93"));
  EXPECT_FALSE(quoted("MFU 39.05 %", "MFU {}", "39.0"));
  EXPECT_TRUE(quoted("MFU 39.0. Next", "MFU {}", "39.0"));
  EXPECT_TRUE(quoted("x 11.93 M, y 1.93 M", "{} M", "1.93"));
}

TEST(DocClaims, EveryQuotedNumberIsWhatOrreryPrints) {
  const std::string path = source_dir() + "/tests/cli/doc_claims.json";
  const nlohmann::json claims = nlohmann::json::parse(read_file(path));
  ASSERT_TRUE(claims.is_array());
  ASSERT_FALSE(claims.empty());
  std::map<std::string, nlohmann::json> outputs;  // by command line
  std::map<std::string, std::string> texts;       // folded, by file
  for (const nlohmann::json& c : claims) {
    const std::string file = c.at("file");
    const std::string quote = c.at("quote");
    const std::string args = c.at("run");
    const std::string key = c.at("value");
    SCOPED_TRACE(file + ": " + quote);
    ASSERT_NE(quote.find("{}"), std::string::npos) << "a quote needs one {}";
    ASSERT_EQ(quote.find("{}"), quote.rfind("{}")) << "a quote has one {}";
    if (!outputs.count(args)) {
      const testing::RunResult r = run_orrery(args);
      ASSERT_EQ(r.code, 0) << "orrery " << args << "\n" << r.err;
      outputs[args] = nlohmann::json::parse(r.out);
    }
    const nlohmann::json* v = at_path(outputs[args], key);
    ASSERT_TRUE(v != nullptr && v->is_number()) << "orrery " << args << " prints no number at "
                                                << key;
    const double value = v->get<double>() * c.value("times", 1.0) + c.value("plus", 0.0);
    const std::string number = fixed(value, c.at("decimals").get<int>());
    if (!texts.count(file)) {
      const std::string text = read_file(source_dir() + "/" + file);
      ASSERT_FALSE(text.empty()) << file << " is missing";
      const bool yaml = file.size() > 5 && file.substr(file.size() - 5) == ".yaml";
      texts[file] = fold(text, yaml);
    }
    const std::string folded = fold(quote, false);
    std::string expected = folded;
    expected.replace(expected.find("{}"), 2, number);
    EXPECT_TRUE(quoted(texts[file], folded, number))
        << file << " should say \"" << expected << "\" (orrery " << args << ", " << key
        << "): update the prose and tests/cli/doc_claims.json together";
  }
}

}  // namespace
}  // namespace orrery
