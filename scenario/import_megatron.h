// `orrery import megatron`: a scenario written from a Megatron-LM launch line.
#pragma once

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
