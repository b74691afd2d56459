// The profiler's own CUDA kernels, compiled by nvcc in kernels.cu; everything else in
// the CUDA backend is host C++. Each launcher returns the launch's cudaError_t.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "core/number_format.h"

namespace orrery::profiler::cuda {

// Fills `count` elements of format `type` with deterministic pseudo-random values in
// [-1, 1) (seeded by `seed`), so tensor cores see realistic data rather than zeros.
// fp32 and tf32 write floats, fp8 writes E4M3; fp4 is cudaErrorInvalidValue.
cudaError_t launch_fill(void* data, std::int64_t count, Dtype type, std::uint32_t seed,
                        cudaStream_t stream);

// Memory-bound kernels on fp32 data. Sizes are in floats and multiples of 4 (float4).
// copy: y = x (1 read, 1 write per element).
cudaError_t launch_copy(const float* x, float* y, std::int64_t n, cudaStream_t stream);
// elementwise: c = a * x + b (2 reads, 1 write per element).
cudaError_t launch_axpb(float a, const float* x, const float* b, float* c, std::int64_t n,
                        cudaStream_t stream);
// row_reduce: a layernorm over rows of kRowWidth floats: y = (x - mean) / sqrt(var + eps),
// one read and one write per element.
inline constexpr int kRowWidth = 4096;
cudaError_t launch_row_norm(const float* x, float* y, std::int64_t rows, cudaStream_t stream);

// An empty kernel, <<<1, 1>>>.
cudaError_t launch_empty(cudaStream_t stream);

// In-place softmax over each column of `columns` columns of `len` contiguous 16-bit
// values (bf16 when `bf16`, else fp16), scaled by `scale` first; with `causal`, entry j
// of column i is masked (set to 0) when j > i mod len.
cudaError_t launch_softmax(void* s, std::int64_t columns, std::int64_t len, float scale,
                           bool causal, bool bf16, cudaStream_t stream);

// Softmax backward in place: for each column of `len` 16-bit values,
// dS = scale * P * (dP - sum_j P_j dP_j), written over dP.
cudaError_t launch_softmax_backward(const void* p, void* dp, std::int64_t columns,
                                    std::int64_t len, float scale, bool bf16,
                                    cudaStream_t stream);

}  // namespace orrery::profiler::cuda
