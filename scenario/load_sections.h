// The parts of scenario reading shared by scenario/load.cpp (the top level, presets
// and overrides) and the files that read one section each (load_*.cpp): the ranges
// values are checked against, the keys each section accepts (scenario_keys() lists
// them all) and the section readers. Every section, and the top level, is read through
// a field table (scenario/fields.h) that also gives its keys. Private to the scenario component: it
// uses yaml-cpp through scenario/yaml_reader.h, which stays out of public headers.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "scenario/fields.h"
#include "scenario/names.h"
#include "scenario/presets.h"
#include "scenario/spec.h"
#include "scenario/sweep_spec.h"
#include "scenario/yaml_reader.h"

namespace orrery::detail {

// Ranges that reject absurd values before they overflow anything downstream.
inline constexpr double kMaxFlopRate = 1e18;             // 1 EFLOP/s per GPU
inline constexpr double kMaxBytes = 1125899906842624.0;  // 1 PiB per GPU
inline constexpr double kMaxBandwidth = 1e15;            // 1 PB/s
inline constexpr double kMaxLatency = 1.0;               // 1 s per message
inline constexpr double kMaxPower = 1e6;                 // 1 MW per GPU
inline constexpr int kMaxCount = 1 << 20;                // nodes, GPUs per node, layers, degrees
// NICs per node: up to one per GPU of the largest NVLink domain a node may stand for
// (GB200 NVL72: 72 GPUs, one ConnectX NIC each), with room to spare.
inline constexpr int kMaxNicsPerNode = 1024;
inline constexpr std::int64_t kMaxWidth = std::int64_t{1} << 24;  // hidden, ffn, vocab, seq_len

// Reads a section that may be a preset name (scalar) or a mapping with an optional
// `preset:` key (load.cpp) and returns the preset's name, "" for none. `apply` reads one
// mapping (preset or user) into the target. A preset replaces whatever the section held
// before (`reset`), so that a GPU preset named inside a system preset leaves nothing of
// the system's own GPU behind.
std::string apply_section(const YAML::Node& node, const std::string& file, const std::string& path,
                          const std::vector<std::string>& keys, const PresetTable& presets,
                          Origin* origin, const std::function<void()>& reset,
                          const std::function<void(MapReader&)>& apply);

// Section readers, each in its own file. Each checks its section's keys, types, units
// and ranges, records in `origin` where every key was written, and throws InputError
// at the first bad value; cross-field rules wait for validation (scenario/validate.h).

// A section's keys and those of the sections nested in it, each list under its dotted
// path ("training.fp8"), in the order scenario_keys() lists them.
using KeyLists = std::vector<std::pair<std::string, std::vector<std::string>>>;

// parallelism: (load_parallelism.cpp).
KeyLists parallelism_key_lists();
void read_parallelism(const YAML::Node& node, const std::string& file, Origin* origin,
                      ParallelismSpec& p);

// The keys of one cluster: mapping, a system preset's or the user's (load_cluster.cpp).
KeyLists cluster_key_lists();
std::vector<std::string> cluster_keys();  // cluster:'s own, preset included
void read_cluster_keys(MapReader& r, Origin* origin, ClusterSpec& c);

// The keys of one model: mapping, a model preset's or the user's (load_model.cpp).
KeyLists model_key_lists();
std::vector<std::string> model_keys();  // model:'s own, preset included
void read_model_keys(MapReader& r, Origin* origin, ModelSpec& m);

// training: (load_training.cpp), over the defaults already in `t`.
KeyLists training_key_lists();
void read_training(const YAML::Node& node, const std::string& file, Origin* origin,
                   TrainingSpec& t);

// faults: (load_faults.cpp), a list; each entry is appended to `out` in order.
KeyLists fault_key_lists();
void read_faults(const YAML::Node& list, const std::string& file, Origin* origin,
                 std::vector<FaultSpec>& out);

// reliability: (load_reliability.cpp); checkpoint_bandwidth and restart_time are required.
KeyLists reliability_key_lists();
ReliabilitySpec read_reliability(const YAML::Node& node, const std::string& file, Origin* origin);

// sweep: (load_sweep.cpp) into `w`, with w.origin; a sweep that varies nothing is an error.
KeyLists sweep_key_lists();
void read_sweep(const YAML::Node& node, const std::string& file, SweepSpec& w);

}  // namespace orrery::detail
