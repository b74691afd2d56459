#include "profiler/cuda/cuda_device.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <sstream>

#include "profiler/buffers.h"
#include "profiler/cuda/buffer.h"
#include "profiler/cuda/check.h"
#include "profiler/cuda/collectives.h"
#include "profiler/cuda/cupti_timer.h"
#include "profiler/cuda/gemm.h"
#include "profiler/cuda/gpu_common.h"
#include "profiler/cuda/kernels.h"
#include "profiler/cuda/sm_clock.h"
#include "profiler/driver_version.h"

namespace orrery::profiler::cuda {

namespace {

constexpr std::size_t kWorkspaceBytes = 32u << 20;  // cuBLASLt workspace
// A sustained load is launched in batches of about this many seconds of GEMMs: long
// enough that the host's wait per batch is negligible, short enough to end near `load`.
constexpr double kLoadBatch = 0.05;

std::string version3(std::size_t v) {  // major*10000 + minor*100 + patch
  return fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
}

std::string kernel_driver_version() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string v = parse_nvidia_driver_version(ss.str());
  if (!v.empty()) return v;
  int api = 0;
  if (cudaDriverGetVersion(&api) != cudaSuccess) return "unknown";
  return fmt::format("CUDA driver API {}.{}", api / 1000, (api % 1000) / 10);
}

// NCCL communicators over GPUs 0..k-1 with one stream each.
struct Comms {
  std::vector<ncclComm_t> comms;
  std::vector<cudaStream_t> streams;
  ~Comms() {
    for (std::size_t r = 0; r < comms.size(); ++r) {
      if (comms[r]) (void)ncclCommDestroy(comms[r]);
    }
    for (std::size_t r = 0; r < streams.size(); ++r) {
      (void)cudaSetDevice(static_cast<int>(r));
      if (streams[r]) (void)cudaStreamDestroy(streams[r]);
    }
  }
};

class CudaDevice : public Device {
 public:
  explicit CudaDevice(int gpus) {
    info_ = describe_gpu(0, gpus);
    check(cudaSetDevice(0), "cudaSetDevice(0)");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cublasLtCreate(&lt_), "cublasLtCreate");
    workspace_ = DeviceBuffer(0, kWorkspaceBytes);
    unit_scale_ = DeviceBuffer(0, sizeof(float));
    const float one = 1.0f;
    check(cudaMemcpy(unit_scale_.get(), &one, sizeof one, cudaMemcpyHostToDevice),
          "cudaMemcpy(scale)");
  }

