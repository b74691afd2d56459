// Design-space search: a scenario's sweep section becomes candidates (copies of the
// scenario with fields replaced, validated like a loaded scenario), which are filtered
// by the memory model and the constraints, bounded below, simulated only while they can
// still win, and ranked.
//
// Candidates, in a fixed nested order (gpu or system, nodes, gpus_per_node,
// nics_per_node, nic_bandwidth, precision, compression, global_batch, tp, pp, vp, cp, ep,
// dp, microbatch, sequence_parallel, schedule, zero_stage, fsdp, sharding, recompute,
// stack; the first varies slowest); each axis is one row of sweep/axes.cpp, which also sets it,
// rewrites it and writes it. `auto`:
//   tp          every divisor of the GPU count that is at most model.heads;
//   pp          every divisor of the GPU count that is at most model.layers;
//   vp          1, and with pp >= 2 every v >= 2 with pp*v dividing model.layers;
//   microbatch  every b with b*dp dividing global_batch.
// dp not swept: derived from the GPU count (GPUs / (tp*pp*cp)) whenever tp, pp, cp, nodes
// or gpus_per_node are swept, else the scenario's own.
//
// Pruning (exact): every candidate that passes validation, the constraints and the memory
// model gets a lower bound on each objective from a lower bound on its step time
// (bound.cpp, step_time_bound):
//  - compute: each op timed by a rate (GEMMs, attention) at R, the fastest rate the
//    roofline of calibrate/compute_model.h gives any op on this GPU (max over formats of
//    peak * gemm_efficiency * max(1, ramp fractions), and peak16 * attention_efficiency (or
//    cudnn_attention_efficiency for cuDNN's kernel) * max(1, flash_shape_factor);
//    with a calibration profile, the largest datasheet peak); memory-bound ops count 0;
//  - tensor-parallel collectives the compute waits for (none with tp_comm_overlap), read
//    from the layer passes the simulator runs (model/layer_pass.h), each at least (n-1)/n S over the GPU's NVLink + NIC line
//    rate, and for a group over k nodes (k-1)/k S over its members' NICs there;
//  - per pipeline rank k, Tf_k and Tb_k (forward; backward + recompute) per micro-batch:
//    a rank runs its m micro-batches in series, step >= m (Tf_k + Tb_k); with GPipe/1F1B
//    its first forward waits for ranks 0..k-1 and rank 0's last backward for ranks k..1,
//    step >= sum_{i<k} (Tf_i + Tb_i) + m (Tf_k + Tb_k) (interleaved: the first chunk of
//    each rank i < k); DualPipe: each rank's two stages for half the micro-batches;
//  - ZeRO-3: each rank's parameter gathers and gradient reduce-scatters bring at least
//    (d-1)/d of their bytes into each GPU of a group of d, at most at NVLink + NIC line
//    rate: d the shard group for dense parameters, the experts' own group for theirs, the
//    node's data-parallel ranks for hpZ's backward gathers; DeepSpeed's persisted modules
//    are not gathered (only the bytes the simulator sends, so the bound stays below it).
// Communication beyond these, the bubble beyond the chain, the optimizer and slowdowns
// only add. Time to train, cost and energy are evaluated at that step time with zero
// utilisation (idle draw), all increasing in the step time. Candidates are taken in increasing order of the first objective's bound, in
// waves of a fixed size; before each wave the threshold is set from the results so far:
// one objective: skip a candidate whose bound exceeds the top-th best value; several:
// skip a candidate whose bound vector is dominated by a simulated point. A skipped
// candidate cannot enter the ranked table or the Pareto front.
//
// Ranking: by the objectives as predicted, or with sweep.rank_by pessimistic at the slow
// end of each candidate's prediction band (report/band.h): objectives and bounds times
// the band's slow() factor, a positive constant per candidate, so the pruning stays exact.
//
// Memory: candidates are walked lazily (sweep/space.h) and screened in chunks; what stays
// is, per candidate left to the decisions, its index, bounds, position in the space and
// system, and each evaluated candidate's result. The CSV and JSON screen the candidates
// again (for_each_candidate). Out of memory is an InputError, never std::bad_alloc.
//
// Determinism: the waves, thresholds and output order do not depend on the thread count
// or on how candidates are sharded: a shard screens only the candidates with index % N ==
// its share, decides them with thresholds from its own results one wave late (never below
// the single process's: sweep.cpp, decide), and merging screens every candidate and
// replays the single-process decisions over the union, so every output is byte-identical
// to one process's. MPI ranks (SweepOptions::queue) decide nothing: rank 0 runs the single
// process's decisions and only the work (ranges of candidates to screen, candidates to
// simulate) goes to whichever rank is free, its replies taken in candidate order.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "report/band.h"
#include "scenario/spec.h"
#include "scenario/sweep_spec.h"
#include "simulator/step.h"
#include "sweep/work_queue.h"

