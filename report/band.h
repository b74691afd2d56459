// The prediction band and the validated region: how far `orrery validate
// scenarios/validation` found predictions from published runs like this one, and whether
// a scenario lies where no published run has checked the model.
//
// The residuals ship as report/validation_residuals.csv, the output of `orrery validate
// --format csv scenarios/validation`, embedded at build time (report/CMakeLists.txt);
// tools/update_residuals.sh rewrites it and tests/report/band_test.cpp fails when it
// differs from what validate computes now. docs/simulator.md ("Prediction band") states
// every rule below.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "scenario/spec.h"

namespace orrery {

// A scenario's validation family: GPU generation x framework x parallel kind.
//  generation  from the GPU preset key and name: V100 Volta; A100/A800/A40/A30/A10 Ampere;
//              H100/H200/H800/H20 Hopper; B100/B200/B300 Blackwell; anything else "other";
//  framework   pipeline_engine deepspeed or zero_hpz: Megatron-DeepSpeed; parallelism.fsdp:
//              DeepSpeed or PyTorch FSDP by its implementation; a PyTorch-native stack
//              (training.stack fsdp1, fsdp2) without it: PyTorch (Hugging Face's Trainer,
//              DDP); else Megatron-Core (NeMo and MLPerf's NeMo runs included);
//  kind        the first that applies: moe (model.moe or ep > 1), context-parallel (cp > 1),
//              zero-3 (zero_stage 3, FSDP included), else 3d (tp/pp/dp, ZeRO 0-2).
struct Family {
  std::string generation, framework, kind;
  std::string label() const;  // "Ampere x Megatron-Core x 3d"
  bool operator==(const Family&) const = default;
};
std::string gpu_generation(const GpuSpec& gpu);
// The pipeline schedule as the residual table and the `schedule` flag name it: "-" at pp 1
// under 1F1B (no schedule to name), else the schedule's name, "-flexible-groups" appended
// where parallelism.flexible_groups is in effect (ParallelismSpec::one_short_group).
std::string schedule_label(const ParallelismSpec& p);
// What the pipeline layout does beyond placing layers, as the residual table and the
// `layout` flag name it: "mtp-stage" for a multi-token-prediction stage of its own
// (Megatron-Core's mtp_standalone), "empty-stage" for a layout with an empty virtual stage,
// "-" otherwise.
std::string layout_label(const ParallelismSpec& p);
Family family_of(const Scenario& s);

// One validation case as the residual table holds it.
struct Residual {
  std::string id;
  Family family;
  int cp = 1, ep = 1, zero_stage = 0;
  // schedule_label; parallelism.cp_comm where cp > 1, "-" otherwise; layout_label.
  std::string schedule = "-", cp_comm = "-", layout = "-";
  std::string precision;  // training.precision (MFU counts against the 16-bit peak)
  std::string metric;
  double measured = 0, predicted = 0;
  double error = 0;            // (predicted - measured) / measured, in the metric's own sense
  double time_error = 0;       // the same as a step-time error (rates: 1 / (1 + error) - 1)
  double mfu = 0, hfu = 0;     // predicted model and hardware FLOP utilisation
  double memory_fraction = 0;  // predicted memory per GPU / capacity
  bool fits = true;
  // The case's HFU at its measured speed: hfu * predicted time / measured time.
  double measured_hfu() const { return hfu * (1 + time_error); }
};

// The step-time sense of a signed error in `metric` (a time, or a rate whose value is
// inversely proportional to the step time).
double time_error(Metric metric, double error);

// Reads the table; throws InputError naming `where` when it is malformed.
std::vector<Residual> parse_residuals(const std::string& csv, const std::string& where);
// The table shipped with this build (report/validation_residuals.csv).
const std::vector<Residual>& shipped_residuals();

// A family needs this many cases for its own band; with fewer the band falls back.
constexpr int kMinBandCases = 3;

// The measured step time lies at predicted / (1 + e) for e in [e_min, e_max], the step-time
// residuals of `basis`: the first of (the exact family; same generation and kind, any
// framework; same generation; every case) with at least kMinBandCases cases.
struct Band {
  Family family;         // the scenario's own
  int family_cases = 0;  // validation cases of exactly that family
  std::string basis;     // where the residuals came from, e.g. "Ampere x 3d (any framework)"
  int cases = 0;         // residuals in the basis; 0: no table, no band
  double e_min = 0, e_max = 0;
  // Added to both ends (e_min - added, e_max + added) by the compute model (a profile
  // projected from another GPU: ComputeModel::band_half_width), and why; 0 and empty
  // otherwise.
  double added = 0;
  std::string added_basis;
  // Measured / predicted step time at the ends of the band: slow (pessimistic), fast.
  double slow() const { return 1 / (1 + e_min); }
  double fast() const { return 1 / (1 + e_max); }
  // "Ampere x Megatron-Core x 3d, 10 cases" or, after a fallback, "... 1 case (< 3):
  // Ampere x 3d (any framework), 11 cases".
  std::string describe() const;
};
Band band_for(const Family& f, const std::vector<Residual>& table);

// A reason the scenario lies outside the validated region: a short code for tables
// (gpu, mfu, memory, cp, cp_comm, schedule, layout, moe, zero2, zero3, align) and a
// sentence.
struct RegionFlag {
  std::string code, text;
};
// Memory above this share of capacity is flagged: the memory model's allocator waste is a
// simulation and its runtime terms (CUDA context, NCCL buffers) are not measured on the
// validation runs' machines (docs/model.md, "Memory per GPU"). When 95 % was set the
// highest share a validation case reached was 0.946 (nemo2407-nemotron-340b-128); since the
// NCCL buffers, the simulated allocator waste and DeepSpeed's gradient copies joined the
// total, eight cases that ran read 0.950-1 (report/validation_residuals.csv), so above 95 %
// a prediction is within
// the error of those unmeasured terms of the limit, not past every run (the default of
// training.memory.margin, 1 - this; docs/simulator.md, "Prediction band").
constexpr double kMemoryNearFull = 0.95;
// Model and hardware FLOP utilisation of a simulated step (StepResult::mfu, hfu).
struct Utilisation {
  double mfu = 0, hfu = 0;
};
// Every flag for a scenario with this memory share and (when simulated) utilisation: its
// GPU generation has no case; the utilisation flag (mfu_flag); memory above
// kMemoryNearFull; a cp above every case's; a cp_comm no context-parallel case uses (when
// some case has cp > 1; otherwise the cp flag says it); a pipeline schedule (at pp 1 one
// other than 1F1B) no case runs; a layout_label no case has; MoE, ZeRO-2 or ZeRO-3 when no
// case uses it, and (code zero3) torchtitan's FSDP2 under a pipeline when no PyTorch FSDP
// case with ZeRO-3 runs a pipeline; the alignment flag (alignment_flag).
std::vector<RegionFlag> region_flags(const Scenario& s, double memory_fraction,
                                     std::optional<Utilisation> use,
                                     const std::vector<Residual>& table);
// The alignment flag (code "align"): GEMMs whose operand rows are aligned to 2 or 4
// elements (Op::alignment; no rate of cuBLAS's alignment-2 and -4 kernels is measured on
// any GPU), or to 1 where the GPU gives no unaligned_gemm_efficiency: each is timed as
// aligned, and the validation cases that run such GEMMs read far fast (docs/model.md,
// "GEMMs with an odd dimension"). Only where those GEMMs carry at least
// kAlignmentFlagShare of the forward FLOPs. A model's own property, not a validation
// case's absence.
constexpr double kAlignmentFlagShare = 0.01;
std::optional<RegionFlag> alignment_flag(const Scenario& s);
// fp16 and bf16 are "16-bit", fp32 and tf32 "32-bit", fp8 itself: utilisation counts
// against the 16-bit peak in every case, so an FP8 run's is not comparable with a 16-bit
// run's.
std::string precision_class(const std::string& precision);
// The utilisation flag (code "mfu"; region_flags includes it): the scenario computes a
// larger share of the peak than any validation case of its framework on its GPU generation
// in its precision class did at its measured speed (any framework's cases when its own has
// none there), or no such case exists. Compared as hardware
// FLOP utilisation (recomputed FLOPs counted), since that is what the timing model was
// checked at: the Narayanan 2021 cases recompute every layer, so their MFU is 3/4 of their
// HFU, and a candidate without recompute at the same GPU load would seem far outside on
// MFU alone.
std::optional<RegionFlag> mfu_flag(const Family& family, const std::string& precision, double mfu,
                                   double hfu, const std::vector<Residual>& table);

}  // namespace orrery
