// `orrery schema`: a JSON Schema of the scenario format, for editors (the YAML language
// server) and scripts.
//
// What it is made from, so that it cannot drift from the reader:
//  - the keys, their nesting and the lists of mappings (`faults[]`): scenario_keys(), the
//    field tables the reader itself reads (scenario/fields.h), so every object refuses
//    other keys (additionalProperties: false) exactly as the reader does;
//  - a section that takes a `preset` key may be written as a preset name; the names are
//    the built-in presets' (gpu_preset_names() and the others);
//  - each key's description (unit, default, range, meaning) and its value's type: the
//    key's row of docs/scenario-format.md, embedded at build time. A test keeps every key
//    the reader accepts documented there and no other (tests/cli/docs_test.cpp), and one
//    that every enum row names exactly the enum's names (scenario/names.h); the types
//    read from the unit column are checked by tests/python/test_schema.py (every
//    shipped scenario validates, the documented bad input of those kinds is rejected).
// What it cannot say: which keys are required (that depends on the presets) and the
// checks across fields (scenario/validate.h); `orrery check` still has the last word.
#pragma once

#include <string>

namespace orrery {

// The schema as JSON text (draft-07, which the YAML language server reads), ending in
// a newline; the same bytes on every run.
std::string scenario_schema();

}  // namespace orrery
