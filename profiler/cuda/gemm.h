// One cuBLASLt matmul, planned once and run many times: descriptors, layouts, the
// heuristic's first algorithm and its workspace. Column-major; D = op(A) . op(B) with
// op(A) = A^T when `transpose_a` (the "TN" layout, the only one cuBLASLt runs fp8 in)
// and op(B) = B^T when `transpose_b` (attention's backward). Strided batches for
// attention.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "profiler/device.h"

namespace orrery::profiler::cuda {

struct MatmulTypes {
  cudaDataType_t a, b, d;        // C has D's type
  cublasComputeType_t compute;
  cudaDataType_t scale;
  bool fp8_scales = false;       // set A/B scale pointers (fp8 inputs)
  // CUBLASLT_MATMUL_DESC_FAST_ACCUM = 1 (fp8 only): no periodic promotion of partial sums
  // to higher precision (cublasLt.h, CUDA 13.0; cuBLAS docs, cublasLtMatmulDescAttributes_t;
  // default 0, "split" here).
  bool fast_accumulation = false;
};
// `d` must be one of kGemmDtypes (checked); `a` is used for fp8 only.
MatmulTypes matmul_types(Dtype d, Fp8Accumulation a = Fp8Accumulation::split);

struct MatmulShape {
  std::int64_t m = 0, n = 0, k = 0;
  bool transpose_a = true;
  int batch = 1;
  std::int64_t stride_a = 0, stride_b = 0, stride_d = 0;  // elements between batches
  bool transpose_b = false;  // op(B) = B^T, B stored n x k
};

class LtMatmul {
 public:
  // Throws CallFailed: unsupported when the heuristic finds no algorithm.
  LtMatmul(cublasLtHandle_t lt, const MatmulTypes& types, const MatmulShape& shape,
           void* workspace, std::size_t workspace_bytes, const float* unit_scale);
  ~LtMatmul();
  LtMatmul(const LtMatmul&) = delete;
  LtMatmul& operator=(const LtMatmul&) = delete;

  // D = op(A) B (alpha 1, beta 0). Throws CallFailed.
  void run(const void* a, const void* b, void* d, cudaStream_t stream);

 private:
  void release();

  cublasLtHandle_t lt_;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  void* workspace_;
  std::size_t workspace_bytes_;
};

}  // namespace orrery::profiler::cuda
