// The `faults:` section: a list of modelled faults (scenario/spec.h, FaultSpec), each
// with the keys its kind takes. Whether a fault names a part of this cluster is checked
// by validation (scenario/validate.cpp), once the whole scenario is read.
#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

using F = FaultSpec;
using K = F::Kind;
using namespace field;

// A key that kinds other than `kinds` do not take.
std::function<std::string(const F&)> taken_by(std::vector<K> kinds) {
  return [kinds = std::move(kinds)](const F& f) -> std::string {
    if (std::find(kinds.begin(), kinds.end(), f.kind) != kinds.end()) return "";
    return fmt::format("does not apply to a {} fault", to_string(f.kind));
  };
}

// A key that `kinds` require.
std::function<bool(const F&)> needed_by(std::vector<K> kinds) {
  return [kinds = std::move(kinds)](const F& f) {
    return std::find(kinds.begin(), kinds.end(), f.kind) != kinds.end();
  };
}

// `until` must come after `from`, read before it.
void read_until(MapReader& r, const std::string& key, Origin*, F& f) {
  Seconds until;
  if (r.read_quantity(key, Dimension::seconds, 0.0, 1e9, until)) {
    if (until <= f.from) r.fail(key, "must come after `from`");
    f.until = until;
  }
}

// Every key of a fault, in the order its unknown-key error lists them: the kind, then the
// keys each kind takes and needs (any other is an error naming the kind). link is read
// first, the rest (late) in table order.
const FieldTable<F>& fault_fields() {
  static const FieldTable<F> table = {
      {"kind", required(choice(&F::kind))},
      {"stage", whole(&F::stage, 0, kMaxCount), true, taken_by({K::straggler}),
       needed_by({K::straggler})},
      {"link", choice(&F::link), false, taken_by({K::slow_link, K::failed_link}),
       needed_by({K::slow_link, K::failed_link})},
      {"node", whole(&F::node, 0, kMaxCount), true,
       taken_by({K::slow_link, K::failed_link, K::failed_node}), needed_by({K::failed_node})},
      {"leaf", whole(&F::leaf, 0, kMaxCount), true, taken_by({K::slow_link, K::failed_link})},
      {"gpu", whole(&F::gpu, 0, kMaxCount), true, taken_by({K::slow_link})},
      {"lost", whole(&F::lost, 1, kMaxCount), true, taken_by({K::failed_link})},
      {"nic", whole(&F::nic, 0, kMaxCount), true, taken_by({K::failed_link})},
      {"factor", number(&F::factor, 1e-6, 1.0), true, taken_by({K::straggler, K::slow_link}),
       needed_by({K::straggler, K::slow_link})},
      {"from", quantity(&F::from, Dimension::seconds, 0.0, 1e9), true},
      {"until", read_until, true},
  };
  return table;
}

// One entry of the list, `path` naming it ("faults[2]").
FaultSpec read_fault(const YAML::Node& node, const std::string& file, const std::string& path,
                     Origin* origin) {
  MapReader r(node, file, path, keys_of(fault_fields()), origin);
  FaultSpec f;
  const InputLocation at = location_of(file, node);
  f.where = at.line ? fmt::format("{}:{}", at.file, *at.line) : at.file;
  read_keyed_by_first(r, origin, fault_fields(), f, false);
  auto need = [&](const char* k) {
    if (!r.has(k)) throw InputError(at, path + "." + k, "", "missing key");
  };
  if (f.kind == K::failed_link) {
    // Each failed link takes its own keys: a leaf's uplinks, or a node's NIC.
    const bool nic = f.link == FaultSpec::Link::nic;
    if (f.link == FaultSpec::Link::nvlink)
      r.fail("link",
             "failed_link fails a leaf's uplinks (link: spine) or a node's NIC (link: nic)");
    for (const char* k : {"leaf", "lost"})
      if (nic && r.has(k)) r.fail(k, "does not apply to a failed NIC (it takes node and nic)");
    for (const char* k : {"node", "nic"})
      if (!nic && r.has(k))
        r.fail(k, "does not apply to failed spine uplinks (they take leaf and lost)");
    need(nic ? "nic" : "leaf");
    if (nic) need("node");
    // NCCL binds a rank to its NICs when the communicator is created: a NIC lost in the
    // middle of a step interrupts the job (reliability:), it is not routed around.
    for (const char* k : {"from", "until"})
      if (nic && r.has(k))
        r.fail(k,
               "a failed NIC holds for the whole step (a NIC lost mid-step interrupts "
               "the job: see reliability:)");
  }
  return f;
}

}  // namespace

KeyLists fault_key_lists() { return {{"faults[]", keys_of(fault_fields())}}; }

void read_faults(const YAML::Node& list, const std::string& file, Origin* origin,
                 std::vector<FaultSpec>& out) {
  if (!list.IsSequence()) {
    throw InputError(location_of(file, list), "faults", describe(list),
                     "a list of faults, e.g. [{kind: straggler, stage: 1, factor: 0.5}]");
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    out.push_back(read_fault(list[i], file, fmt::format("faults[{}]", i), origin));
  }
}

}  // namespace orrery::detail
