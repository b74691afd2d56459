#include "profiler/cuda/mpi_device.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <mpi.h>
#include <nccl.h>

#include <optional>

#include "profiler/buffers.h"
#include "profiler/cuda/buffer.h"
#include "profiler/cuda/check.h"
#include "profiler/cuda/collectives.h"
#include "profiler/cuda/cupti_timer.h"
#include "profiler/cuda/gpu_common.h"

namespace orrery::profiler::cuda {

namespace {

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw CallFailed{{FailureKind::device_error, fmt::format("{}: {}", what, text)}};
}

// The failure every rank reports: the most severe kind any rank saw (the enum's order),
// with this rank's own message when it failed itself.
std::optional<Failure> agree(const std::optional<Failure>& mine) {
  const int local = mine ? static_cast<int>(mine->kind) + 1 : 0;
  int worst = 0;
  mpi_check(MPI_Allreduce(&local, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
  if (worst == 0) return std::nullopt;
  const auto kind = static_cast<FailureKind>(worst - 1);
  if (mine && mine->kind == kind) return mine;
  return Failure{kind, "on another rank"};
}

class MpiDevice : public Device {
 public:
  MpiDevice() {
    int initialized = 0;
    mpi_check(MPI_Initialized(&initialized), "MPI_Initialized");
    if (!initialized) {
      mpi_check(MPI_Init(nullptr, nullptr), "MPI_Init");
      owns_mpi_ = true;
    }
    mpi_check(MPI_Comm_rank(MPI_COMM_WORLD, &rank_), "MPI_Comm_rank");
    mpi_check(MPI_Comm_size(MPI_COMM_WORLD, &world_), "MPI_Comm_size");
    MPI_Comm local = MPI_COMM_NULL;
    mpi_check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
              "MPI_Comm_split_type");
    int local_rank = 0;
    mpi_check(MPI_Comm_rank(local, &local_rank), "MPI_Comm_rank(local)");
    mpi_check(MPI_Comm_free(&local), "MPI_Comm_free");
    const int leader = local_rank == 0 ? 1 : 0;
    int nodes = 0;
    mpi_check(MPI_Allreduce(&leader, &nodes, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");

    // Every rank must get this far, or none goes on to NCCL.
    std::optional<Failure> failed;
    try {
      int count = 0;
      check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
      if (count == 0) throw CallFailed{{FailureKind::unavailable, "no CUDA GPU on this host"}};
      gpu_ = local_rank % count;
      timer_.emplace();
      info_ = describe_gpu(gpu_, world_);
      info_.nodes = nodes;
      check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    } catch (const CallFailed& e) {
      failed = e.failure;
    }
    if (auto f = agree(failed)) {
      release();
      throw DeviceUnavailable(fmt::format("rank {}: {}", rank_, f->message));
    }

    ncclUniqueId id{};
    std::optional<Failure> nccl_failed;
    try {
      if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId", FailureKind::unavailable);
    } catch (const CallFailed& e) {
      nccl_failed = e.failure;
    }
    if (auto f = agree(nccl_failed)) {
      nccl_failure_ = f;
      return;
    }
    mpi_check(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    try {
      check(cudaSetDevice(gpu_), "cudaSetDevice");
      check(ncclCommInitRank(&comm_, world_, id, rank_),
            fmt::format("ncclCommInitRank({} ranks)", world_), FailureKind::unavailable);
    } catch (const CallFailed& e) {
      nccl_failed = e.failure;
    }
    nccl_failure_ = agree(nccl_failed);
  }

  ~MpiDevice() override { release(); }

  DeviceInfo info() const override { return info_; }
  bool is_primary() const override { return rank_ == 0; }
  bool supports(Dtype) const override { return false; }

  Timings time_gemm(const GemmCase&, Repetitions) override { return collectives_only(); }
  Timings time_memory_bound(const MemoryBoundCase&, Repetitions) override {
    return collectives_only();
  }
  Timings time_attention(const AttentionCase&, Repetitions) override { return collectives_only(); }
  Timings time_launch(Repetitions) override { return collectives_only(); }

  Timings time_collective(const CollectiveCase& c, Repetitions reps) override {
    if (nccl_failure_) return *nccl_failure_;
    if (c.gpus != world_)
      return Failure{FailureKind::unsupported,
                     fmt::format("an MPI run measures {} ranks, not {}", world_, c.gpus)};
    // Allocate and fill everywhere first; go on only if every rank could.
    const CollectiveBuffers bufs = collective_buffers(c.op, c.gpus, c.bytes);
    const std::int64_t send_al = align_up(bufs.send);
    const Rotation rot = rotation_for(send_al + align_up(bufs.recv),
                                      static_cast<std::int64_t>(info_.l2_cache.value()));
    DeviceBuffer region;
    std::optional<Failure> failed;
    try {
      region = DeviceBuffer(gpu_, rot.region());
      fill_buffer(region.get(), rot.region(), Dtype::fp32, static_cast<std::uint32_t>(rank_));
    } catch (const CallFailed& e) {
      failed = e.failure;
    }
    if (auto f = agree(failed)) return *f;

    // A failed launch leaves the other ranks inside NCCL waiting for this one; that is
    // the one failure an MPI run cannot recover from, as in nccl-tests.
    std::vector<double> spans;
    failed.reset();
    try {
      const auto rep = [&](int i) {
        mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
        char* base = region.get() + (i % rot.copies) * rot.stride;
        launch_collective(c, base, base + send_al, rank_, comm_, stream_);
        check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      };
      for (int i = 0; i < reps.warmup; ++i) rep(i);
      timer_->discard();
      std::vector<std::uint64_t> marks{timer_->mark()};
      for (int i = 0; i < reps.timed; ++i) {
        rep(reps.warmup + i);
        marks.push_back(timer_->mark());
      }
      for (Seconds s : timer_->durations(marks)) spans.push_back(s.value());
    } catch (const CallFailed& e) {
      failed = e.failure;
    }
    if (auto f = agree(failed)) return *f;
    mpi_check(MPI_Allreduce(MPI_IN_PLACE, spans.data(), static_cast<int>(spans.size()),
                            MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD),
              "MPI_Allreduce(MAX)");
    std::vector<Seconds> out;
    for (double s : spans) out.emplace_back(s);
    return out;
  }

 private:
  static Timings collectives_only() {
    return Failure{FailureKind::unsupported, "an MPI run measures collectives only"};
  }

  void release() {
    if (comm_) (void)ncclCommDestroy(comm_);
    comm_ = nullptr;
    if (stream_) (void)cudaStreamDestroy(stream_);
    stream_ = nullptr;
    timer_.reset();
    if (owns_mpi_) {
      int finalized = 0;
      (void)MPI_Finalized(&finalized);
      if (!finalized) (void)MPI_Finalize();
      owns_mpi_ = false;
    }
  }

  bool owns_mpi_ = false;
  int rank_ = 0, world_ = 1, gpu_ = 0;
  std::optional<CuptiTimer> timer_;
  DeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::optional<Failure> nccl_failure_;
};

}  // namespace

std::unique_ptr<Device> open_mpi_device() {
  try {
    return std::make_unique<MpiDevice>();
  } catch (const CallFailed& f) {
    throw DeviceUnavailable(f.failure.message);
  }
}

}  // namespace orrery::profiler::cuda
