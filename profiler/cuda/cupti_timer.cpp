#include "profiler/cuda/cupti_timer.h"

#include <cupti.h>
#include <fmt/format.h>

#include <cstdlib>

#include "profiler/cuda/check.h"

namespace orrery::profiler::cuda {

namespace {

// CUPTI calls these from its own threads; they only touch what the mutex guards.
std::mutex g_mutex;
std::vector<KernelRecord> g_records;
std::size_t g_dropped = 0;

constexpr std::size_t kBufferBytes = 8u << 20;
constexpr std::size_t kBufferAlign = 8;  // CUPTI requires 8-byte aligned buffers

void CUPTIAPI buffer_requested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlign, kBufferBytes));
  *size = *buffer ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI buffer_completed(CUcontext ctx, uint32_t stream, uint8_t* buffer, size_t /*size*/,
                               size_t valid) {
  std::vector<KernelRecord> found;
  CUpti_Activity* record = nullptr;
  // Ends with CUPTI_ERROR_MAX_LIMIT_REACHED at the end of the valid bytes.
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL &&
        record->kind != CUPTI_ACTIVITY_KIND_KERNEL)
      continue;
    // Records are packed: copy the fields by value, never bind references to them.
    const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    KernelRecord r;
    r.start_ns = k->start;
    r.end_ns = k->end;
    r.device = k->deviceId;
    found.push_back(r);
  }
  size_t dropped = 0;
  if (cuptiActivityGetNumDroppedRecords(ctx, stream, &dropped) != CUPTI_SUCCESS) dropped = 0;
  std::free(buffer);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_records.insert(g_records.end(), found.begin(), found.end());
  g_dropped += dropped;
}

}  // namespace

CuptiTimer::CuptiTimer() {
  check(cuptiActivityRegisterCallbacks(buffer_requested, buffer_completed),
        "cuptiActivityRegisterCallbacks");
  check(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL),
        "cuptiActivityEnable(CONCURRENT_KERNEL)");
}

CuptiTimer::~CuptiTimer() {
  (void)cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
  (void)cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL);
}

std::vector<KernelRecord> CuptiTimer::flush() {
  check(cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED), "cuptiActivityFlushAll");
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<KernelRecord> out;
  out.swap(g_records);
  if (g_dropped > 0) {
    const std::size_t dropped = g_dropped;
    g_dropped = 0;
    throw CallFailed{{FailureKind::device_error,
                      fmt::format("CUPTI dropped {} activity records", dropped)}};
  }
  return out;
}

void CuptiTimer::discard() { (void)flush(); }

std::uint64_t CuptiTimer::mark() const {
  std::uint64_t t = 0;
  check(cuptiGetTimestamp(&t), "cuptiGetTimestamp");
  return t;
}

std::vector<Seconds> CuptiTimer::durations(const std::vector<std::uint64_t>& marks) {
  auto d = window_durations(flush(), marks);
  if (auto* why = std::get_if<std::string>(&d))
    throw CallFailed{{FailureKind::device_error, "CUPTI: " + *why}};
  return std::get<std::vector<Seconds>>(d);
}

}  // namespace orrery::profiler::cuda
