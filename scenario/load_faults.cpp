// The `faults:` section: a list of modelled faults (scenario/spec.h, FaultSpec), each
// with the keys its kind takes. Whether a fault names a part of this cluster is checked
// by validation (scenario/validate.cpp), once the whole scenario is read.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

// One entry of the list, `path` naming it ("faults[2]").
FaultSpec read_fault(const YAML::Node& node, const std::string& file, const std::string& path,
                     Origin* origin) {
  using K = FaultSpec::Kind;
  MapReader r(node, file, path, kFaultKeys, origin);
  FaultSpec f;
  const InputLocation at = location_of(file, node);
  f.where = at.line ? fmt::format("{}:{}", at.file, *at.line) : at.file;
  if (!r.read_enum("kind", names_of<FaultSpec::Kind>(), f.kind)) {
    throw InputError(at, path + ".kind", "", "missing key");
  }
  // The keys each kind takes; any other is an error naming the kind.
  const std::map<K, std::vector<std::string>> takes = {
      {K::straggler, {"kind", "stage", "factor", "from", "until"}},
      {K::slow_link, {"kind", "link", "node", "leaf", "gpu", "factor", "from", "until"}},
      {K::failed_link, {"kind", "link", "leaf", "lost", "node", "nic", "from", "until"}},
      {K::failed_node, {"kind", "node", "from", "until"}}};
  for (const std::string& k : kFaultKeys) {
    const auto& allowed = takes.at(f.kind);
    if (r.has(k) && std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      r.fail(k, fmt::format("does not apply to a {} fault", to_string(f.kind)));
  }
  auto need = [&](const char* k) {
    if (!r.has(k)) throw InputError(at, path + "." + k, "", "missing key");
  };
  switch (f.kind) {
    case K::straggler: need("stage"); need("factor"); break;
    case K::slow_link: need("link"); need("factor"); break;
    case K::failed_link: need("link"); break;
    case K::failed_node: need("node"); break;
  }
  r.read_enum("link", names_of<FaultSpec::Link>(), f.link);
  r.read_int("stage", 0, kMaxCount, f.stage);
  r.read_int("node", 0, kMaxCount, f.node);
  r.read_int("leaf", 0, kMaxCount, f.leaf);
  r.read_int("gpu", 0, kMaxCount, f.gpu);
  r.read_int("lost", 1, kMaxCount, f.lost);
  r.read_int("nic", 0, kMaxCount, f.nic);
  r.read_double("factor", 1e-6, 1.0, f.factor);
  r.read_quantity("from", Dimension::seconds, 0.0, 1e9, f.from);
  Seconds until;
  if (r.read_quantity("until", Dimension::seconds, 0.0, 1e9, until)) {
    if (until <= f.from) r.fail("until", "must come after `from`");
    f.until = until;
  }
  if (f.kind == K::failed_link) {
    // Each failed link takes its own keys: a leaf's uplinks, or a node's NIC.
    const bool nic = f.link == FaultSpec::Link::nic;
    if (f.link == FaultSpec::Link::nvlink)
      r.fail("link", "failed_link fails a leaf's uplinks (link: spine) or a node's NIC (link: nic)");
    for (const char* k : {"leaf", "lost"})
      if (nic && r.has(k)) r.fail(k, "does not apply to a failed NIC (it takes node and nic)");
    for (const char* k : {"node", "nic"})
      if (!nic && r.has(k)) r.fail(k, "does not apply to failed spine uplinks (they take leaf and lost)");
    need(nic ? "nic" : "leaf");
    if (nic) need("node");
    // NCCL binds a rank to its NICs when the communicator is created: a NIC lost in the
    // middle of a step interrupts the job (reliability:), it is not routed around.
    for (const char* k : {"from", "until"})
      if (nic && r.has(k))
        r.fail(k, "a failed NIC holds for the whole step (a NIC lost mid-step interrupts "
                  "the job: see reliability:)");
  }
  return f;
}

}  // namespace

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
