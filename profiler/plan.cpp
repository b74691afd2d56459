#include "profiler/plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "profiler/buffers.h"
#include "scenario/load.h"

namespace orrery::profiler {

const char* to_string(Section s) {
  switch (s) {
    case Section::gemm: return "gemm";
    case Section::memory_bound: return "memory_bound";
    case Section::attention: return "attention";
    case Section::launch: return "launch";
    case Section::collectives: return "collectives";
  }
  return "?";
}

namespace {

constexpr std::int64_t KiB = 1024, MiB = KiB * KiB, GiB = MiB * KiB;

// A preset's resolved ModelSpec, through the scenario reader so that preset defaults
// (kv_heads = heads, ...) apply exactly as in a scenario.
ModelSpec load_model(const std::string& preset) {
  const std::string yaml = "cluster: {preset: dgx-h100, nodes: 1}\nmodel: {preset: " + preset +
                           "}\nparallelism: {dp: 8, global_batch: 8}\n";
  return load_scenario_text(yaml, "model preset " + preset).model;
}

void add_linear(std::set<LinearShape>& out, std::int64_t m, std::int64_t n, std::int64_t k,
                bool with_backward) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  out.insert({m, n, k});
  if (with_backward) {
    out.insert({m, k, n});  // input gradient dX = dY W^T
    out.insert({k, n, m});  // weight gradient dW = X^T dY
  }
}

void add_model(std::set<LinearShape>& out, const ModelSpec& s, int tp, bool with_backward) {
  if (!s.is_transformer()) return;
  const std::int64_t T = s.seq_len;
  const std::int64_t h = s.hidden;
  if (!s.mla) {
    const std::int64_t qkv = (s.heads + 2 * std::int64_t{s.kv_heads}) * s.head_dim();
    add_linear(out, T, qkv / tp, h, with_backward);
    add_linear(out, T, h, s.heads * s.head_dim() / tp, with_backward);
  }
  const int up_factor = s.activation == Activation::swiglu ? 2 : 1;
  const bool dense_ffn = !s.moe || s.moe->first_dense_layers > 0;
  if (dense_ffn && s.ffn > 0) {
    add_linear(out, T, up_factor * s.ffn / tp, h, with_backward);
    add_linear(out, T, h, s.ffn / tp, with_backward);
  }
  if (s.moe && s.moe->experts > 0) {
    const std::int64_t tokens = T * s.moe->top_k / s.moe->experts;
    add_linear(out, tokens, up_factor * s.moe->expert_ffn / tp, h, with_backward);
    add_linear(out, tokens, h, s.moe->expert_ffn / tp, with_backward);
  }
  add_linear(out, T, s.vocab / tp, h, with_backward);
}

}  // namespace

std::vector<LinearShape> preset_gemm_shapes(const std::string& preset, int tp,
                                            bool with_backward) {
  std::set<LinearShape> out;
  add_model(out, load_model(preset), tp, with_backward);
  return {out.begin(), out.end()};
}

std::vector<LinearShape> preset_gemm_shapes(int tp, bool with_backward) {
  std::set<LinearShape> out;
  for (const auto& name : model_preset_names()) add_model(out, load_model(name), tp, with_backward);
  return {out.begin(), out.end()};
}

