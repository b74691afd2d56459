#include "profiler/cuda/gemm.h"

#include <string>

#include "core/error.h"
#include "profiler/cuda/check.h"

namespace orrery::profiler::cuda {

MatmulTypes matmul_types(Dtype d, Fp8Accumulation a) {
  switch (d) {
    case Dtype::fp32:
      return {CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case Dtype::tf32:
      return {CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F};
    case Dtype::bf16:
      return {CUDA_R_16BF, CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case Dtype::fp16:
      return {CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case Dtype::fp8:
      return {CUDA_R_8F_E4M3,
              CUDA_R_8F_E4M3,
              CUDA_R_16BF,
              CUBLAS_COMPUTE_32F,
              CUDA_R_32F,
              true,
              a == Fp8Accumulation::fast};
    case Dtype::fp4: break;
  }
  ORRERY_CHECK(false, std::string("no GEMMs in ") + to_string(d));
  return {CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
}

namespace {

void set_batch(cublasLtMatrixLayout_t layout, int batch, std::int64_t stride) {
  if (batch <= 1) return;
  const int32_t count = batch;
  check(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                         sizeof count),
        "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)");
  const int64_t s = stride;
  check(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s,
                                         sizeof s),
        "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
}

}  // namespace

LtMatmul::LtMatmul(cublasLtHandle_t lt, const MatmulTypes& t, const MatmulShape& s,
                   void* workspace, std::size_t workspace_bytes, const float* unit_scale)
    : lt_(lt), workspace_(workspace), workspace_bytes_(workspace_bytes) {
  try {
    check(cublasLtMatmulDescCreate(&op_, t.compute, t.scale), "cublasLtMatmulDescCreate");
    const cublasOperation_t ta = s.transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t tb = s.transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta),
          "cublasLtMatmulDescSetAttribute(TRANSA)");
    check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb),
          "cublasLtMatmulDescSetAttribute(TRANSB)");
    if (t.fp8_scales) {
      // Per-tensor scales of 1 (device pointers): the inputs are already in range.
      check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &unit_scale,
                                           sizeof unit_scale),
            "cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)");
      check(cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &unit_scale,
                                           sizeof unit_scale),
            "cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)");
    }
    if (t.fast_accumulation) {
      const int8_t fast = 1;
      check(
          cublasLtMatmulDescSetAttribute(op_, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast),
          "cublasLtMatmulDescSetAttribute(FAST_ACCUM)");
    }
    // A is stored k x m when transposed, m x k otherwise; B is k x n; D is m x n.
    const auto rows_a = static_cast<uint64_t>(s.transpose_a ? s.k : s.m);
    const auto cols_a = static_cast<uint64_t>(s.transpose_a ? s.m : s.k);
    check(cublasLtMatrixLayoutCreate(&a_, t.a, rows_a, cols_a, static_cast<int64_t>(rows_a)),
          "cublasLtMatrixLayoutCreate(A)");
    // B is stored n x k when transposed, k x n otherwise.
    const auto rows_b = static_cast<uint64_t>(s.transpose_b ? s.n : s.k);
    const auto cols_b = static_cast<uint64_t>(s.transpose_b ? s.k : s.n);
    check(cublasLtMatrixLayoutCreate(&b_, t.b, rows_b, cols_b, static_cast<int64_t>(rows_b)),
          "cublasLtMatrixLayoutCreate(B)");
    check(cublasLtMatrixLayoutCreate(&d_, t.d, static_cast<uint64_t>(s.m),
                                     static_cast<uint64_t>(s.n), s.m),
          "cublasLtMatrixLayoutCreate(D)");
    set_batch(a_, s.batch, s.stride_a);
    set_batch(b_, s.batch, s.stride_b);
    set_batch(d_, s.batch, s.stride_d);

    cublasLtMatmulPreference_t pref = nullptr;
    check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t st = [&] {
      const cublasStatus_t a = cublasLtMatmulPreferenceSetAttribute(
          pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
          sizeof workspace_bytes_);
      if (a != CUBLAS_STATUS_SUCCESS) return a;
      return cublasLtMatmulAlgoGetHeuristic(lt_, op_, a_, b_, d_, d_, pref, 1, &result, &found);
    }();
    (void)cublasLtMatmulPreferenceDestroy(pref);
    check(st, "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0)
      throw CallFailed{{FailureKind::unsupported, "cuBLASLt has no algorithm for this case"}};
    algo_ = result.algo;
  } catch (...) {
    release();  // the destructor does not run when the constructor throws
    throw;
  }
}

LtMatmul::~LtMatmul() { release(); }

void LtMatmul::release() {
  if (d_) (void)cublasLtMatrixLayoutDestroy(d_);
  if (b_) (void)cublasLtMatrixLayoutDestroy(b_);
  if (a_) (void)cublasLtMatrixLayoutDestroy(a_);
  if (op_) (void)cublasLtMatmulDescDestroy(op_);
  d_ = b_ = a_ = nullptr;
  op_ = nullptr;
}

void LtMatmul::run(const void* a, const void* b, void* d, cudaStream_t stream) {
  const float one = 1.0f, zero = 0.0f;
  check(cublasLtMatmul(lt_, op_, &one, a, a_, b, b_, &zero, d, d_, d, d_, &algo_, workspace_,
                       workspace_bytes_, stream),
        "cublasLtMatmul");
}

}  // namespace orrery::profiler::cuda
