// What a sweep measures: the grids of GEMM shapes, memory-bound sizes, attention
// configurations and collective sizes, for the full sweep and for --quick (sized to
// finish within about 3 minutes on one H100; not yet timed on a GPU).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "profiler/device.h"
#include "profiler/measurements.h"

namespace orrery::profiler {

enum class Section { gemm, memory_bound, attention, launch, collectives };
const char* to_string(Section s);
inline constexpr Section kAllSections[] = {Section::gemm, Section::memory_bound,
                                           Section::attention, Section::launch,
                                           Section::collectives};

// One linear layer of a transformer preset as a GEMM: Y[T, out] = X[T, in] W[in, out]
// is m = T tokens, n = out, k = in (forward); the backward pass adds the input
// gradient (m = T, n = in, k = out) and the weight gradient (m = in, n = out, k = T).
struct LinearShape {
  std::int64_t m = 0, n = 0, k = 0;
  auto operator<=>(const LinearShape&) const = default;
};

struct PlanOptions {
  bool quick = false;
  int gpus = 1;                         // GPUs available for collectives (2..gpus)
  int nodes = 1;                        // hosts those GPUs span
  bool whole_group_only = false;        // collectives on all `gpus` only (MPI runs)
  std::set<Section> sections{std::begin(kAllSections), std::end(kAllSections)};
  std::set<Dtype> dtypes{std::begin(kGemmDtypes), std::end(kGemmDtypes)};
  // Each fp8 GEMM shape is measured once per accumulation here (default: split only).
  std::set<Fp8Accumulation> fp8_accumulation{Fp8Accumulation::split};
  // When given, the GEMM shapes measured (each in every type of `dtypes`) instead of the
  // sweep's squares and preset shapes.
  std::optional<std::vector<LinearShape>> gemm_shapes;
  // When set, every GEMM runs back to back this long before its timed repetitions.
  std::optional<Seconds> gemm_sustained;
};

struct Plan {
  std::vector<GemmCase> gemm;
  std::vector<MemoryBoundCase> memory_bound;
  std::vector<AttentionCase> attention;
  bool launch = false;
  std::vector<CollectiveCase> collectives;
  std::vector<SkippedMeasurement> skipped;  // whole sections the plan leaves out, and why
  std::optional<Seconds> gemm_sustained;    // PlanOptions::gemm_sustained
  std::size_t size() const {
    return gemm.size() + memory_bound.size() + attention.size() + (launch ? 1 : 0) +
           collectives.size();
  }
};

// The GEMM shapes of one layer of every transformer model preset (and its logits), for
// a micro-batch of one sequence (T = the preset's seq_len) and tensor-parallel degree
// `tp` (column-parallel layers divide n by tp, row-parallel ones k). Layers: fused QKV
// (n = (heads + 2 kv_heads) head_dim), attention output, MLP up (n = ffn, 2 ffn for
// SwiGLU's fused gate and up), MLP down, MoE experts (m = T top_k / experts tokens per
// expert), vocabulary projection. MLA's low-rank projections are not included.
// `with_backward` adds the two backward GEMMs of each. Sorted, without duplicates.
std::vector<LinearShape> preset_gemm_shapes(int tp, bool with_backward);
// The same for one named preset (quick sweep).
std::vector<LinearShape> preset_gemm_shapes(const std::string& preset, int tp,
                                            bool with_backward);

Plan make_plan(const PlanOptions& o);

}  // namespace orrery::profiler
