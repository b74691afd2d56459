// Reader for PyTorch profiler / Kineto traces in Chrome trace-event JSON
// (`torch.profiler` export_chrome_trace): GPU kernel events (`cat` "kernel", complete
// events "ph": "X" with `dur` in microseconds) and, where recorded, the CPU op that
// launched each kernel (`cat` "cpu_op", linked by `args."External id"`, or for a kernel
// without one through the `cuda_runtime` launch of the same `correlation`) with its
// `Input Dims` and `Input type` (recorded with record_shapes=True).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/units.h"

namespace orrery {

struct TraceKernel {
  std::string name;                             // kernel name as recorded
  Seconds duration;                             // `dur`
  std::string op;                               // launching CPU op ("aten::mm"), or empty
  std::vector<std::vector<std::int64_t>> dims;  // the op's `Input Dims`, when recorded
  std::vector<std::string> types;               // the op's `Input type`, when recorded
  std::optional<std::int64_t> op_id;            // `External id` of the launching op call
  int event = 0;                                // index in traceEvents
  // An NCCL kernel: the collective's metadata that Kineto copies from its
  // record_param_comms CPU op onto the kernel's args (pytorch/kineto
  // libkineto/src/output_json.cpp, ChromeTraceLogger::handleActivity, at acf03f80).
  std::string collective;        // "Collective name" ("allreduce"), or empty
  std::int64_t in_nelems = -1;   // "In msg nelems"
  std::int64_t out_nelems = -1;  // "Out msg nelems"
  int group_size = 0;            // "Group size"
  std::string comm_dtype;        // "dtype" ("BFloat16")
  // "Process Group Ranks": the group's global ranks, which Kineto writes as a quoted list
  // ("[0, 1, 2, 3]"; output_json.cpp, appendCollectiveArgs, pytorch/kineto 114171df).
  // Empty when absent or not a list of whole numbers as long as the group.
  std::vector<std::int64_t> group_ranks;
  // A point-to-point kernel ("Collective name" send or recv): the peer's global rank, the
  // "Dst Rank" of a send or "Src Rank" of a recv (PyTorch torch/csrc/profiler/util.cpp,
  // saveNcclMeta, at a4c8850a, from the group's ranks; Kineto copies both onto the kernel:
  // output_json.cpp, ChromeTraceLogger::handleActivity, at 002d9919). -1 when absent.
  std::int64_t peer = -1;
};

struct KinetoTrace {
  std::string file;
  std::string gpu;  // deviceProperties[0].name, when recorded
  std::vector<TraceKernel> kernels;  // in trace order
  // The traced process's global rank: `distributedInfo.rank`, which torch.profiler writes
  // for a distributed job (torch/profiler/profiler.py, _get_distributed_info); -1 when absent.
  std::int64_t rank = -1;
  // The optimizer steps the trace holds, from its `Optimizer.step#<class>.step` annotations
  // (cat "user_annotation"), which torch.optim.Optimizer records around every step
  // (torch/optim/optimizer.py, profile_hook_step, at pytorch/pytorch bf6a61dc). Where the
  // trace has torch.profiler's `ProfilerStep#N` annotations (one per prof.step(), the
  // training iteration; torch/profiler/profiler.py), the iterations holding at least one
  // optimizer annotation, so that a step of several optimizers (Megatron-Core's
  // ChainedOptimizer: one for dense and one for expert parameters) counts once; else the
  // optimizer annotations.
  int optimizer_steps = 0;
};

// Throws InputError naming the file, the line (for malformed JSON) or the event's key
// (`traceEvents[12].dur`) and value.
KinetoTrace read_kineto_text(const std::string& text, const std::string& file);
// The file at `path` read through `env`; "cannot open the trace" when it cannot be opened.
KinetoTrace read_kineto_file(const std::string& path, Env& env = default_env());

// True when `text` looks like a Chrome trace (a JSON object with traceEvents).
bool looks_like_chrome_trace(const std::string& text);

}  // namespace orrery
