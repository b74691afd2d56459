// The `reliability:` section: failures over a whole run and the checkpoints that recover
// from them (scenario/spec.h, ReliabilitySpec). That it needs a training target is checked
// by validation (scenario/validate.cpp).
#include <string>
#include <utility>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

using R = ReliabilitySpec;
using namespace field;

constexpr const char* kBandwidth = "checkpoint_bandwidth";
constexpr const char* kRestart = "restart_time";

// `read`, once both keys goodput needs are known to be given.
ReadFn<R> with_goodput_inputs(ReadFn<R> read) {
  return [read = std::move(read)](MapReader& r, const std::string& key, Origin* origin, R& rel) {
    for (const char* k : {kBandwidth, kRestart}) {
      if (!r.has(k)) {
        throw InputError(r.where(), r.key_path(k), "",
                         "missing key: goodput needs the checkpoint write bandwidth and the "
                         "restart time (no public default is cited for either)");
      }
    }
    read(r, key, origin, rel);
  };
}

// Every key of reliability:, in the order its unknown-key error lists them.
const FieldTable<R>& reliability_fields() {
  static const FieldTable<R> table = {
      {"gpu_mtbf", quantity(&R::gpu_mtbf, Dimension::seconds, 1.0, 1e12)},
      {kBandwidth, with_goodput_inputs(quantity(&R::checkpoint_bandwidth, Dimension::bandwidth, 1e3,
                                                kMaxBandwidth))},
      {kRestart, quantity(&R::restart_time, Dimension::seconds, 0.0, 1e9)},
      {"checkpoint_interval", quantity(&R::checkpoint_interval, Dimension::seconds, 1.0, 1e12)},
  };
  return table;
}

}  // namespace

KeyLists reliability_key_lists() { return {{"reliability", keys_of(reliability_fields())}}; }

ReliabilitySpec read_reliability(const YAML::Node& node, const std::string& file, Origin* origin) {
  MapReader r(node, file, "reliability", keys_of(reliability_fields()), origin);
  ReliabilitySpec rel;
  read_fields(r, origin, reliability_fields(), rel);
  return rel;
}

}  // namespace orrery::detail