namespace orrery {

// The fields a candidate sets. Only the fields the sweep names are applied.
struct Assignment {
  int gpu = 0;  // index into SweepInput::raw
  int nodes = 1, tp = 1, pp = 1, vp = 1, dp = 0 /* 0: derived */, microbatch = 1;
  // The vp axis's uneven layout: the embedding and the loss each counted as a layer
  // (parallelism.account_for_embedding / account_for_loss), the first and last virtual
  // stage one transformer layer lighter.
  bool vp_edges = false;
  int global_batch = 1, zero_stage = 0;
  Recompute recompute = Recompute::none;
  Precision precision = Precision::bf16;
  CompressionSpec::Scheme compression = CompressionSpec::Scheme::none;
  int gpus_per_node = 8, nics_per_node = 0;
  int nic_bandwidth = -1;  // index into SweepSpec::nic_bandwidth; -1: the scenario's own
  int cp = 1, ep = 1;
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  bool sequence_parallel = false;
  ParallelismSpec::FsdpImpl fsdp = ParallelismSpec::FsdpImpl::fsdp1;
  ParallelismSpec::Sharding sharding = ParallelismSpec::Sharding::full;
  StackSpec::Preset stack = StackSpec::Preset::megatron_core;
};

enum class Status {
  invalid,
  over_gpus,
  over_nodes,
  over_power,
  out_of_memory,
  over_budget,
  over_deadline,
  pruned,
  unsupported,
  simulated
};
const char* to_string(Status s);

// What a simulation yields that the outputs use; every value a double underneath,
// exactly round-tripped through shard files. Dollars, kWh and the token rate have no unit
// type (core/units.h) and stay doubles named by their unit.
struct Figures {
  Seconds step_time;
  Breakdown breakdown;  // the busiest stage's
  double tokens_per_s = 0;  // tokens (images for CNNs) per second
  double mfu = 0;           // a fraction of the dense 16-bit peak
  double hfu = 0;           // the same with recomputed FLOPs (the validated-region flag)
  // With training.target: the whole run (model/training_run.h).
  std::optional<Seconds> time_to_train;
  std::optional<double> cost_usd, energy_kwh;
  std::optional<double> tco_usd;  // with cost.amortization_years: the run's cost of owning
  double peak_power_w = 0;        // peak facility power (model/training_run.h)
  // With reliability: too: the expected wall time with checkpoints, failures and restarts,
  // the goodput (time to train / wall time) and the expected failures (Goodput).
  std::optional<Seconds> wall_time;
  std::optional<double> goodput, expected_failures;
};

// Memory per GPU of the busiest stage (model/memory.h) against the GPU's capacity.
struct MemoryUse {
  Bytes used, capacity;
};

struct CandidateResult {
  // Position in expand()'s order; absent for SweepResult::baseline, the scenario as written.
  std::optional<int> index;
  Assignment a;
  Status status = Status::invalid;
  std::string reason;     // invalid / unsupported: the validation message (key: why)
  // Resolved split (after validation).
  int gpus = 0, dp = 0;
  std::string gpu_name;
  std::string system;               // the cluster's preset (the system), "" when written in full
  std::optional<MemoryUse> memory;  // absent: the memory model did not run
  // With the memory model run: the band of its validation family (report/band.h) and why
  // it lies outside the validated region (the MFU flag once simulated). Recomputed from
  // the candidate, never stored in shard files.
  std::optional<Band> band;
  std::vector<RegionFlag> outside;
  std::string precision;  // training.precision, for the MFU flag
  // Per objective, in its own unit (seconds, dollars, kWh: sweep.objectives), so doubles.
  // With sweep.rank_by pessimistic both are the slow end of the band: the predicted values
  // times band->slow() (a positive constant per candidate, so the bound stays a bound).
  std::vector<double> bound;  // lower bound per objective
  std::optional<Figures> figures;
  std::vector<double> objective;  // per objective, when simulated
};

struct SweepResult;

struct SweepOptions {
  int threads = 1;
  int shard = 0, shards = 1;  // this process simulates its share only (no ranking)
  // The validation residuals the bands and region flags come from; null: the shipped
  // table (report/band.h). Tests give their own.
  const std::vector<Residual>* residuals = nullptr;
  // Called after each chunk screened (`what` "screened": candidates screened so far, of
  // this process's share) and after each wave (`what` "decided": candidates decided so
  // far, of those needing a decision).
  std::function<void(const char* what, std::size_t done, std::size_t total)> progress;
  // Keep every candidate in SweepResult::candidates (tests, small sweeps; one process or a
  // merge, never a shard). Off, memory
  // holds only what the decisions need (SweepResult) and for_each_candidate screens the
  // candidates again for the CSV and JSON.
  bool keep_candidates = true;
  // Results already made (a checkpoint's, read_shard): taken instead of simulating.
  const SweepResult* resume = nullptr;
  // Called after a wave at most every 5 s with the results so far (SweepResult::evaluated),
  // to record a checkpoint; the result passed is partial (counts and ranks unset).
  std::function<void(const SweepResult& partial)> checkpoint;
  // With one process deciding (shards 1): the screening, in ranges of candidates, and the
  // simulations, one candidate each, go out through the queue to whichever process asks
  // next (each doing them with a SweepWorker); the decisions, counts, outputs and
  // checkpoints stay here, the single process's.
  WorkQueue* queue = nullptr;
};

// The buyer's answer for one system (the candidates' cluster preset and GPU): the
// smallest cluster (fewest nodes) with a candidate that meets every constraint, and its
// best candidate by the objectives. Made when the sweep varies the node count and the
// scenario has training.target: for each system, node counts are tried from the smallest,
// and at each every candidate the bound cannot rule out is simulated (in waves, so the
// choice does not depend on threads or shards), until one meets the constraints.
struct SystemChoice {
  std::string system, gpu_name;
  std::optional<int> best;  // candidate index; none: no candidate meets the constraints
};

struct SweepResult {
  // Every candidate, by index, with SweepOptions::keep_candidates; else empty (read them
  // with for_each_candidate).
  std::vector<CandidateResult> candidates;
  std::size_t total = 0;  // candidates in the sweep
  // Every candidate this process evaluated (simulated, not modelled, over a budget or the
  // deadline), or a shard file's, by index; at() reads them.
  std::vector<CandidateResult> evaluated;
  // Candidates by status (every candidate; in a shard, its share only).
  std::array<std::size_t, 10> by_status{};
  std::vector<int> ranked;                  // simulated indices, best first (one objective)
  std::vector<int> pareto;                  // the front, by first objective (several)
  std::size_t valid = 0, simulated = 0, pruned = 0;
  CandidateResult baseline;                 // the scenario as written (no index)
  // One objective: the scenario as written ranks between these (1-based, among every
  // candidate that passed the constraints): min counts the simulated candidates faster
  // than it, max adds the pruned ones whose bound does not rule it out. Equal: exact.
  std::optional<int> baseline_rank, baseline_rank_max;
  std::vector<SystemChoice> systems;  // per system, in the order of their first candidate
  int shard = 0, shards = 1;          // whose share this is (a shard file's)
  // What for_each_candidate screens again with (SweepOptions').
  const std::vector<Residual>* residuals = nullptr;
  int threads = 1;

