// The collectives every part of orrery names: the model says which one an op needs, the
// simulator plans and places it, the profiler times it with NCCL, calibration reads it
// from measurement files and nccl-tests logs. One enum and one name table for all of
// them; the names are nccl-tests' (`all_reduce_perf` measures `all_reduce`).
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace orrery {

// In nccl-tests' order, which is the order the profiler measures and writes them in.
enum class CollectiveOp {
  all_reduce,
  all_gather,
  reduce_scatter,
  all_to_all,
  broadcast,
  send_recv
};

inline constexpr std::array<CollectiveOp, 6> kAllCollectives = {
    CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
    CollectiveOp::all_to_all, CollectiveOp::broadcast,  CollectiveOp::send_recv};

// "all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv".
const char* to_string(CollectiveOp op);
// The collective of that name; none for any other string.
std::optional<CollectiveOp> parse_collective(std::string_view name);

// nccl-tests' bus-bandwidth factor for `gpus` ranks (nccl-tests doc/PERFORMANCE.md):
// busbw = algbw x factor; 2(n-1)/n for all-reduce, (n-1)/n for all-gather,
// reduce-scatter and all-to-all, 1 for broadcast and send/recv.
double busbw_factor(CollectiveOp op, int gpus);

}  // namespace orrery
