// Reader for nccl-tests output (all_reduce_perf, all_gather_perf, reduce_scatter_perf,
// alltoall_perf, sendrecv_perf, broadcast_perf) as the programs print it: a header
// (`# nThread T nGpus G ...`, one `Rank` line per rank naming host and GPU), a column
// header with an out-of-place and an in-place group (`time algbw busbw #wrong`, or
// `error` in older versions), one row per size, and `# Avg bus bandwidth`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/collective.h"
#include "core/env.h"
#include "core/units.h"

namespace orrery {

// One column group (out-of-place or in-place) of one row.
struct NcclTestsTiming {
  Seconds time;
  Bandwidth algbw, busbw;
  std::optional<double> wrong;  // #wrong count or max error; absent when printed N/A
};

struct NcclTestsRow {
  Bytes size;  // the `size` column: bytes per rank's buffer as nccl-tests defines it
  std::int64_t count = 0;
  std::string type, redop;
  std::optional<NcclTestsTiming> out_of_place, in_place;  // absent when printed N/A
  int line = 0;
};

// One run of one nccl-tests program: everything from a `# nThread` line to the next.
struct NcclTestsRun {
  std::string file;
  int line = 0;    // line of the `# nThread` header
  CollectiveOp op = CollectiveOp::all_reduce;
  int gpus = 0;    // ranks: `Rank` lines, or nThread x nGpus when the log has none
  int nodes = 0;   // distinct hosts named by `Rank` lines (1 when the log has none)
  std::string gpu;  // device name of rank 0, when a `Rank` line gives it
  std::vector<NcclTestsRow> rows;
  std::optional<Bandwidth> avg_busbw;  // `# Avg bus bandwidth`, when printed
};

// Reads every run in `text`. The op of a run comes from a line naming the program
// (`# Collective test starting: all_reduce_perf`, a shell command echo), else from
// `op_hint` (a collective name, or empty), else from the file name
// (`all_reduce_perf.log`). Throws InputError naming the file and line of a row that is
// truncated or malformed, a run whose op cannot be told, a row with #wrong > 0, or a
// text that holds no run.
std::vector<NcclTestsRun> read_nccl_tests_text(const std::string& text, const std::string& file,
                                               const std::string& op_hint = "");
// The file at `path` read through `env`; "cannot open the nccl-tests log" when it cannot
// be opened.
std::vector<NcclTestsRun> read_nccl_tests_file(const std::string& path,
                                               const std::string& op_hint = "",
                                               Env& env = default_env());

// True when `text` looks like nccl-tests output (has a `nThread ... nGpus` header).
bool looks_like_nccl_tests(const std::string& text);

}  // namespace orrery
