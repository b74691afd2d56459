#include "core/env.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/error.h"

namespace orrery {
namespace {

// A fresh directory under the system's temporary directory, removed with its content.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "orrery-env-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

TEST(MemoryEnv, ReadsBackWhatWasWritten) {
  MemoryEnv env;
  EXPECT_EQ(env.write_file_atomically("a.yaml", "abc\n"), std::nullopt);
  EXPECT_EQ(env.read_file("a.yaml"), "abc\n");
  EXPECT_TRUE(env.is_regular_file("a.yaml"));
  EXPECT_FALSE(env.is_regular_file("b.yaml"));
  EXPECT_EQ(env.read_file("b.yaml"), std::nullopt);
}

TEST(MemoryEnv, UnwritablePathKeepsItsOldContentAndSaysWhy) {
  MemoryEnv env;
  ASSERT_EQ(env.write_file_atomically("a.yaml", "old"), std::nullopt);
  env.make_unwritable("a.yaml");
  const auto why = env.write_file_atomically("a.yaml", "new");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "cannot open 'a.yaml.tmp' for writing: Permission denied");
  EXPECT_EQ(env.files().size(), 1u);  // no temporary file
  EXPECT_EQ(env.read_file("a.yaml"), "old");
}

TEST(ReadFileOrThrow, NamesTheFileAndWhatItIs) {
  MemoryEnv env;
  try {
    read_file_or_throw(env, "p.yaml", "the calibration profile");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where().file, "p.yaml");
    EXPECT_EQ(e.where().line, std::nullopt);
    EXPECT_EQ(format_input_error(e.where(), e.key(), e.value(), e.why()),
              "error: p.yaml: cannot open the calibration profile");
  }
}

TEST(ReadFileOrThrow, RealMissingFileGivesTheSameMessage) {
  TempDir dir;
  const std::string path = dir.file("missing.yaml");
  try {
    read_file_or_throw(default_env(), path, "the file");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where().file, path);
    EXPECT_EQ(e.why(), "cannot open the file");
  }
}

TEST(WriteFileOrThrow, FailureIsAnInputErrorNamingThePath) {
  MemoryEnv env;
  env.make_unwritable("out.csv");
  try {
    write_file_or_throw(env, "out.csv", "x");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where().file, "out.csv");
    EXPECT_EQ(e.why(), "cannot write the file");
  }
}

TEST(DefaultEnv, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("out.yaml");
  Env& env = default_env();
  ASSERT_EQ(env.write_file_atomically(path, "first\n"), std::nullopt);
  ASSERT_EQ(env.write_file_atomically(path, "second\n"), std::nullopt);
  EXPECT_EQ(env.read_file(path), "second\n");
  EXPECT_TRUE(env.is_regular_file(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(DefaultEnv, FailedOpenLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("no-such-dir/out.yaml");
  const auto why = default_env().write_file_atomically(path, "abc");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(*why, "cannot open '" + path + ".tmp' for writing: No such file or directory");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

// Renaming a file over a non-empty directory fails after the temporary file was written
// in full: the temporary must be removed and the directory left as it was.
TEST(DefaultEnv, FailedRenameRemovesTheTemporary) {
  TempDir dir;
  const std::string path = dir.file("taken");
  std::filesystem::create_directories(path + "/inside");
  const auto why = default_env().write_file_atomically(path, "abc");
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->rfind("cannot rename '" + path + ".tmp' to '" + path + "': ", 0), 0u) << *why;
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_TRUE(std::filesystem::is_directory(path + "/inside"));
}

TEST(DefaultEnv, DirectoryIsNotARegularFile) {
  TempDir dir;
  EXPECT_FALSE(default_env().is_regular_file(dir.file("")));
  EXPECT_EQ(default_env().read_file(dir.file("missing")), std::nullopt);
}

}  // namespace
}  // namespace orrery
