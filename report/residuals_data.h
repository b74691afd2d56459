// Text of report/validation_residuals.csv, embedded at build time by report/CMakeLists.txt
// into a generated source file in the build tree.
#pragma once

namespace orrery {
extern const char* const kValidationResidualsCsv;
}  // namespace orrery
