// Keeps README.md and docs/ true to the code:
// - every scenario key the reader accepts is documented in docs/scenario-format.md,
//   and every key documented there is accepted;
// - every enum key's row lists exactly the names of the enum's table (scenario/names.h),
//   in its order;
// - every ```yaml block in the docs that is a whole scenario passes `orrery check`
//   (or fails with exit code 2 when its first line is "# expect: error");
// - every block introduced by "<!-- output: orrery ARGS -->" is exactly what that
//   command prints.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "scenario/load.h"
#include "scenario/names.h"
#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;
using testing::source_dir;

const char* kDocs[] = {"README.md", "docs/scenario-format.md", "docs/model.md",
                       "docs/simulator.md", "docs/ARCHITECTURE.md", "docs/import.md"};

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

// The backticked names in the second column (the values) of `key`'s row in `doc`.
std::vector<std::string> documented_values(const std::string& doc, const std::string& key) {
  const std::string start = "\n| `" + key + "` |";
  const size_t at = doc.find(start);
  if (at == std::string::npos) return {};
  const size_t from = at + start.size();
  const std::string cell = doc.substr(from, doc.find('|', from) - from);
  std::vector<std::string> out;
  const std::regex name("`([^`]+)`");
  for (auto it = std::sregex_iterator(cell.begin(), cell.end(), name); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1].str());
  }
  return out;
}

template <class E>
void expect_documented(const std::string& doc, const std::string& key) {
  std::vector<std::string> names;
  for (const Named<E>& n : names_of<E>()) names.push_back(n.name);
  EXPECT_EQ(documented_values(doc, key), names) << key;
}

TEST(Docs, EveryEnumKeyListsItsTableOfNames) {
  const std::string doc = read_file(source_dir() + "/docs/scenario-format.md");
  ASSERT_FALSE(doc.empty());
  expect_documented<InterNodeTopology>(doc, "cluster.inter_node.topology");
  expect_documented<ModelFamily>(doc, "model.family");
  expect_documented<Activation>(doc, "model.activation");
  expect_documented<Norm>(doc, "model.norm");
  expect_documented<PositionEmbedding>(doc, "model.position_embedding");
  expect_documented<CnnOp>(doc, "model.layer_table[].op");
  expect_documented<PipelineSchedule>(doc, "parallelism.schedule");
  expect_documented<PipelineEngine>(doc, "parallelism.pipeline_engine");
  expect_documented<ParallelismSpec::CpComm>(doc, "parallelism.cp_comm");
  expect_documented<ParallelismSpec::Alltoall>(doc, "parallelism.ep_alltoall");
  expect_documented<ParallelismSpec::Sharding>(doc, "parallelism.sharding");
  expect_documented<Precision>(doc, "training.precision");
  expect_documented<Recompute>(doc, "training.recompute");
  expect_documented<Optimizer>(doc, "training.optimizer");
  expect_documented<CompressionSpec::Scheme>(doc, "training.gradient_compression.scheme");
  expect_documented<LossScalingSpec::Kind>(doc, "training.loss_scaling.kind");
  expect_documented<Fp8Spec::Format>(doc, "training.fp8.format");
  expect_documented<Fp8Spec::Scaling>(doc, "training.fp8.scaling");
  expect_documented<Fp4Spec::Format>(doc, "training.fp4.format");
  expect_documented<FaultSpec::Kind>(doc, "faults[].kind");
  expect_documented<FaultSpec::Link>(doc, "faults[].link");
  expect_documented<Metric>(doc, "measured.metric");
  expect_documented<Recompute>(doc, "sweep.recompute");
  expect_documented<Precision>(doc, "sweep.precision");
  expect_documented<Objective>(doc, "sweep.objectives");
}

// The bodies of the fenced blocks that open with `opener` (its line included), in order.
// Found by search, not std::regex: libstdc++'s regex recurses once per character matched,
// which overflows the stack on a long block under AddressSanitizer.
std::vector<std::string> fenced_bodies(const std::string& doc, const std::string& opener) {
  std::vector<std::string> out;
  for (size_t at = doc.find(opener); at != std::string::npos; at = doc.find(opener, at + 1)) {
    const size_t body = at + opener.size();
    const size_t end = doc.find("```", body);
    if (end == std::string::npos) break;
    out.push_back(doc.substr(body, end - body));
    at = end;
  }
  return out;
}

TEST(Docs, YamlExamplesRun) {
  int examples = 0;
  for (const char* doc_name : kDocs) {
    const std::string doc = read_file(source_dir() + "/" + doc_name);
    ASSERT_FALSE(doc.empty()) << doc_name;
    for (const std::string& yaml : fenced_bodies(doc, "```yaml\n")) {
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
    const std::string marker = "<!-- output: orrery ";
    for (size_t at = doc.find(marker); at != std::string::npos; at = doc.find(marker, at + 1)) {
      // <!-- output: orrery ARGS -->, then a fenced block whose body is what ARGS prints.
      const size_t args = at + marker.size();
      const size_t close = doc.find(" -->\n```", args);
      ASSERT_NE(close, std::string::npos) << doc_name << ": an output marker without its block";
      const std::string command = doc.substr(args, close - args);
      ASSERT_EQ(command.find('>'), std::string::npos) << doc_name << ": " << command;
      const size_t body = doc.find('\n', close + 5) + 1;
      const size_t end = doc.find("```", body);
      ASSERT_NE(end, std::string::npos) << doc_name << ": an unclosed block after " << command;
      const auto r = run_orrery(command);
      EXPECT_EQ(r.out, doc.substr(body, end - body)) << doc_name << ": orrery " << command;
      ++checked;
    }
  }
  EXPECT_GE(checked, 1);
}

}  // namespace
}  // namespace orrery
