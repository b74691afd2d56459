// Runs a command line and captures its exit code, stdout and stderr.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace orrery::testing {

struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string source_dir() { return ORRERY_SOURCE_DIR; }

// Runs `args` (already shell-quoted) with the orrery binary, in the source directory.
inline RunResult run_orrery(const std::string& args) {
  static int counter = 0;
  // ctest runs test processes side by side, each with its own counter: the pid keeps
  // their output files apart.
  const std::string base = ::testing::TempDir() + "orrery_run_" + std::to_string(getpid()) +
                           "_" + std::to_string(++counter);
  const std::string cmd = "cd '" + source_dir() + "' && '" + ORRERY_BINARY + "' " + args +
                          " >'" + base + ".out' 2>'" + base + ".err' </dev/null";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  return r;
}

}  // namespace orrery::testing
