// The records of a measurement file (docs/calibration-format.md, "Measurement file",
// format version 1): what orrery-profile writes (profiler/measurements.h) and
// `orrery calibrate` reads (calibrate/measurements.h). One set of structs for both, so
// a field added to the format is added once.
#pragma once

#include <cstdint>

#include "core/number_format.h"

namespace orrery {

// The formats a `gemm` entry may name, in the order orrery-profile measures and writes
// them. fp8 is E4M3 inputs with a bf16 output; tf32 is fp32 data with TF32 tensor-core
// math; fp4 GEMMs are not measured.
inline constexpr Dtype kGemmDtypes[] = {Dtype::fp32, Dtype::tf32, Dtype::bf16, Dtype::fp16,
                                        Dtype::fp8};
// Whether `d` is one of kGemmDtypes.
bool is_gemm_dtype(Dtype d);
// Bytes per input element of a GEMM in format `d` (4 for fp32 and tf32, 2 for bf16 and
// fp16, 1 for fp8). `d` must be one of kGemmDtypes (checked).
int gemm_input_bytes(Dtype d);
// Bytes per output element (fp8 writes bf16). `d` must be one of kGemmDtypes (checked).
int gemm_output_bytes(Dtype d);

}  // namespace orrery
