// orrery import megatron: the Megatron-LM line `orrery sweep` prints for a shipped
// validation case, with the model's shape arguments, imports back into that case.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/cli/run.h"

namespace orrery {
namespace {

using testing::read_file;
using testing::run_orrery;
using testing::source_dir;

// `text` without its first line (the check report's "scenario NAME").
std::string after_first_line(const std::string& text) { return text.substr(text.find('\n') + 1); }

TEST(ImportMegatron, SweepsLineOfAValidationCaseImportsBackToIt) {
  const std::string case_file = "scenarios/validation/megatron-readme-h100-7.1b.yaml";
  // The case as a one-candidate sweep (its measured: block dropped), for the line the
  // sweep prints.
  std::string yaml;
  {
    std::ifstream in(source_dir() + "/" + case_file);
    for (std::string l; std::getline(in, l);)
      if (l.rfind("measured:", 0) != 0) yaml += l + "\n";
  }
  yaml += "sweep: {tp: [2]}\n";
  const std::string sweep_file = ::testing::TempDir() + "import_sweep.yaml";
  std::ofstream(sweep_file) << yaml;
  const auto sweep = run_orrery("sweep '" + sweep_file + "' -j 1 --no-progress");
  ASSERT_EQ(sweep.code, 0) << sweep.err;
  const std::string tag = "\nMegatron-LM  ";
  const auto at = sweep.out.find(tag);
  ASSERT_NE(at, std::string::npos) << sweep.out;
  const std::string line =
      sweep.out.substr(at + tag.size(), sweep.out.find('\n', at + 1) - at - tag.size());
  // What the sweep leaves to the launch script: the model's shape (the case's model
  // line: a GPT-style model, whose other architecture keys are Megatron-LM's defaults),
  // an unmapped learning rate, and the README's overlaps.
  const std::string shape =
      "--num-layers 30 --hidden-size 4096 --num-attention-heads 32 --seq-length 4096 "
      "--vocab-size 131072 --lr 3e-4 --overlap-grad-reduce --overlap-param-gather "
      "--tp-comm-overlap --overlap-p2p-communication ";
  const auto imported =
      run_orrery("import megatron --cluster dgx-h100 --nodes 12 -- " + shape + line);
  ASSERT_EQ(imported.code, 0) << imported.err;
  EXPECT_NE(imported.out.find("#   --lr 3e-4\n"), std::string::npos) << imported.out;
  EXPECT_NE(imported.out.find("  tp: 2  # --tensor-model-parallel-size\n"), std::string::npos);
  const std::string imported_file = ::testing::TempDir() + "imported.yaml";
  std::ofstream(imported_file) << imported.out;

  for (const char* command : {"check", "run"}) {
    const auto want = run_orrery(std::string(command) + " " + case_file);
    const auto got = run_orrery(std::string(command) + " '" + imported_file + "'");
    ASSERT_EQ(want.code, 0) << want.err;
    ASSERT_EQ(got.code, 0) << got.err;
    EXPECT_EQ(after_first_line(got.out), after_first_line(want.out)) << command;
  }
}

TEST(ImportMegatron, SwigluFfnDefaultAndPaddedVocab) {
  // Megatron-LM's --ffn-hidden-size default with --swiglu: int(4*4096*2/3 / 64) * 64 =
  // int(10922.67 / 64) * 64 = 170 * 64 = 10880; the vocabulary 50257 padded to a
  // multiple of 128 * tp 4 = 512: 99 * 512 = 50688.
  const auto r = run_orrery(
      "import megatron --cluster dgx-h100 -- --num-layers 2 --hidden-size 4096 "
      "--num-attention-heads 32 --seq-length 2048 --vocab-size 50257 --swiglu "
      "--tensor-model-parallel-size 4 --global-batch-size 8 --normalization RMSNorm "
      "--position-embedding-type rope --group-query-attention --num-query-groups 8 "
      "--recompute-granularity full --recompute-method uniform --recompute-num-layers 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("  ffn: 10880  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  vocab: 50688  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  kv_heads: 8  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  recompute: full  #"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("# Every argument was mapped.\n"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace orrery
