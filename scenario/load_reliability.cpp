// The `reliability:` section: failures over a whole run and the checkpoints that recover
// from them (scenario/spec.h, ReliabilitySpec). That it needs a training target is checked
// by validation (scenario/validate.cpp).
#include <string>

#include "scenario/load_sections.h"

namespace orrery::detail {

ReliabilitySpec read_reliability(const YAML::Node& node, const std::string& file,
                                 Origin* origin) {
  MapReader r(node, file, "reliability", kReliabilityKeys, origin);
  ReliabilitySpec rel;
  r.read_quantity("gpu_mtbf", Dimension::seconds, 1.0, 1e12, rel.gpu_mtbf);
  for (const char* key : {"checkpoint_bandwidth", "restart_time"}) {
    if (!r.has(key)) {
      throw InputError(location_of(file, node), std::string("reliability.") + key, "",
                       "missing key: goodput needs the checkpoint write bandwidth and the "
                       "restart time (no public default is cited for either)");
    }
  }
  r.read_quantity("checkpoint_bandwidth", Dimension::bandwidth, 1e3, kMaxBandwidth,
                  rel.checkpoint_bandwidth);
  r.read_quantity("restart_time", Dimension::seconds, 0.0, 1e9, rel.restart_time);
  Seconds interval;
  if (r.read_quantity("checkpoint_interval", Dimension::seconds, 1.0, 1e12, interval))
    rel.checkpoint_interval = interval;
  return rel;
}

}  // namespace orrery::detail
