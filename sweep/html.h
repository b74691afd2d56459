// `orrery report`: one self-contained HTML page (inline SVG and a few lines of inline
// script, nothing fetched) from the JSON `orrery sweep --json` writes. A table of the best
// configurations' prediction bands and validated-region flags (report/band.h), then
// charts: the step-time breakdown of the best configurations (stacked bars), their memory
// per GPU against the capacity, step time against cost with the Pareto front, throughput
// and scaling efficiency against the GPU count, and the best configuration's simulated
// timeline. The inline script checks that every chart drew
// something and records the verdict on <body data-status="ok N" | "error: ...">, which
// the headless-browser test reads. Deterministic: same JSON, same bytes.
#pragma once

#include <string>

namespace orrery {

// Throws InputError naming `file` when `json` is not a sweep result.
std::string render_sweep_html(const std::string& json, const std::string& file);

}  // namespace orrery
