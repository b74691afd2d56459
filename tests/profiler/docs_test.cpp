// The README says the profiler has not yet run on a GPU exactly as long as no
// measurement file from profiler/gpu_check.sh is in calibrate/data/ (or a folder under it,
// one per measuring session: calibrate/data/h200-20261204/).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ProfilerDocs, NotYetRunOnAGpuUntilThereAreMeasurements) {
  const std::filesystem::path root = ORRERY_SOURCE_DIR;
  bool measured = false;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(root / "calibrate" / "data", ec))
    if (e.path().filename().string().rfind("measurements-", 0) == 0) measured = true;
  const std::string sentence = "The profiler has not yet run on a GPU";
  for (const char* doc : {"README.md", "profiler/README.md"}) {
    const std::string text = read(root / doc);
    ASSERT_FALSE(text.empty()) << doc;
    const bool says = text.find(sentence) != std::string::npos ||
                      text.find("the profiler has not yet run on a GPU") != std::string::npos;
    EXPECT_EQ(says, !measured) << doc << (measured ? " still says it has not run on a GPU, but "
                                                     "calibrate/data/ has measurements"
                                                   : " must say the profiler has not yet run "
                                                     "on a GPU");
  }
}

}  // namespace
