// `orrery import megatron`: a scenario written from a Megatron-LM launch line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orrery {

// The scenario YAML for Megatron-LM's pretrain_gpt.py `arguments` on `nodes` nodes of the
// system preset `cluster`: model, parallel layout, precision, recompute and batch, each
// value with a comment naming the argument (or the Megatron-LM default) it came from,
// and a comment listing the arguments it could not map. Throws InputError (file
// "orrery import megatron") for an argument without its value, a value that is not a number or
// not one Megatron-LM accepts, and a missing shape argument.
std::string import_megatron(const std::vector<std::string>& arguments, const std::string& cluster,
                            int nodes);

}  // namespace orrery

namespace orrery {

// The same scenario from the arguments header a Megatron-LM run prints to its log
// (`_print_args` in megatron/training/arguments.py: "------ arguments ------", then
// "  name ..... value" a line for every argument after validation, then "---- end of
// arguments ----"), on the system preset `cluster`: the nodes are the header's
// world_size over the system's GPUs per node, the vocabulary the log's "> padded vocab
// (size: N)" line, else the header's vocab_size, else `vocab` (0: none). Throws InputError
// (file `path`, the line) for a log without the header, a world size that is not whole
// nodes, and what `import_megatron` refuses.
std::string import_megatron_log(const std::string& path, const std::string& cluster,
                                std::int64_t vocab);

}  // namespace orrery