  std::size_t count(Status s) const { return by_status.at(static_cast<std::size_t>(s)); }
  // A candidate the result holds (kept, or evaluated); throws when it holds none.
  const CandidateResult& at(int index) const;
};

// Does the tasks of SweepOptions::queue on a process the queue hands them to (and on the
// sweep's own): screens a range of candidates and returns what the decisions keep of them,
// or simulates one candidate and returns its figures. Tasks come in increasing order of
// their candidates; the walk of the space goes on from the last.
class SweepWorker {
 public:
  SweepWorker(const SweepInput& in, const SweepOptions& options);
  ~SweepWorker();
  SweepWorker(const SweepWorker&) = delete;
  SweepWorker& operator=(const SweepWorker&) = delete;
  std::string operator()(const std::string& task);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Calls fn with every candidate, in index order, as the sweep decided it: from
// r.candidates when kept, else screened again chunk by chunk (on r.threads threads) with
// the evaluated ones laid over, so memory holds one chunk.
void for_each_candidate(const SweepInput& in, const SweepResult& r,
                        const std::function<void(const CandidateResult&)>& fn);

// The number of candidates of the sweep, walked without screening any.
std::int64_t count_candidates(const SweepInput& in);

// What `orrery sweep --dry-run` prints: the candidate count and an estimate of the time,
// from screening a sample spread over the space and simulating one candidate of it.
struct SweepEstimate {
  std::int64_t candidates = 0;
  std::size_t sampled = 0, sampled_open = 0;  // screened; of those, left to decide
  double screen_s = 0;    // seconds per candidate screened (one thread)
  double simulate_s = 0;  // seconds per simulation (one thread); 0: none in the sample
};
SweepEstimate estimate_sweep(const SweepInput& in, const SweepOptions& options);

// A warning when the objectives compare candidates that do different work per step (step
// time across swept global batches); empty when none.
std::string objective_warning(const SweepInput& in);

// Expands the candidates in the documented order. Throws InputError naming the sweep key
// when the sweep is empty.
std::vector<Assignment> expand(const SweepInput& in);

// The candidate's scenario: a copy of in.raw[a.gpu] with the swept fields replaced, then
// validated. Throws InputError when the combination is invalid.
Scenario candidate_scenario(const SweepInput& in, const Assignment& a);

// Runs the sweep. With options.shards > 1 only this shard's simulations are made and
// the result is partial: pass every shard's candidates to `merge_shards`.
SweepResult run_sweep(const SweepInput& in, const SweepOptions& options);

// The single-process result from the shards' results (one SweepResult per shard, in any
// order). Throws InputError when shards are missing or come from another sweep.
SweepResult merge_shards(const SweepInput& in, const std::vector<SweepResult>& shards,
                         const SweepOptions& options = {});

// The Pareto front (minimisation) of `points`: indices of the points no other point
// dominates (<= in every objective, < in one), in input order.
std::vector<int> pareto_front(const std::vector<std::vector<double>>& points);

// sweep.global_batch_tokens for one candidate: the multiple of dp x microbatch sequences
// nearest to tokens / seq_len (halves away from zero), at least dp x microbatch.
int rounded_global_batch(double tokens, std::int64_t seq_len, int dp, int microbatch);

// The candidate's (key path, value) pairs for rewrite_scenario_yaml: every swept field,
// with dp and the schedule resolved.
std::vector<std::pair<std::string, std::string>> candidate_settings(const SweepInput& in,
                                                                    const CandidateResult& c);

// Megatron-LM's arguments for the candidate's split (pretrain_gpt.py flags).
std::string megatron_arguments(const Scenario& s);

}  // namespace orrery
