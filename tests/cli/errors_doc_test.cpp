// docs/errors.md, the catalogue of bad input, is run row by row: each row's
// "<!-- error: orrery ARGS -->" command must exit with code 2, print nothing on stdout
// and print exactly the message in the block after it on stderr. One test per row, named
// after its heading, so the doc cannot drift from the binary.
#include <gtest/gtest.h>

#include <cctype>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;
using testing::source_dir;

struct Row {
  std::string heading, args, message;
  int index = 0;  // the command's place in its section (0: the first)
};

// gtest prints a failing row's parameter: its command, not its bytes.
void PrintTo(const Row& r, std::ostream* os) { *os << "orrery " << r.args; }

// The rows of docs/errors.md: a "### heading", then (before the next heading) the
// command comment, then the message block. Parsed by hand: std::regex recurses per
// character and the doc is long.
std::vector<Row> rows() {
  const std::string doc = read_file(source_dir() + "/docs/errors.md");
  const std::string open = "<!-- error: orrery ", close = " -->\n```text\n", fence = "```";
  std::vector<Row> out;
  for (std::size_t h = doc.find("\n### "); h != std::string::npos;) {
    const std::size_t title = h + 5, eol = doc.find('\n', title);
    const std::size_t next = doc.find("\n### ", eol);
    // Every command of the section, each with the message block after it.
    int index = 0;
    for (std::size_t cmd = doc.find(open, eol);
         eol != std::string::npos && cmd != std::string::npos && cmd < next;
         cmd = doc.find(open, cmd + open.size())) {
      const std::size_t args = cmd + open.size(), args_end = doc.find(close, args);
      const std::size_t msg = args_end + close.size();
      const std::size_t msg_end = args_end == std::string::npos ? args_end : doc.find(fence, msg);
      if (msg_end == std::string::npos || msg_end >= next) break;
      out.push_back({doc.substr(title, eol - title), doc.substr(args, args_end - args),
                     doc.substr(msg, msg_end - msg), index++});
    }
    h = next;
  }
  return out;
}

// "Duplicated key" -> "DuplicatedKey", a test name.
std::string test_name(const std::string& heading) {
  std::string name;
  bool upper = true;
  for (char c : heading) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      name += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
      upper = false;
    } else {
      upper = true;
    }
  }
  return name;
}

class ErrorsDoc : public ::testing::TestWithParam<Row> {};

TEST_P(ErrorsDoc, ExitsTwoWithTheDocumentedMessage) {
  const Row& r = GetParam();
  const auto res = run_orrery(r.args);
  EXPECT_EQ(res.code, 2) << "orrery " << r.args;
  EXPECT_EQ(res.err, r.message) << "orrery " << r.args;
  EXPECT_EQ(res.out, "") << "orrery " << r.args;
}

INSTANTIATE_TEST_SUITE_P(Row, ErrorsDoc, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& row) {
                           const std::string name = test_name(row.param.heading);
                           return row.param.index == 0
                                      ? name
                                      : name + "_" + std::to_string(row.param.index + 1);
                         });

// Every heading of the catalogue has a row the test above runs (a heading whose command
// the pattern missed would otherwise go untested), every command comment is a row, and
// there are rows at all.
TEST(ErrorsDocCatalogue, EveryHeadingIsARunRow) {
  const std::string doc = read_file(source_dir() + "/docs/errors.md");
  ASSERT_FALSE(doc.empty());
  std::size_t headings = 0;
  for (std::size_t at = doc.find("\n### "); at != std::string::npos;
       at = doc.find("\n### ", at + 1))
    ++headings;
  std::set<std::string> covered;
  for (const Row& r : rows()) covered.insert(r.heading);
  EXPECT_EQ(covered.size(), headings);
  std::size_t commands = 0;
  for (std::size_t at = doc.find("<!-- error: orrery "); at != std::string::npos;
       at = doc.find("<!-- error: orrery ", at + 1))
    ++commands;
  EXPECT_EQ(rows().size(), commands);
  EXPECT_GE(rows().size(), 30u);
}

}  // namespace
}  // namespace orrery
