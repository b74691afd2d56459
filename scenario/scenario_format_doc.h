// docs/scenario-format.md as a string constant, generated into the build tree by
// scenario/CMakeLists.txt: the key rows give `orrery schema` its descriptions.
#pragma once

namespace orrery {

// The text in parts, in order, ending with nullptr.
extern const char* const kScenarioFormatDoc[];

}  // namespace orrery
