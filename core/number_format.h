// The number formats orrery names: the scenario's peak rates and gradient buffer, the
// model's bytes per value, the profiler's GEMM and attention cases, the measurement
// file's `dtype` keys and calibration's fits. One enum and one name table for all of
// them; a part that accepts only some formats checks where it uses them.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace orrery {

// In the order of a GPU's datasheet (widest first, fp16 before bf16), which is the order
// a GPU's per-format maps are written in.
enum class Dtype { fp32, tf32, fp16, bf16, fp8, fp4 };

inline constexpr std::array<Dtype, 6> kAllDtypes = {Dtype::fp32, Dtype::tf32, Dtype::fp16,
                                                    Dtype::bf16, Dtype::fp8,  Dtype::fp4};

// "fp32", "tf32", "fp16", "bf16", "fp8", "fp4".
const char* to_string(Dtype d);
// The format of that name; none for any other string.
std::optional<Dtype> parse_dtype(std::string_view name);

// Bytes one value occupies in memory: 4 for fp32 and tf32 (TF32 is fp32 storage with
// reduced-precision math), 2 for fp16 and bf16, 1 for fp8, 0.5 for fp4.
double bytes_per_value(Dtype d);

}  // namespace orrery
