#include "core/env.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace orrery {

namespace {

class PosixEnv : public Env {
 public:
  std::optional<std::string> read_file(const std::string& path) override {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::optional<std::string> write_file_atomically(const std::string& path,
                                                   std::string_view text) override {
    const std::string tmp = path + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return fmt::format("cannot open '{}' for writing: {}", tmp, std::strerror(errno));
    const bool wrote = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    const bool closed = std::fclose(f) == 0;
    if (!wrote || !closed) {
      std::string why = fmt::format("cannot write '{}': {}", tmp, std::strerror(errno));
      std::remove(tmp.c_str());
      return why;
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::string why =
          fmt::format("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(errno));
      std::remove(tmp.c_str());
      return why;
    }
    return std::nullopt;
  }

  bool is_regular_file(const std::string& path) override {
    return std::filesystem::is_regular_file(path);
  }
};

}  // namespace

Env& default_env() {
  static PosixEnv* const env = new PosixEnv;  // never destroyed: usable during exit
  return *env;
}

std::optional<std::string> MemoryEnv::read_file(const std::string& path) {
  const auto it = files_.find(path);
  if (it == files_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> MemoryEnv::write_file_atomically(const std::string& path,
                                                            std::string_view text) {
  const std::string tmp = path + ".tmp";
  if (unwritable_.count(path)) {
    return fmt::format("cannot open '{}' for writing: {}", tmp, std::strerror(EACCES));
  }
  files_[path] = std::string(text);
  return std::nullopt;
}

bool MemoryEnv::is_regular_file(const std::string& path) { return files_.count(path) > 0; }

std::string read_file_or_throw(Env& env, const std::string& path, std::string_view what) {
  std::optional<std::string> text = env.read_file(path);
  if (!text) throw InputError({path, std::nullopt}, "", "", fmt::format("cannot open {}", what));
  return std::move(*text);
}

void write_file_or_throw(Env& env, const std::string& path, std::string_view text) {
  if (env.write_file_atomically(path, text)) {
    throw InputError({path, std::nullopt}, "", "", "cannot write the file");
  }
}

}  // namespace orrery
