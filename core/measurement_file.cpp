#include "core/measurement_file.h"

#include <algorithm>
#include <iterator>
#include <string>

#include "core/error.h"

namespace orrery {

bool is_gemm_dtype(Dtype d) {
  return std::find(std::begin(kGemmDtypes), std::end(kGemmDtypes), d) != std::end(kGemmDtypes);
}

int gemm_input_bytes(Dtype d) {
  ORRERY_CHECK(is_gemm_dtype(d), std::string("no GEMMs in ") + to_string(d));
  return static_cast<int>(bytes_per_value(d));
}

int gemm_output_bytes(Dtype d) { return d == Dtype::fp8 ? 2 : gemm_input_bytes(d); }

const char* to_string(MemoryKernel k) {
  switch (k) {
    case MemoryKernel::copy:
      return "copy";
    case MemoryKernel::elementwise:
      return "elementwise";
    case MemoryKernel::row_reduce:
      return "row_reduce";
  }
  return "?";
}

const char* to_string(Fp8Accumulation a) { return a == Fp8Accumulation::fast ? "fast" : "split"; }

const char* to_string(AttentionImpl i) {
  return i == AttentionImpl::cudnn_fused ? "cudnn_fused" : "unfused";
}

}  // namespace orrery
