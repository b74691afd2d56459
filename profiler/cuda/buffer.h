// Memory on one GPU, freed on that GPU; allocation failures throw CallFailed
// (out_of_memory for cudaErrorMemoryAllocation).
#pragma once

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <cstdint>
#include <utility>

#include "profiler/buffers.h"
#include "profiler/cuda/check.h"

namespace orrery::profiler::cuda {

inline std::int64_t align_up(std::int64_t b) {
  return (b + kRotationAlign - 1) / kRotationAlign * kRotationAlign;
}

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(int device, std::int64_t bytes) : device_(device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    check(cudaMalloc(&ptr_, static_cast<std::size_t>(bytes)),
          fmt::format("cudaMalloc({} B) on GPU {}", bytes, device));
  }
  ~DeviceBuffer() {
    if (!ptr_) return;
    int current = 0;
    (void)cudaGetDevice(&current);
    (void)cudaSetDevice(device_);
    (void)cudaFree(ptr_);
    (void)cudaSetDevice(current);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : device_(o.device_), ptr_(o.ptr_) { o.ptr_ = nullptr; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(device_, o.device_);
    std::swap(ptr_, o.ptr_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  char* get() const { return static_cast<char*>(ptr_); }

 private:
  int device_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace orrery::profiler::cuda