  ~CudaDevice() override {
    comms_.clear();
    (void)cudaSetDevice(0);
    if (lt_) (void)cublasLtDestroy(lt_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  DeviceInfo info() const override { return info_; }

  bool supports(Dtype d) const override {
    const int cc = info_.cc_major * 10 + info_.cc_minor;
    switch (d) {
      case Dtype::fp32: return true;
      case Dtype::fp16: return cc >= 70;
      case Dtype::tf32:
      case Dtype::bf16: return cc >= 80;
      case Dtype::fp8: return cc >= 89;  // Ada and Hopper onwards
      case Dtype::fp4: return false;     // not in kGemmDtypes
    }
    return false;
  }

  Timings time_gemm(const GemmCase& c, Repetitions reps) override {
    return guarded([&] {
      check(cudaSetDevice(0), "cudaSetDevice(0)");
      GemmSetup g(*this, c);
      return measure({stream_}, reps, [&](int i) { g.run(i, stream_); });
    });
  }

  // Warm-up as measure(); then the load: repetitions back to back for `load` seconds
  // (host clock), launched in batches of about kLoadBatch seconds kept two deep, so the
  // GPU never waits for the host; then the timed repetitions as measure() times them
  // (each synchronized: a gap of microseconds, assumed too short to lift the clock, which
  // the recorded clock would show), the SM clock read from NVML after each launch, while
  // it runs.
  SustainedTimings time_gemm_sustained(const GemmCase& c, Repetitions reps, Seconds load) override {
    if (!clock_) clock_ = std::make_unique<SmClock>(0);
    std::vector<double> clocks;
    Timings t = guarded([&] {
      check(cudaSetDevice(0), "cudaSetDevice(0)");
      GemmSetup g(*this, c);
      int next = 0;
      for (; next < reps.warmup; ++next) {
        g.run(next, stream_);
        sync({stream_});
      }
      using Clock = std::chrono::steady_clock;
      const auto start = Clock::now();
      g.run(next++, stream_);
      sync({stream_});
      const double one =
          std::max(1e-6, std::chrono::duration<double>(Clock::now() - start).count());
      const int batch = static_cast<int>(std::clamp(kLoadBatch / one, 1.0, 100000.0));
      // The load's kernel records are not kept; records CUPTI dropped among them cost
      // nothing, so that error is ignored here (it still fails the timed part).
      const auto drop_load_records = [&] {
        try {
          timer_.discard();
        } catch (const CallFailed&) {
        }
      };
      Events done;
      const auto launch_batch = [&](int slot) {
        for (int i = 0; i < batch; ++i) g.run(next++, stream_);
        check(cudaEventRecord(done.e[slot], stream_), "cudaEventRecord");
      };
      launch_batch(0);
      auto dropped = Clock::now();
      for (int k = 0; std::chrono::duration<double>(Clock::now() - start).count() < load.value();
           ++k) {
        launch_batch((k + 1) % 2);
        check(cudaEventSynchronize(done.e[k % 2]), "cudaEventSynchronize");
        if (Clock::now() - dropped > std::chrono::seconds(1)) {
          drop_load_records();
          dropped = Clock::now();
        }
      }
      sync({stream_});
      drop_load_records();
      std::vector<std::uint64_t> marks{timer_.mark()};
      for (int i = 0; i < reps.timed; ++i) {
        g.run(next++, stream_);
        if (const auto mhz = clock_->read_mhz()) clocks.push_back(*mhz);
        sync({stream_});
        marks.push_back(timer_.mark());
      }
      return timer_.durations(marks);
    });
    if (auto* e = std::get_if<Failure>(&t)) return *e;
    SustainedGemm out;
    out.durations = std::get<std::vector<Seconds>>(std::move(t));
    if (!clocks.empty()) {
      std::sort(clocks.begin(), clocks.end());
      const std::size_t n = clocks.size();
      out.sm_clock_mhz = n % 2 ? clocks[n / 2] : 0.5 * (clocks[n / 2 - 1] + clocks[n / 2]);
    } else {
      out.clock_unread = clock_->unread().empty() ? "no SM clock read" : clock_->unread();
    }
    return out;
  }

  Timings time_memory_bound(const MemoryBoundCase& c, Repetitions reps) override {
    return guarded([&] {
      check(cudaSetDevice(0), "cudaSetDevice(0)");
      int arrays = 2;
      std::int64_t floats = 0;  // per array
      switch (c.kernel) {
        case MemoryKernel::copy: floats = c.bytes / 8; break;
        case MemoryKernel::elementwise: arrays = 3; floats = c.bytes / 12; break;
        case MemoryKernel::row_reduce: floats = c.bytes / 8; break;
      }
      if (floats <= 0 || floats % 4 != 0 ||
          (c.kernel == MemoryKernel::row_reduce && floats % kRowWidth != 0))
        throw CallFailed{{FailureKind::unsupported, "size is not a whole number of units"}};
      const std::int64_t array = align_up(floats * 4);
      const Rotation rot = rotation_for(arrays * array, l2());
      DeviceBuffer region(0, rot.region());
      fill(region.get(), rot.region(), Dtype::fp32);
      return measure({stream_}, reps, [&](int i) {
        char* base = region.get() + (i % rot.copies) * rot.stride;
        const auto* x = reinterpret_cast<const float*>(base);
        auto* y = reinterpret_cast<float*>(base + array);
        switch (c.kernel) {
          case MemoryKernel::copy: check(launch_copy(x, y, floats, stream_), "copy kernel"); break;
          case MemoryKernel::elementwise:
            check(launch_axpb(1.5f, x, y, reinterpret_cast<float*>(base + 2 * array), floats,
                              stream_),
                  "elementwise kernel");
            break;
          case MemoryKernel::row_reduce:
            check(launch_row_norm(x, y, floats / kRowWidth, stream_), "row_reduce kernel");
            break;
        }
      });
    });
  }

  // Unfused attention per head (column-major, one column per token; P is s_k x s_q).
  // Forward:  S^T = K^T Q (TN), P = softmax(S^T / sqrt(d)) per column with the causal
  //           mask, O = V P (NN).
  // Backward, from the stored P and dO (as unfused implementations keep P):
  //           dV = dO P^T (NT), dP = V^T dO (TN), dS = softmax backward (P, dP),
  //           dQ = K dS (NN), dK = Q dS^T (NT).
  // The GEMMs compute the masked half too, as an unfused implementation does.
  Timings time_attention(const AttentionCase& c, Repetitions reps) override {
    if (c.dtype != Dtype::bf16 && c.dtype != Dtype::fp16)
      return Failure{FailureKind::unsupported,
                     fmt::format("attention in {}: bf16 and fp16 only", to_string(c.dtype))};
    return guarded([&] {
      check(cudaSetDevice(0), "cudaSetDevice(0)");
      const bool bf16 = c.dtype == Dtype::bf16;
      const Dtype gd = c.dtype;
      const int heads = c.batch * c.heads;
      const std::int64_t s = c.seq, d = c.head_dim;
      const std::int64_t qkv = align_up(heads * s * d * 2);
      const std::int64_t sm = align_up(heads * s * s * 2);
      // Per copy: Q, K, V, O (dO), dQ, dK, dV and two s x s buffers (S or P, and dP).
      const int vectors = c.backward ? 7 : 4;
      const int squares = c.backward ? 2 : 1;
      const Rotation rot = rotation_for(vectors * qkv + squares * sm, l2());
      DeviceBuffer region(0, rot.region());
      fill(region.get(), rot.region(), gd);
      const MatmulTypes t = matmul_types(gd);
      const auto plan = [&](MatmulShape shape) {
        return std::make_unique<LtMatmul>(lt_, t, shape, workspace_.get(), kWorkspaceBytes,
                                          nullptr);
      };
      const float scale = 1.0f / std::sqrt(static_cast<float>(d));
      const std::int64_t columns = std::int64_t{heads} * s;
      if (!c.backward) {
        auto scores = plan({s, s, d, true, heads, s * d, s * d, s * s});
        auto output = plan({d, s, s, false, heads, s * d, s * s, s * d});
        return measure({stream_}, reps, [&](int i) {
          char* q = region.get() + (i % rot.copies) * rot.stride;
          char* k = q + qkv;
          char* v = k + qkv;
          char* o = v + qkv;
          char* st = o + qkv;
          scores->run(k, q, st, stream_);
          check(launch_softmax(st, columns, s, scale, c.causal, bf16, stream_), "softmax kernel");
          output->run(v, st, o, stream_);
        });
      }
      auto grad_v = plan({d, s, s, false, heads, s * d, s * s, s * d, true});
      auto grad_p = plan({s, s, d, true, heads, s * d, s * d, s * s});
      auto grad_q = plan({d, s, s, false, heads, s * d, s * s, s * d});
      auto grad_k = plan({d, s, s, false, heads, s * d, s * s, s * d, true});
      return measure({stream_}, reps, [&](int i) {
        char* q = region.get() + (i % rot.copies) * rot.stride;
        char* k = q + qkv;
        char* v = k + qkv;
        char* d_o = v + qkv;
        char* dq = d_o + qkv;
        char* dk = dq + qkv;
        char* dv = dk + qkv;
        char* p = dv + qkv;
        char* dp = p + sm;
        grad_v->run(d_o, p, dv, stream_);
        grad_p->run(v, d_o, dp, stream_);
        check(launch_softmax_backward(p, dp, columns, s, scale, bf16, stream_),
              "softmax backward kernel");
        grad_q->run(k, dp, dq, stream_);
        grad_k->run(q, dp, dk, stream_);
      });
    });
  }

  Timings time_launch(Repetitions reps) override {
    return guarded([&] {
      check(cudaSetDevice(0), "cudaSetDevice(0)");
      return measure({stream_}, reps,
                     [&](int) { check(launch_empty(stream_), "empty kernel"); });
    });
  }

  Timings time_collective(const CollectiveCase& c, Repetitions reps) override {
    return guarded([&] {
      if (c.nodes != 1)
        throw CallFailed{{FailureKind::unsupported, "multi-node collectives are not built"}};
      if (c.gpus < 2 || c.gpus > info_.gpu_count)
        throw CallFailed{{FailureKind::unsupported,
                          fmt::format("{} GPUs asked, {} present", c.gpus, info_.gpu_count)}};
      Comms& g = comms_for(c.gpus);
      const int n = c.gpus;
      const CollectiveBuffers bufs = collective_buffers(c.op, n, c.bytes);
      const std::int64_t send_al = align_up(bufs.send);
      const Rotation rot = rotation_for(send_al + align_up(bufs.recv), l2());
      std::vector<DeviceBuffer> regions;
      regions.reserve(n);
      for (int r = 0; r < n; ++r) {
        regions.emplace_back(r, rot.region());
        fill(regions.back().get(), rot.region(), Dtype::fp32, r);
      }
      return measure(g.streams, reps, [&](int i) {
        const std::int64_t off = (i % rot.copies) * rot.stride;
        check(ncclGroupStart(), "ncclGroupStart");
        try {
          for (int r = 0; r < n; ++r) {
            char* base = regions[r].get() + off;
            launch_collective(c, base, base + send_al, r, g.comms[r], g.streams[r]);
          }
        } catch (...) {
          (void)ncclGroupEnd();  // never leave a group open for the next case
          throw;
        }
        check(ncclGroupEnd(), "ncclGroupEnd");
      });
    });
  }

 private:
  // One GEMM case's operands (rotating buffers, filled) and its planned matmul, on GPU 0
  // (the caller selects it).
  struct GemmSetup {
    GemmSetup(CudaDevice& dev, const GemmCase& c)
        : a(align_up(c.m * c.k * gemm_input_bytes(c.dtype))),
          b(align_up(c.k * c.n * gemm_input_bytes(c.dtype))),
          d(align_up(c.m * c.n * gemm_output_bytes(c.dtype))),
          rot(rotation_for(a + b + d, dev.l2())),
          region(0, rot.region()),
          mm(dev.lt_, matmul_types(c.dtype, c.accumulation), {c.m, c.n, c.k, true, 1, 0, 0, 0},
             dev.workspace_.get(), kWorkspaceBytes,
             reinterpret_cast<const float*>(dev.unit_scale_.get())) {
      fill(region.get(), rot.region(), c.dtype);
    }
    void run(int i, cudaStream_t stream) {
      char* base = region.get() + (i % rot.copies) * rot.stride;
      mm.run(base, base + a, base + a + b, stream);
    }
    std::int64_t a, b, d;
    Rotation rot;
    DeviceBuffer region;
    LtMatmul mm;
  };

  // Two events without timing, destroyed with the scope.
  struct Events {
    cudaEvent_t e[2] = {nullptr, nullptr};
    Events() {
      for (auto& x : e)
        check(cudaEventCreateWithFlags(&x, cudaEventDisableTiming), "cudaEventCreate");
    }
    ~Events() {
      for (auto x : e)
        if (x) (void)cudaEventDestroy(x);
    }
  };

  // Runs `body`, turning a failed call into the case's Failure.
  template <class Body>
  Timings guarded(Body&& body) {
    try {
      return body();
    } catch (const CallFailed& e) {
      return e.failure;
    } catch (const std::bad_alloc&) {
      return Failure{FailureKind::out_of_memory, "host memory"};
    }
  }

  // Warm-up, then timed repetitions, each followed by a synchronization of every stream
  // and a mark of the CUPTI clock. `rep(i)` launches repetition i (warm-up ones first),
  // and picks its rotating buffers from i.
  template <class Rep>
  std::vector<Seconds> measure(const std::vector<cudaStream_t>& streams, Repetitions reps, Rep&& rep) {
    for (int i = 0; i < reps.warmup; ++i) {
      rep(i);
      sync(streams);
    }
    sync(streams);
    timer_.discard();
    std::vector<std::uint64_t> marks{timer_.mark()};
    for (int i = 0; i < reps.timed; ++i) {
      rep(reps.warmup + i);
      sync(streams);
      marks.push_back(timer_.mark());
    }
    return timer_.durations(marks);
  }

  static void sync(const std::vector<cudaStream_t>& streams) {
    for (cudaStream_t s : streams) check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  }

  static void fill(char* data, std::int64_t bytes, Dtype t, std::uint32_t seed = 0) {
    fill_buffer(data, bytes, t, seed);
  }

  std::int64_t l2() const { return static_cast<std::int64_t>(info_.l2_cache.value()); }

  Comms& comms_for(int gpus) {
    if (auto it = comms_.find(gpus); it != comms_.end()) return *it->second;
    auto g = std::make_unique<Comms>();
    g->comms.assign(gpus, nullptr);
    std::vector<int> devices(gpus);
    for (int r = 0; r < gpus; ++r) devices[r] = r;
    check(ncclCommInitAll(g->comms.data(), gpus, devices.data()),
          fmt::format("ncclCommInitAll({} GPUs)", gpus), FailureKind::unavailable);
    g->streams.assign(gpus, nullptr);
    for (int r = 0; r < gpus; ++r) {
      check(cudaSetDevice(r), "cudaSetDevice");
      check(cudaStreamCreateWithFlags(&g->streams[r], cudaStreamNonBlocking), "cudaStreamCreate");
    }
    check(cudaSetDevice(0), "cudaSetDevice(0)");
    return *comms_.emplace(gpus, std::move(g)).first->second;
  }

  CuptiTimer timer_;  // first: activity is enabled before any kernel runs
  DeviceInfo info_;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  DeviceBuffer workspace_, unit_scale_;
  std::map<int, std::unique_ptr<Comms>> comms_;
  std::unique_ptr<SmClock> clock_;  // NVML, opened by the first sustained GEMM
};

}  // namespace

void fill_buffer(char* data, std::int64_t bytes, Dtype t, std::uint32_t seed) {
  const int size = gemm_input_bytes(t);
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(launch_fill(data, bytes / size, t, seed, nullptr), "fill kernel");
  check(cudaDeviceSynchronize(), fmt::format("filling buffers on GPU {}", device));
}

DeviceInfo describe_gpu(int device, int gpu_count) {
  DeviceInfo info;
  info.gpu_count = gpu_count;
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  info.gpu = p.name;
  info.sm_count = p.multiProcessorCount;
  info.memory = Bytes(static_cast<double>(p.totalGlobalMem));
  info.l2_cache = Bytes(static_cast<double>(p.l2CacheSize));
  info.cc_major = p.major;
  info.cc_minor = p.minor;
  int khz = 0;
  check(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device),
        "cudaDeviceGetAttribute(ClockRate)");
  info.sm_clock_mhz = khz / 1000;
  check(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device),
        "cudaDeviceGetAttribute(MemoryClockRate)");
  info.memory_clock_mhz = khz / 1000;
  info.driver = kernel_driver_version();
  int v = 0;
  check(cudaRuntimeGetVersion(&v), "cudaRuntimeGetVersion");
  info.cuda_runtime = fmt::format("{}.{}", v / 1000, (v % 1000) / 10);
  info.cublas = version3(cublasLtGetVersion());
  int nccl = 0;
  check(ncclGetVersion(&nccl), "ncclGetVersion");
  info.nccl = version3(static_cast<std::size_t>(nccl));
  info.cudnn = "none";
  info.timing = "cupti";
  info.attention = AttentionImpl::unfused;
  return info;
}

std::unique_ptr<Device> open_cuda_device() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess)
    throw DeviceUnavailable(fmt::format("cudaGetDeviceCount: {}", cudaGetErrorString(e)));
  if (count == 0) throw DeviceUnavailable("cudaGetDeviceCount found no CUDA GPU");
  try {
    return std::make_unique<CudaDevice>(count);
  } catch (const CallFailed& f) {
    throw DeviceUnavailable(f.failure.message);
  }
}

}  // namespace orrery::profiler::cuda
