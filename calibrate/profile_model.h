// A ComputeModel from a fitted profile (docs/calibration-format.md, "Profile"), falling
// back to the roofline (compute_model.h) for every op class the profile has no family for.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "calibrate/compute_model.h"
#include "calibrate/profile.h"

namespace orrery {

// Op classes and the profile family that times them:
//   gemm, router, conv    the GEMM roofline of the training precision's dtype:
//                         t = F / rate(F, bytes); backward: two GEMMs (data and weight
//                         gradients) of half the FLOPs and half the bytes each;
//   attention GEMMs       the same for attention's dtype (16 bits under fp8);
//   fused attention core  the roofline (no attention family is fitted yet);
//   norm, softmax         memory_bound row_reduce, else elementwise, else copy:
//                         t = alpha + bytes / bandwidth;
//   other ops             memory_bound elementwise, else copy, else row_reduce;
//   auxiliary kernels     (FP8 casts) the same memory-bound fit, each at least the floor;
//   kernel floor          the profile's launch overhead;
//   optimizer             the roofline's passes, at the bandwidth of the profile's optimizer
//                         entries (their bytes over their time) when it holds any;
//   collectives           (collective_time) a measured NCCL entry of the same op, group
//                         size and node span: exact bytes its time, else the nearest
//                         entry's bus bandwidth within 2x of the size; else the plan.
// `name` names the profile in describe(). Throws what make_roofline_model throws.
std::unique_ptr<ComputeModel> make_profile_model(const Scenario& s, const Profile& p,
                                                 const std::string& name);

// Whether two GPU names (a device name as CUDA reports it, "NVIDIA H100 80GB HBM3"; a
// preset's, "NVIDIA H100 SXM5 80GB") name the same GPU: their model words (letters then
// at least two digits and at most one more letter: A100, H100, L40S, MI300X) are equal
// and, when both name a memory size ("80GB"), so are those. A name without a model word
// matches anything (it cannot be told apart).
bool same_gpu(const std::string& a, const std::string& b);

// A profile measured on GPU A (its inputs' GPU, a built-in preset by same_gpu) made to time
// ops on the scenario's GPU B by datasheet ratios of the resource that bounds each figure
// (docs/model.md, "Projection to another GPU"):
//   GEMM entries     compute-bound (F / bytes at least A's ridge peak[d] / HBM): time x
//                    peak_A[d] / peak_B[d]; memory-bound: time x HBM_A / HBM_B;
//   attention        time x peak_A[d] / peak_B[d], d attention's format;
//   norm, softmax, elementwise, optimizer entries; memory_bound fits: time x HBM_A / HBM_B
//                    (fits: bandwidth x HBM_B / HBM_A, alpha kept);
//   GEMM fits        compute roof x peak_B / peak_A, memory roof x HBM_B / HBM_A;
//   launch fit       dropped (no datasheet figure): B's preset kernel_launch;
//   collectives      carried as they are used: the intra-node curve is a shape and the NIC
//                    efficiency a fraction of the scenario's own NVLink and NIC line rates;
//                    measured NCCL entries with a node span are dropped (no datasheet
//                    ratio carries a measured collective time to B's links).
// The band's added half-width: the largest |eff_B / eff_A - 1| over the resources scaled,
// eff the presets' measured achievable fractions (gemm_efficiency[d], attention_efficiency,
// memory_efficiency): the ratio holds only as far as B reaches the same fraction of its
// datasheet figure as A. Nothing to do when every input names B or no GPU. Throws
// InputError at `cluster.calibration` naming the figure when no preset matches A, or a
// ratio is missing (a format either GPU has no peak for).
Profile project_profile(const Scenario& s, Profile p);

// The fraction of its largest-size bus bandwidth a collective reaches at each measured
// size of 1 MiB or more: the shape IntraNodeSpec::bus_bandwidth_curve takes.
std::vector<std::pair<Bytes, double>> bus_bandwidth_curve(const CollectiveFit& c);

// The scenario's cluster with, when its profile holds a single-node all-reduce over
// gpus_per_node GPUs (2 sizes of 1 MiB or more), that measured curve in place of the
// system preset's intra-node bus-bandwidth curve. The preset's line rate and efficiency
// stay: the curve sets the shape by size, not the peak.
ClusterSpec calibrated_cluster(const Scenario& s);

// The model's explain() lines as the section `orrery run --explain` prints.
std::string render_explanation(const ComputeModel& m);

}  // namespace orrery
