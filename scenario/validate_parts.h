// The checks and completions of resolve() (scenario/validate.cpp) that live in files of
// their own, by section, and the helpers they share. Included only by scenario/validate*.cpp.
#pragma once

#include <string>

#include "core/error.h"
#include "scenario/spec.h"

namespace orrery::validate_detail {

inline bool is_set(const Scenario& s, const std::string& key) { return s.origin.count(key) > 0; }

[[noreturn]] inline void reject(const Scenario& s, const std::string& key,
                                const std::string& value, const std::string& why) {
  throw InputError(s.where(key), key, value, why);
}

// A key the scenario must set; missing, the error blames the section it belongs in.
inline void require(const Scenario& s, const std::string& key, const std::string& what) {
  if (!is_set(s, key)) {
    // Blame the enclosing section, which is where the key should have been written.
    std::string section = key.substr(0, key.rfind('.'));
    InputLocation where = s.where(section);
    if (!where.line) where = s.where(section.substr(0, section.find('.')));
    throw InputError(where, key, "", "missing key: " + what);
  }
}

// parallelism: the defaults (dp, schedule, ZeRO stage) and the split's checks
// (scenario/validate_parallelism.cpp).
void complete_parallelism(Scenario& s);

// training.stack: the preset's mechanisms, and the per-parameter optimizer's limits
// (scenario/validate_stack.cpp).
void complete_stack(Scenario& s);
void check_per_parameter_optimizer(const Scenario& s);
void complete_grad_buckets(Scenario& s);

}  // namespace orrery::validate_detail
