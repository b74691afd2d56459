// File access behind one small interface, in the manner of LevelDB's Env: library code
// reads and writes files only through an Env, so tests can run it on an in-memory
// filesystem (new_memory_env) and the real one stays in one place (default_env).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace orrery {

class Env {
 public:
  virtual ~Env() = default;

  // The whole content of `path`; std::nullopt when it cannot be opened. A path that opens
  // but cannot be read (a directory) reads as what could be read, possibly "".
  virtual std::optional<std::string> read_file(const std::string& path) = 0;

  // Writes `text` to `path` whole: to `path + ".tmp"` first, then renamed over `path`.
  // Returns std::nullopt on success. On failure `path` is unchanged, no temporary file
  // remains, and the result says which step failed and why, naming the files:
  //   "cannot open 'TMP' for writing: REASON", "cannot write 'TMP': REASON",
  //   "cannot rename 'TMP' to 'PATH': REASON"   (REASON: the system's, strerror).
  virtual std::optional<std::string> write_file_atomically(const std::string& path,
                                                           std::string_view text) = 0;

  // Whether `path` names a regular file (following symbolic links).
  virtual bool is_regular_file(const std::string& path) = 0;
};

// The real filesystem; shared by the whole process, never destroyed.
Env& default_env();

// An empty in-memory filesystem for tests (LevelDB's memenv): files are strings keyed by
// path; there are no directories, so every path is writable unless made unwritable.
class MemoryEnv : public Env {
 public:
  std::optional<std::string> read_file(const std::string& path) override;
  std::optional<std::string> write_file_atomically(const std::string& path,
                                                   std::string_view text) override;
  bool is_regular_file(const std::string& path) override;

  // From now on, writing `path` fails at its open step, as a read-only directory would.
  void make_unwritable(const std::string& path) { unwritable_.insert(path); }
  // Every file, by path: what a test inspects after the code under test wrote.
  const std::map<std::string, std::string>& files() const { return files_; }

 private:
  std::map<std::string, std::string> files_;
  std::set<std::string> unwritable_;
};

// Read-or-error: the whole of `path`, or throws InputError naming `path` with the
// message "cannot open " + `what` ("the calibration profile", "the nccl-tests log").
std::string read_file_or_throw(Env& env, const std::string& path, std::string_view what);

// Atomic write or error: Env::write_file_atomically, throwing InputError naming `path`
// with the message "cannot write the file" when it fails.
void write_file_or_throw(Env& env, const std::string& path, std::string_view text);

}  // namespace orrery
