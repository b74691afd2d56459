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

#include "scenario/load.h"
#include "scenario/names.h"
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
