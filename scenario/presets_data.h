// Text of scenario/presets/*.yaml, embedded at build time by scenario/CMakeLists.txt
// into a generated source file in the build tree.
#pragma once

namespace orrery {
extern const char* const kGpuPresetsYaml;
extern const char* const kSystemPresetsYaml;
extern const char* const kModelPresetsYaml;
extern const char* const kFabricPresetsYaml;
}  // namespace orrery