Plan make_plan(const PlanOptions& o) {
  Plan p;
  p.gemm_sustained = o.gemm_sustained;
  const auto want = [&](Section s) { return o.sections.count(s) > 0; };

  if (want(Section::gemm)) {
    std::set<LinearShape> shapes;
    const std::vector<std::int64_t> square =
        o.quick ? std::vector<std::int64_t>{1024, 4096, 8192}
                : std::vector<std::int64_t>{256, 512, 1024, 2048, 4096, 8192, 16384};
    if (o.gemm_shapes) {
      shapes.insert(o.gemm_shapes->begin(), o.gemm_shapes->end());
    } else {
      for (auto s : square) shapes.insert({s, s, s});
    }
    if (o.gemm_shapes) {
      // As given: no preset shapes.
    } else if (o.quick) {
      for (const auto& l : preset_gemm_shapes("llama3-8b", 1, false)) shapes.insert(l);
    } else {
      for (int tp : {1, 8})
        for (const auto& l : preset_gemm_shapes(tp, true)) shapes.insert(l);
    }
    for (Dtype d : kGemmDtypes) {
      if (!o.dtypes.count(d)) continue;
      for (const auto& l : shapes) {
        // The quick sweep times preset shapes in bf16 only, the squares in every type.
        if (o.quick && !o.gemm_shapes && d != Dtype::bf16 && !(l.m == l.n && l.n == l.k)) continue;
        if (d != Dtype::fp8) {
          p.gemm.push_back({d, l.m, l.n, l.k});
          continue;
        }
        for (Fp8Accumulation a : kAllFp8Accumulations)
          if (o.fp8_accumulation.count(a)) p.gemm.push_back({d, l.m, l.n, l.k, a});
      }
    }
  }

  if (want(Section::memory_bound)) {
    std::vector<std::int64_t> sizes;
    if (o.quick) {
      sizes = {MiB, 64 * MiB, GiB};
    } else {
      for (std::int64_t b = 4 * KiB; b <= 4 * GiB; b *= 4) sizes.push_back(b);
    }
    for (MemoryKernel k : {MemoryKernel::copy, MemoryKernel::elementwise, MemoryKernel::row_reduce})
      for (auto b : sizes)
        if (const std::int64_t real = memory_bound_bytes(k, b); real > 0)
          p.memory_bound.push_back({k, real});
  }

  if (want(Section::attention)) {
    // Llama-style heads (32 x 128) and GPT-2/BERT-style (16 x 64); 8192 tokens per batch
    // where the sequence is shorter.
    const std::vector<std::int64_t> seqs =
        o.quick ? std::vector<std::int64_t>{2048, 4096}
                : std::vector<std::int64_t>{512, 1024, 2048, 4096, 8192};
    const std::vector<Dtype> dtypes = o.quick ? std::vector<Dtype>{Dtype::bf16}
                                              : std::vector<Dtype>{Dtype::bf16, Dtype::fp16};
    const std::vector<std::pair<int, int>> heads =
        o.quick ? std::vector<std::pair<int, int>>{{32, 128}}
                : std::vector<std::pair<int, int>>{{32, 128}, {16, 64}};
    for (auto d : dtypes)
      for (auto [nh, hd] : heads)
        for (bool backward : {false, true})
          for (auto s : seqs) {
            // The quick sweep times the backward pass at its shortest sequence only.
            if (o.quick && backward && s != seqs.front()) continue;
            const int batch = static_cast<int>(std::max<std::int64_t>(1, 8192 / s));
            p.attention.push_back({d, backward, batch, nh, s, hd, true});
          }
  }

  p.launch = want(Section::launch);

  if (want(Section::collectives) && o.gpus < 2) {
    p.skipped.push_back({"collectives", fmt::format("{} GPU available: collectives need at least 2",
                                                    o.gpus)});
  }
  if (want(Section::collectives) && o.gpus >= 2) {
    std::vector<int> groups;
    if (o.whole_group_only) {
      groups = {o.gpus};
    } else if (o.quick) {
      groups = {2};
      if (o.gpus > 2) groups.push_back(o.gpus);
    } else {
      for (int g = 2; g <= o.gpus; ++g) groups.push_back(g);
    }
    std::vector<std::int64_t> sizes;
    if (o.quick) {
      sizes = {KiB, MiB, 64 * MiB, GiB};
    } else {
      for (std::int64_t b = KiB; b <= 4 * GiB; b *= 2) sizes.push_back(b);
    }
    for (CollectiveOp op : kAllCollectives)
      for (int g : groups)
        for (auto b : sizes)
          p.collectives.push_back({op, g, o.nodes, collective_bytes(op, g, b)});
  }
  return p;
}

}  // namespace orrery::profiler
