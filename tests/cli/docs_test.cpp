// Keeps README.md and docs/ true to the code:
// - every scenario key the reader accepts is documented in docs/scenario-format.md,
//   and every key documented there is accepted;
// - every ```yaml block in the docs that is a whole scenario passes `orrery check`
//   (or fails with exit code 2 when its first line is "# expect: error");
// - every block introduced by "<!-- output: orrery ARGS -->" is exactly what that
//   command prints.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>

#include "scenario/load.h"
#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;
using testing::source_dir;

const char* kDocs[] = {"README.md", "docs/scenario-format.md", "docs/model.md",
                       "docs/simulator.md", "docs/ARCHITECTURE.md"};

TEST(Docs, EveryScenarioKeyIsDocumentedAndNoOther) {
  const std::string doc = read_file(source_dir() + "/docs/scenario-format.md");
  ASSERT_FALSE(doc.empty());
  const std::vector<std::string> keys = scenario_keys();
  for (const auto& k : keys) {
    EXPECT_NE(doc.find("| `" + k + "`"), std::string::npos) << k << " is not documented";
  }
  const std::set<std::string> known(keys.begin(), keys.end());
  const std::regex row(R"(\n\| `([a-z_.\[\]0-9]+)`)");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), row); it != std::sregex_iterator();
       ++it) {
    EXPECT_TRUE(known.count((*it)[1].str())) << (*it)[1].str() << " is documented but not read";
  }
}

TEST(Docs, YamlExamplesRun) {
  int examples = 0;
  for (const char* doc_name : kDocs) {
    const std::string doc = read_file(source_dir() + "/" + doc_name);
    ASSERT_FALSE(doc.empty()) << doc_name;
    const std::regex block("```yaml\n([\\s\\S]*?)```");
    for (auto it = std::sregex_iterator(doc.begin(), doc.end(), block);
         it != std::sregex_iterator(); ++it) {
      const std::string yaml = (*it)[1].str();
      if (yaml.find("parallelism:") == std::string::npos) continue;  // a fragment
      const bool expect_error = yaml.rfind("# expect: error", 0) == 0;
      const std::string path =
          ::testing::TempDir() + "doc_example_" + std::to_string(++examples) + ".yaml";
      std::ofstream(path) << yaml;
      const auto r = run_orrery("check '" + path + "'");
      EXPECT_EQ(r.code, expect_error ? 2 : 0) << doc_name << " example:\n" << yaml << r.err;
    }
  }
  EXPECT_GE(examples, 3);
}

TEST(Docs, PastedOutputIsWhatTheCommandPrints) {
  int checked = 0;
  for (const char* doc_name : kDocs) {
    const std::string doc = read_file(source_dir() + "/" + doc_name);
    const std::regex block("<!-- output: orrery ([^>]*) -->\n```[a-z]*\n([\\s\\S]*?)```");
    for (auto it = std::sregex_iterator(doc.begin(), doc.end(), block);
         it != std::sregex_iterator(); ++it) {
      const auto r = run_orrery((*it)[1].str());
      EXPECT_EQ(r.out, (*it)[2].str()) << doc_name << ": orrery " << (*it)[1].str();
      ++checked;
    }
  }
  EXPECT_GE(checked, 1);
}

}  // namespace
}  // namespace orrery
