#include "calibrate/kernel_classes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>

namespace orrery {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
bool has(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// PyTorch's Input type strings ("c10::BFloat16", "c10::Half", "float") and the dtype names
// of record_param_comms ("BFloat16", "Half", "Float": c10::toString(ScalarType)).
std::optional<Dtype> dtype_of(const std::string& t) {
  if (t == "c10::BFloat16" || t == "BFloat16") return Dtype::bf16;
  if (t == "c10::Half" || t == "Half") return Dtype::fp16;
  if (t == "float" || t == "Float") return Dtype::fp32;
  return std::nullopt;
}
double element_bytes(const std::string& t) {
  if (t == "c10::BFloat16" || t == "c10::Half" || t == "BFloat16" || t == "Half") return 2;
  if (t == "float" || t == "Float" || t == "int" || t == "Int") return 4;
  if (t == "double" || t == "Double" || t == "long int" || t == "Long") return 8;
  if (t == "c10::Float8_e4m3fn" || t == "c10::Float8_e5m2" || t == "unsigned char" ||
      t == "signed char" || t == "bool" || t == "Byte" || t == "Char" || t == "Bool")
    return 1;
  return 0;  // unknown: the op is not sized
}
double elements(const std::vector<std::int64_t>& shape) {
  double n = 1;
  for (const auto x : shape) n *= static_cast<double>(x);
  return n;
}

// Sizes a profile can hold and read back (calibrate/profile_reader.cpp reads dimensions up
// to 2^40); anything larger is not a real kernel's and is left unsized.
constexpr double kMaxDim = 1099511627776.0;  // 2^40
constexpr double kMaxSize = 1e24;            // FLOPs or bytes
bool sane(double x, double limit) { return std::isfinite(x) && x > 0 && x <= limit; }

// aten::mm (A[m,k] B[k,n]), aten::addmm (bias, A, B) and aten::linear (x[..., k],
// W[n, k], bias): the PyTorch signatures (native_functions.yaml).
std::optional<std::pair<Dtype, GemmShape>> gemm_shape(const TraceKernel& k) {
  if (k.dims.size() < 2 || k.types.empty()) return std::nullopt;
  GemmShape s;
  std::size_t a = 0;
  if (k.op == "aten::mm" || k.op == "aten::addmm") {
    a = k.op == "aten::addmm" ? 1 : 0;
    if (k.dims.size() < a + 2) return std::nullopt;
    const auto& x = k.dims[a];
    const auto& y = k.dims[a + 1];
    if (x.size() != 2 || y.size() != 2 || x[1] != y[0]) return std::nullopt;
    s = {x[0], y[1], x[1]};
  } else if (k.op == "aten::linear") {
    const auto& x = k.dims[0];
    const auto& w = k.dims[1];
    if (x.empty() || w.size() != 2 || x.back() != w[1] || x.back() <= 0) return std::nullopt;
    const double m = elements(x) / static_cast<double>(x.back());
    if (!sane(m, kMaxDim)) return std::nullopt;
    s = {static_cast<std::int64_t>(m), w[0], w[1]};
  } else {
    return std::nullopt;
  }
  if (!sane(static_cast<double>(s.m), kMaxDim) || !sane(static_cast<double>(s.n), kMaxDim) ||
      !sane(static_cast<double>(s.k), kMaxDim) || k.types.size() <= a)
    return std::nullopt;
  const auto d = dtype_of(k.types[a]);
  if (!d) return std::nullopt;
  return std::pair{*d, s};
}

// PyTorch's scaled_dot_product_* ops take query (B, H, L, E) and key (B, H_kv, S, E)
// (torch.nn.functional.scaled_dot_product_attention's documented shapes); the backward
// ops (aten::_scaled_dot_product_*_attention_backward) take grad_out first, then query
// and key. FLOPs of the full product: Q K^T and P V, 2 x 2 B H L S E.
std::optional<std::tuple<Dtype, double, bool>> attention_of(const TraceKernel& k) {
  const std::string name = lower(k.name), op = lower(k.op);
  const bool by_name = has(name, "flash") || has(name, "fmha");
  const bool sdpa = has(op, "scaled_dot_product");
  if (!by_name && !sdpa) return std::nullopt;
  if (!sdpa) return std::nullopt;  // sized only through the SDPA op's Input Dims
  const bool backward = has(op, "backward") || has(name, "bwd") || has(name, "backward");
  const std::size_t q = backward ? 1 : 0;
  if (k.dims.size() < q + 2 || k.types.size() <= q) return std::nullopt;
  const auto& qd = k.dims[q];
  const auto& kd = k.dims[q + 1];
  if (qd.size() != 4 || kd.size() != 4) return std::nullopt;
  const auto d = dtype_of(k.types[q]);
  if (!d) return std::nullopt;
  const double flops = 4.0 * static_cast<double>(qd[0]) * static_cast<double>(qd[1]) *
                       static_cast<double>(qd[2]) * static_cast<double>(kd[2]) *
                       static_cast<double>(qd[3]);
  if (!sane(flops, kMaxSize)) return std::nullopt;
  return std::tuple{*d, flops, backward};
}

// Memory-bound classes by kernel name (PyTorch's and Apex's kernel names:
// "vectorized_layer_norm_kernel", "cunn_SoftMaxForward", "vectorized_elementwise_kernel").
std::optional<std::string> memory_class(const TraceKernel& k) {
  const std::string name = lower(k.name);
  if (has(name, "layer_norm") || has(name, "layernorm") || has(name, "rms_norm") ||
      has(name, "rmsnorm"))
    return "norm";
  if (has(name, "softmax")) return "softmax";
  if (has(name, "elementwise")) return "elementwise";
  return std::nullopt;
}

// Inputs read plus one output the size of the first input.
std::optional<double> op_bytes(const TraceKernel& k) {
  if (k.dims.empty() || k.types.size() < k.dims.size()) return std::nullopt;
  double b = 0;
  for (std::size_t i = 0; i < k.dims.size(); ++i) {
    if (k.dims[i].empty()) continue;  // scalars
    const double e = element_bytes(k.types[i]);
    if (e <= 0) return std::nullopt;
    b += e * elements(k.dims[i]);
  }
  const double first = element_bytes(k.types[0]) * elements(k.dims[0]);
  return sane(b + first, kMaxSize) ? std::optional<double>(b + first) : std::nullopt;
}

// NCCL kernels: "ncclKernel_AllReduce_..." / "ncclDevKernel_AllReduce_..." and the
// collective named by record_param_comms ("allreduce", "_allgather_base",
// "_reduce_scatter_base", "all_to_all", "broadcast", "send", "recv").
std::optional<CollectiveOp> collective_of(const TraceKernel& k) {
  if (k.name.rfind("ncclKernel_", 0) != 0 && k.name.rfind("ncclDevKernel_", 0) != 0)
    return std::nullopt;
  const std::string n = lower(k.name);
  if (has(n, "allreduce")) return CollectiveOp::all_reduce;
  if (has(n, "allgather")) return CollectiveOp::all_gather;
  if (has(n, "reducescatter")) return CollectiveOp::reduce_scatter;
  if (has(n, "broadcast")) return CollectiveOp::broadcast;
  // NCCL runs every point-to-point transfer, and the all-to-all PyTorch builds from grouped
  // sends and receives, as its SendRecv kernel (ncclDevKernel_SendRecv); the collective
  // record_param_comms names tells them apart. A pipeline transfer (send, recv) is one
  // send_recv between two GPUs; an all-to-all keeps its group.
  if (has(n, "sendrecv")) {
    if (k.collective == "send" || k.collective == "recv") return CollectiveOp::send_recv;
    if (lower(k.collective).find("all_to_all") != std::string::npos)
      return CollectiveOp::all_to_all;
  }
  return std::nullopt;
}

}  // namespace

int group_nodes(const std::vector<std::int64_t>& ranks, int gpus_per_node) {
  if (ranks.empty() || gpus_per_node < 1) return 0;
  std::set<std::int64_t> nodes;
  for (const std::int64_t r : ranks) nodes.insert(r / gpus_per_node);
  return static_cast<int>(nodes.size());
}

bool is_optimizer_kernel(const TraceKernel& k) {
  const std::string name = lower(k.name);
  if (has(name, "multi_tensor_apply_kernel") && has(name, "adam")) return true;
  return k.op == "aten::_fused_adam_" || k.op == "aten::_fused_adamw_" ||
         k.op == "aten::_amp_foreach_non_finite_check_and_unscale_";
}

OptimizerKernels optimizer_kernels(const KinetoTrace& t) {
  OptimizerKernels o;
  double time = 0;
  for (const TraceKernel& k : t.kernels) {
    if (!is_optimizer_kernel(k)) continue;
    if (o.kernels++ == 0) o.first = k.name, o.op = k.op;
    time += k.duration.value();
  }
  o.time = Seconds(time);
  return o;
}

std::vector<MeasuredKernel> measured_kernels(const KinetoTrace& t, int gpus_per_node) {
  // One call: the kernels of one CPU op call (External id), or a lone kernel.
  struct Call {
    const TraceKernel* first = nullptr;
    double time = 0;
  };
  std::vector<Call> calls;
  std::map<std::int64_t, std::size_t> by_id;
  for (const TraceKernel& k : t.kernels) {
    if (k.op_id && !k.op.empty()) {
      const auto [it, fresh] = by_id.emplace(*k.op_id, calls.size());
      if (fresh) calls.push_back({&k, 0});
      calls[it->second].time += k.duration.value();
    } else {
      calls.push_back({&k, k.duration.value()});
    }
  }
  // Entries keyed by everything that tells them apart, in first-appearance order.
  std::map<std::string, std::size_t> index;
  std::vector<MeasuredKernel> out;
  std::vector<std::vector<double>> times;
  auto add = [&](MeasuredKernel e, double time) {
    const std::string key =
        fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", e.cls, e.pass, to_string(e.dtype),
                    e.shape.m, e.shape.n, e.shape.k, e.flops, e.bytes, e.ranks, e.nodes,
                    to_string(e.collective), e.op, e.kernel);
    const auto [it, fresh] = index.emplace(key, out.size());
    if (fresh) {
      e.file = t.file;
      e.gpu = t.gpu;
      out.push_back(std::move(e));
      times.emplace_back();
    }
    times[it->second].push_back(time);
  };
  for (const Call& c : calls) {
    const TraceKernel& k = *c.first;
    if (is_optimizer_kernel(k)) continue;  // optimizer_kernels: sized by the traced scenario
    MeasuredKernel e;
    e.kernel = k.name;
    e.op = k.op;
    if (const auto op = collective_of(k)) {
      const double eb = element_bytes(k.comm_dtype);
      // The message an all-gather's rank sends is its input; the other collectives' size is
      // their input buffer (nccl-tests' "size" convention: the all-gather's output).
      const std::int64_t n = *op == CollectiveOp::all_gather ? k.out_nelems : k.in_nelems;
      if (eb <= 0) continue;
      if (n <= 0 || k.group_size < 2 || !sane(eb * static_cast<double>(n), kMaxSize)) continue;
      e.cls = "collective";
      e.collective = *op;
      e.ranks = k.group_size;
      e.nodes = group_nodes(k.group_ranks, gpus_per_node);
      if (*op == CollectiveOp::send_recv) {
        // A send or receive is between the traced rank and its peer, whatever the size of
        // the group it was issued in (the pipeline group): two GPUs, on one node or two.
        e.ranks = 2;
        e.nodes = t.rank >= 0 && k.peer >= 0 && t.rank != k.peer
                      ? group_nodes({t.rank, k.peer}, gpus_per_node)
                      : 0;
      }
      e.bytes = eb * static_cast<double>(n);
      add(e, c.time);
    } else if (const auto g = gemm_shape(k)) {
      e.cls = "gemm";
      e.dtype = g->first;
      e.shape = g->second;
      e.flops = gemm_flops(e.shape);
      add(e, c.time);
    } else if (const auto a = attention_of(k)) {
      e.cls = "attention";
      e.dtype = std::get<0>(*a);
      e.flops = std::get<1>(*a);
      e.pass = std::get<2>(*a) ? "backward" : "forward";
      add(e, c.time);
    } else if (const auto m = memory_class(k)) {
      const auto b = op_bytes(k);
      if (!b) continue;
      e.cls = *m;
      e.bytes = *b;
      add(e, c.time);
    }
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::vector<double>& v = times[i];
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    out[i].calls = static_cast<int>(n);
    out[i].time = Seconds(n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
  }
  static const char* kOrder[] = {"gemm",    "attention",   "norm",
                                 "softmax", "elementwise", "collective"};
  auto rank = [](const std::string& c) {
    return std::find(std::begin(kOrder), std::end(kOrder), c) - std::begin(kOrder);
  };
  std::stable_sort(out.begin(), out.end(), [&](const MeasuredKernel& a, const MeasuredKernel& b) {
    return rank(a.cls) < rank(b.cls);
  });
  return out;
}

}  // namespace orrery
