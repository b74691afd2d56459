// Presets: the set the issue asks for exists, each loads and validates, and each has
// its public source written beside it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "scenario/load.h"

namespace orrery {
namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(Presets, TheRequiredSetExists) {
  for (const char* g : {"v100-sxm2-32gb", "a100-sxm4-40gb", "a100-sxm4-80gb", "h100-sxm5-80gb",
                        "h200-sxm-141gb", "b200"}) {
    EXPECT_TRUE(contains(gpu_preset_names(), g)) << g;
  }
  for (const char* s : {"dgx-a100", "dgx-h100", "hgx-h100-roce"}) {
    EXPECT_TRUE(contains(system_preset_names(), s)) << s;
  }
  for (const char* m :
       {"gpt3-175b", "narayanan-1.7b", "narayanan-3.6b", "narayanan-7.5b", "narayanan-18.4b",
        "narayanan-39.1b", "narayanan-76.1b", "narayanan-145.6b", "narayanan-310.1b",
        "narayanan-529.6b", "narayanan-1008b", "megatron-22b", "mt-nlg-530b", "llama2-7b",
        "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b", "llama3-405b", "bert-large",
        "resnet50", "mixtral-8x7b", "deepseek-v3"}) {
    EXPECT_TRUE(contains(model_preset_names(), m)) << m;
  }
}

TEST(Presets, EveryModelAndSystemPresetValidates) {
  for (const auto& system : system_preset_names()) {
    for (const auto& model : model_preset_names()) {
      const std::string yaml = "cluster: " + system + "\nmodel: " + model +
                               "\nparallelism: {global_batch: 8}\ntraining: {precision: fp16}\n";
      EXPECT_NO_THROW(load_scenario_text(yaml, system + "+" + model)) << system << " " << model;
    }
  }
}

// Each top-level entry of a preset file carries at least one comment naming a source.
void expect_sourced(const std::string& file, const std::vector<std::string>& names) {
  std::ifstream in(std::string(ORRERY_SOURCE_DIR) + "/scenario/presets/" + file);
  ASSERT_TRUE(in) << file;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  for (const auto& name : names) {
    const size_t start = text.find("\n" + name + ":\n");
    ASSERT_NE(start, std::string::npos) << name;
    size_t end = start + 1;
    // The entry runs to the next line that starts at column 0 with a key.
    while (true) {
      end = text.find('\n', end + 1);
      if (end == std::string::npos || (end + 1 < text.size() && text[end + 1] != ' ' &&
                                       text[end + 1] != '#' && text[end + 1] != '\n')) {
        break;
      }
    }
    const std::string block = text.substr(start, end == std::string::npos ? end : end - start);
    EXPECT_NE(block.find("  #"), std::string::npos) << name << " in " << file << " has no source";
  }
}

TEST(Presets, EachCitesItsSource) {
  expect_sourced("gpus.yaml", gpu_preset_names());
  expect_sourced("systems.yaml", system_preset_names());
  expect_sourced("models.yaml", model_preset_names());
}

}  // namespace
}  // namespace orrery
