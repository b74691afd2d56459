// The passes after the pipeline: ZeRO-3 / FSDP's per-layer collectives, the
// data-parallel gradient reduction in buckets, and the optimizer step with the
// distributed optimizer's parameter all-gather (simulator/step_passes.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "model/compression.h"
#include "model/memory.h"
#include "model/pipeline.h"
#include "simulator/fsdp_gradient_passes.h"
#include "simulator/step_passes.h"

namespace orrery::detail {
namespace {

// The group that shards ZeRO-3 / FSDP state: every data-parallel rank, or with hybrid
// sharding those of one node.
GroupKind shard_kind(const ParallelismSpec& p) {
  return p.sharding == ParallelismSpec::Sharding::hybrid ? GroupKind::dp_local : GroupKind::dp;
}

// Gradient copies one reduction sums over: DualPipe's two copies of each stage.
int copies(const StepContext& ctx) { return ctx.dual ? 2 : 1; }

// The time of a compression kernel (encode or decode) on the compute model.
Seconds kernel_time(const ComputeModel& model, Flop flops, Bytes bytes) {
  if (flops.value() <= 0 && bytes.value() <= 0) return Seconds(0.0);
  Op op;
  op.kind = flops.value() > 0 ? OpKind::gemm : OpKind::elementwise;
  op.fwd_flops = flops;
  op.fwd_read = bytes;
  return model.op_time(op, Pass::forward);
}

// PyTorch FSDP's memory-bound passes over each unit's gradient around its reduce-scatter
// (docs/model.md, "PyTorch FSDP gradient passes"), each its own kernel. FSDP1:
//  - assembly: the unit's parameters are views of its FlatParameter made by a split under
//    autograd (FlatParamHandle._use_unsharded_views: torch.split in
//    _get_unflat_views_unaligned, torch/distributed/fsdp/_flat_param.py), so their
//    gradients reach the flat parameter through the split's backward, which writes them
//    into one new contiguous flat gradient: the unsharded gradient read and written once,
//    in the parameters' (compute) dtype;
//  - cast: to the reduce dtype, where it differs ("flat_param.grad.to(handle._reduce_dtype)"
//    in _post_backward_hook), a dtype-converting copy at cluster.gpu.cast_efficiency;
//  - pre-divide: in place on the unsharded gradient before reduce_scatter_tensor, when the
//    gradient_predivide_factor exceeds 1 (every data-parallel size of 2 or more);
//  - post-divide: in place on this rank's shard after it, when world / pre-divide exceeds 1.
// The divisions: _post_backward_hook's default communication hook, reduce_scatter_hook
// ("if state.gradient_predivide_factor > 1: grad.div_(...)", reduce_scatter_tensor,
// "if state.gradient_postdivide_factor > 1: output.div_(...)") with the factor
// _get_gradient_predivide_factor (double from 1 while world % factor == 0 and
// world / factor > factor), torch/distributed/algorithms/_comm_hooks/default_hooks.py at
// pytorch/pytorch db8ddc78 and torch/distributed/fsdp/_runtime_utils.py at 3ade90a6; later
// PyTorch does the same in _reduce_grad (_div_if_needed before and after the
// reduce_scatter_tensor). The world is the data-parallel size (hybrid: both groups,
// _init_process_group_state in _init_utils.py).
// FSDP2 (foreach_reduce, torch/distributed/fsdp/_fully_shard/_fsdp_collectives.py at
// 8fc2039d): autograd leaves each parameter's gradient on its own, and one copy-in kernel
// (foreach_reduce_scatter_copy_in, fsdp.chunk_cat, on the current stream) reads them and
// writes the reduce-scatter input in the reduce dtype; a bf16 or fp32 reduction divides
// inside NCCL (ReduceOp.AVG, or a premul-sum: _get_gradient_divide_factors, "we use NCCL's
// built-in division to avoid separate div kernels"); only fp16 runs the pre- and
// post-divides, with FSDP1's factors.
// Not counted: the padded copy (FSDP1's F.pad) of a unit whose size is not a multiple of
// the shard, and the cast of the shard to the parameter dtype (1/shard of a pass).
// fsdp_gradient_passes (below, declared in simulator/fsdp_gradient_passes.h) gives the bytes
// each kernel moves per element of the unit's (unsharded) gradient.

Seconds fsdp_gradient_pass_time(const ComputeModel& model,
                                const std::vector<FsdpGradientPass>& passes, double elements) {
  Seconds t(0.0);
  for (const FsdpGradientPass& pass : passes) {
    Op op;
    op.kind = OpKind::elementwise;
    op.fwd_read = Bytes(elements * pass.bytes);
    op.dtype_cast = pass.dtype_cast;
    t += model.op_time(op, Pass::forward);
  }
  return t;
}

// The tasks a bucket's collectives of member rank `mr` (its gradient list `list`) wait
// for: the task that makes the bucket's gradients final, and the one they wait for
// instead without training.overlap_grad_reduce; and, without it, the member's compute
// task that waits for them (none: nothing does).
struct BucketReady {
  MaybeTask ready, without_overlap, held;
};

// The collectives of one bucket of rank r's gradients (dense, then expert), each one task
// per group owned by its first member; appended to every member's reductions. ready_of(mr,
// list) gives member mr's BucketReady.
template <typename ReadyOf>
void reduce_bucket(const StepContext& ctx, const RankSet& ranks, CommPlanner& planner, TaskGraph& g,
                   GradientTasks& out, size_t r, const ReadyOf& ready_of,
                   std::pair<double, double> params, const GradientShape* shape) {
  const ParallelismSpec& p = ctx.p;
  const bool dual = ctx.dual;
  const bool distributed = p.zero_stage >= 1;
  // DeepSpeed's BF16_Optimizer keeps every fp32 gradient (it shards only the optimizer
  // state) and all-reduces them whole, cast to bf16, its communication_data_type for bf16
  // without a ZeRO stage (pipe/engine.py _bf16_reduce_grads -> engine.py allreduce_bucket,
  // microsoft/DeepSpeed 56c522386878).
  const bool deepspeed_bf16 = deepspeed_bf16_optimizer(ctx);
  const double grad_bytes = deepspeed_bf16 ? 2.0 : state_bytes_per_param(ctx.s.training).gradient;
  const CollectiveOp reduce =
      distributed && !deepspeed_bf16 ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce;
  // Gradient compression other than local SGD's (whose averaging is a plain reduction).
  const CompressionSpec::Scheme scheme = ctx.s.training.compression.scheme;
  const bool compressed =
      scheme != CompressionSpec::Scheme::none && scheme != CompressionSpec::Scheme::local_sgd;
  for (int pass = 0; pass < 2; ++pass) {
    const bool expert_pass = pass == 1;
    const double bucket_params = expert_pass ? params.second : params.first;
    const int members_count =
        (expert_pass ? p.expert_shard_group() : p.shard_group()) * copies(ctx);
    if (bucket_params <= 0 || members_count < 2) continue;
    const std::vector<int> members = ranks.reduce_members(r, expert_pass, dual);
    if (members.front() != static_cast<int>(r)) continue;  // one task per group
    std::vector<int> after;
    // Each member's task that makes the bucket's gradients final.
    std::vector<MaybeTask> ready;
    std::vector<MaybeTask> held;  // compute tasks held until the reduction ends
    for (int mr : members) {
      const int list = dual && ranks[mr].s != ranks[r].s ? 1 : 0;
      const BucketReady br = ready_of(mr, list);
      ready.push_back(br.ready);
      const MaybeTask wait = ctx.s.training.overlap_grad_reduce ? br.ready : br.without_overlap;
      if (wait) after.push_back(*wait);
      // DeepSpeed's ReduceGrads, once a step, follows ReduceTiedGrads (tied_embedding_pass;
      // under Megatron the tied all-reduce comes after, and `tied` is still empty here).
      // ZeRO-2's reductions run in every backward, before it.
      const MaybeTask tied = out.tied[static_cast<size_t>(mr)];
      if (tied && p.zero_stage < 2) after.push_back(*tied);
      if (!ctx.s.training.overlap_grad_reduce) held.push_back(br.held);
    }
    const GroupKind kind = expert_pass ? (dual ? GroupKind::expert_dp_mirror : GroupKind::expert_dp)
                                       : (dual ? GroupKind::dp_mirror : GroupKind::dp);
    MaybeTask task;
    if (!compressed) {
      task = planner.collective(ranks, TaskKind::dp_comm, reduce, kind, members, after,
                                Bytes(bucket_params * grad_bytes));
    } else {
      // Encode kernels run on the compute stream once the bucket's gradients are final,
      // decode kernels before the optimizer; the collectives follow one another.
      const CompressedReduction cr = compress_reduction(ctx.s.training.compression, shape[pass],
                                                        grad_bytes, members_count, distributed);
      const Seconds encode = kernel_time(*ctx.model, cr.encode_flops, cr.encode_bytes);
      const Seconds decode = kernel_time(*ctx.model, cr.decode_flops, cr.decode_bytes);
      for (size_t i = 0; i < members.size(); ++i) {
        ORRERY_CHECK(ready[i].has_value(), "a bucket's gradients are made final by a task");
        g.tasks[static_cast<size_t>(*ready[i])].work += encode;
        out.decode[static_cast<size_t>(members[i])] += decode;
      }
      for (const WireStep& w : cr.steps) {
        task = planner.collective(ranks, TaskKind::dp_comm, w.op, kind, members,
                                  task ? std::vector<int>{*task} : after, Bytes(w.bytes));
      }
    }
    if (!task) continue;  // a reduction of no wire steps: nothing to wait for
    for (int mr : members) out.reductions[mr].push_back(*task);
    for (const MaybeTask& h : held) g.depend(task, h);
  }
}

// Which of a unit's parameters a collective moves: all of them, or, with expert parallelism,
// the dense ones (over the data-parallel shard group) and the experts' (over the ranks that
// hold the same experts) apart.
enum class UnitPart { all, dense, expert };

bool in_part(const Op& op, UnitPart part) {
  return part == UnitPart::all || op.expert == (part == UnitPart::expert);
}

// The parameters of `need` in `part` (those no op lists count as dense).
double part_params(const FsdpNeed& need, UnitPart part) {
  if (part == UnitPart::all) return need.params;
  double expert = 0;
  if (need.layer != nullptr)
    for (const Op& op : need.layer->ops)
      if (op.expert) expert += op.params;
  return part == UnitPart::expert ? expert : need.params - expert;
}

// The parameter counts one gather of `need` moves, one per collective, in the order they
// are issued. Per layer: the layer's parameters in one. Per module (DeepSpeed's
// fetch_sub_module): each parameterised op of the layer, in the pass's order, except
// those under the persistence threshold (kept whole on every rank, never gathered),
// consecutive modules coalesced until a collective holds at least fsdp_prefetch_bucket
// elements (the prefetch loop adds parameters while under the bucket). PyTorch FSDP
// wrapped per module has neither threshold nor bucket: one collective per module.
std::vector<double> gather_pieces(const ParallelismSpec& p, const FsdpNeed& need,
                                  UnitPart part) {
  const double params = part_params(need, part);
  if (params <= 0 && part != UnitPart::all) return {};
  if (p.fsdp_unit == ParallelismSpec::FsdpUnit::layer || need.layer == nullptr) return {params};
  const bool deepspeed = p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed;
  const double bucket = deepspeed ? p.fsdp_prefetch_bucket : 0.0;
  std::vector<double> modules;
  double listed = 0;
  for (const Op& op : need.layer->ops) {
    if (!in_part(op, part)) continue;
    listed += op.params;
    if (op.params > 0 && !p.fsdp_keeps_whole(op.params)) modules.push_back(op.params);
  }
  // Parameters no op lists (none today) travel with the last module.
  if (params > listed && !modules.empty()) modules.back() += params - listed;
  if (need.backward) std::reverse(modules.begin(), modules.end());
  std::vector<double> pieces;
  double open = 0;
  for (double m : modules) {
    open += m;
    if (open >= bucket) {
      pieces.push_back(open);
      open = 0;
    }
  }
  if (open > 0) pieces.push_back(open);
  return pieces;
}

// The gradient elements of `need`'s layer in backward order, as DeepSpeed's reduce bucket
// receives them (per module, persistent ones included: their gradients are reduced too).
std::vector<double> reduce_modules(const FsdpNeed& need, UnitPart part) {
  std::vector<double> modules;
  double listed = 0;
  if (need.layer != nullptr) {
    for (const Op& op : need.layer->ops) {
      if (!in_part(op, part)) continue;
      listed += op.params;
      if (op.params > 0) modules.push_back(op.params);
    }
  }
  const double params = part_params(need, part);
  if (params > listed) modules.push_back(params - listed);
  std::reverse(modules.begin(), modules.end());
  return modules;
}

// One ZeRO-2 bucket: the layer (index in its block) whose task makes it final, its dense
// and expert gradient elements and their shapes (for compression).
struct Zero2Bucket {
  size_t last = 0;
  double dense = 0, expert = 0;
  GradientShape shape[2];  // dense, expert
};

// ZeRO-2's buckets over the gradients of one backward block (one micro-batch's), in
// backward order, as each implementation forms them.
//  - Megatron-FSDP (`--data-parallel-sharding-strategy optim_grads`): one bucket per FSDP
//    unit, each TransformerLayer (fsdp_unit_modules, megatron/core/distributed/fsdp/
//    mcore_fsdp_adapter.py), and the parameters outside units (embedding, output layer)
//    grouped by module (param_and_grad_buffer.py, _get_parameter_groups); dense and
//    expert parameters in separate groups. Every layer is reduce-scattered on its own
//    (NVIDIA/Megatron-LM d98e8a64).
//  - DeepSpeed stage 2: the gradients of parameters, as backward produces them, fill a
//    bucket of reduce_bucket_size elements (default 5e8, or training.grad_bucket_params);
//    a parameter that would overflow it first sends the bucket
//    (reduce_independent_p_g_buckets_and_remove_grads in deepspeed/runtime/zero/
//    stage_1_and_2.py, deepspeedai/DeepSpeed edaa7221), and the last partial bucket
//    leaves at the end of the backward. Filled here module by module (a parameterised op).
std::vector<Zero2Bucket> zero2_buckets(const StepContext& ctx,
                                       const std::vector<GradReady>& block) {
  std::vector<Zero2Bucket> out;
  const bool deepspeed = ctx.p.pipeline_engine == PipelineEngine::deepspeed;
  if (!deepspeed) {
    for (size_t i = 0; i < block.size(); ++i) {
      Zero2Bucket b;
      b.last = i;
      b.dense = block[i].dense_params;
      b.expert = block[i].expert_params;
      if (block[i].layer != nullptr) {
        add_gradients(b.shape[0], *block[i].layer, false);
        add_gradients(b.shape[1], *block[i].layer, true);
      }
      out.push_back(b);
    }
    return out;
  }
  const double size = zero2_deepspeed_bucket(ctx.s.training);
  Zero2Bucket open;
  bool any = false;
  auto add = [&](size_t i, double elements, bool expert, const Op* op) {
    if (any && open.dense + open.expert + elements > size) {
      out.push_back(open);
      open = Zero2Bucket{};
    }
    (expert ? open.expert : open.dense) += elements;
    if (op != nullptr) {
      add_op_gradients(open.shape[expert ? 1 : 0], *op);
    } else {
      open.shape[expert ? 1 : 0].params += elements;
    }
    open.last = i;
    any = true;
  };
  for (size_t i = 0; i < block.size(); ++i) {
    const GradReady& gr = block[i];
    double listed = 0;
    if (gr.layer != nullptr) {
      for (auto it = gr.layer->ops.rbegin(); it != gr.layer->ops.rend(); ++it) {
        if (it->params <= 0) continue;
        listed += it->params;
        add(i, it->params, it->expert, &*it);
      }
    }
    // Parameters no op lists (none today) as one dense module.
    const double rest = gr.dense_params + gr.expert_params - listed;
    if (rest > 0) add(i, rest, false, nullptr);
  }
  if (any) out.push_back(open);
  return out;
}

}  // namespace

void fsdp_pass(const StepContext& ctx, const RankSet& ranks, const PipelineTasks& pipe,
               CommPlanner& planner, TaskGraph& g, GradientTasks& out) {
  const ParallelismSpec& p = ctx.p;
  if (p.zero_stage < 3) return;
  const GroupKind kind = shard_kind(p);
  const int local_shard = ctx.local_dp * ctx.L.cp;  // ranks in a local group
  const int shard = kind == GroupKind::dp ? p.shard_group() : local_shard;
  const int replicas = p.shard_group() / shard;
  const double grad_bytes = state_bytes_per_param(ctx.s.training).gradient;
  const double weight_bytes = state_bytes_per_param(ctx.s.training).weight;
  // DeepSpeed fills a reduce bucket across modules and layers and reduce-scatters it
  // before a gradient would overflow it (deepspeed/runtime/zero/stage3.py at edaa7221,
  // reduce_independent_p_g_buckets_and_remove_grads, called from reduce_ready_partitions_and_
  // remove_grads); FSDP reduce-scatters each unit's gradients on their own.
  const bool bucketed = p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed &&
                        p.fsdp_unit == ParallelismSpec::FsdpUnit::module;
  // PyTorch FSDP's passes over a unit's gradient before and after its reduce-scatter, in
  // bytes per gradient element reduced (fsdp_gradient_passes); none for the others.
  const std::vector<FsdpGradientPass> passes = fsdp_gradient_passes(ctx.s);
  // With expert parallelism the experts' weights are sharded over the ranks that hold the
  // same experts (expert_shard_group, as the memory model shards them): their gathers and
  // reduce-scatters run over that group, apart from the dense ones (Megatron-FSDP's expert
  // data-parallel group, torchtitan's dp_shard_mod_ep mesh for the experts' fully_shard,
  // DeepSpeed-MoE's expert data-parallel group); hybrid sharding and hpZ are refused with
  // ep > 1 (check_sharding). With ep 1 the experts are sharded as the rest, in the same
  // collectives.
  const bool split = p.ep > 1;
  // One side of the collectives of a rank's units: the rank that owns its group (the
  // group's first member), the group, its kind, which parameters, and DeepSpeed's reduce
  // bucket for them. Every dense (or whole) side first, then the expert sides, each in rank
  // order: a unit's experts are gathered after its dense part.
  struct Side {
    size_t owner;
    UnitPart part;
    GroupKind kind;
    std::vector<int> members;
    int replicas;
    double bucket = 0;    // gradient elements waiting in DeepSpeed's reduce bucket
    size_t bucket_k = 0;  // the need whose compute last added to it
  };
  std::vector<Side> sides;
  size_t needs = 0;
  for (size_t r = 0; r < ranks.size(); ++r) {
    needs = std::max(needs, pipe.fsdp[r].size());
    std::vector<int> members = ranks.shard_members(r, kind);
    if (members.front() == static_cast<int>(r) && shard >= 2)
      sides.push_back({r, split ? UnitPart::dense : UnitPart::all, kind, std::move(members),
                       replicas});
  }
  for (size_t r = 0; split && p.expert_shard_group() >= 2 && r < ranks.size(); ++r) {
    std::vector<int> experts = ranks.dp_members(r, true);
    if (experts.front() == static_cast<int>(r))
      sides.push_back({r, UnitPart::expert, GroupKind::expert_dp, std::move(experts), 1});
  }
  // With the experts apart, a rank takes part in collectives that other ranks own; each
  // rank's gathers, and its reduce-scatters, still run one after another on its own stream
  // (FSDP's all-gather and reduce-scatter streams), in the order issued: chained here.
  std::vector<MaybeTask> last_gather(ranks.size()), last_reduce(ranks.size());
  // One reduce-scatter of `elements` gradients of `side` once the compute of need k is done.
  auto reduce = [&](const Side& side, size_t k, double elements) {
    std::vector<int> after;
    for (int mr : side.members) {
      after.push_back(pipe.fsdp[mr][k].compute);
      if (split && last_reduce[static_cast<size_t>(mr)])
        after.push_back(*last_reduce[static_cast<size_t>(mr)]);
    }
    if (!passes.empty()) {
      // Timed on the unit's backward compute, which the reduce-scatter waits for.
      const Seconds extra = fsdp_gradient_pass_time(*ctx.model, passes, elements);
      for (int mr : side.members)
        g.tasks[static_cast<size_t>(pipe.fsdp[mr][k].compute)].work += extra;
    }
    int task = planner.collective(ranks, TaskKind::dp_comm, CollectiveOp::reduce_scatter,
                                  side.kind, side.members, after, Bytes(elements * grad_bytes),
                                  StreamKind::dp, true);
    for (int mr : side.members) last_reduce[static_cast<size_t>(mr)] = task;
    if (side.replicas > 1) {
      // Hybrid: the node's shard is then all-reduced across the replicas.
      task = planner.collective(ranks, TaskKind::dp_comm, CollectiveOp::all_reduce,
                                GroupKind::dp_cross, side.members, {task},
                                Bytes(elements * grad_bytes / shard));
    }
    for (int mr : side.members) {
      out.reductions[mr].push_back(task);
      // Megatron-FSDP: the rank's next block waits for its backward's reduce-scatters.
      g.depend(task, pipe.fsdp[mr][k].drain_before);
    }
  };
  // The all-gathers of need k's parameters in `side` before the unit's compute.
  auto gather = [&](const Side& side, size_t k) {
    const FsdpNeed& need = pipe.fsdp[side.owner][k];
    // hpZ: a backward gather reads the node's secondary copy, one collective per node
    // (none when a node holds a single data-parallel rank).
    const bool in_node = need.backward && p.zero_hpz;
    std::vector<std::vector<int>> gather_groups;
    if (!in_node) {
      gather_groups.push_back(side.members);
    } else if (local_shard >= 2) {
      for (int mr : side.members) {
        std::vector<int> local = ranks.local_members(static_cast<size_t>(mr));
        if (local.front() == mr) gather_groups.push_back(std::move(local));
      }
    }
    const std::vector<double> pieces = gather_pieces(p, need, side.part);
    // fp8 GEMM weights travel in 1 byte: each piece carries its share of them (the unit's
    // share, dense and expert alike).
    const double fp8_share = need.params > 0 ? need.fp8_params / need.params : 0.0;
    for (const std::vector<int>& group : gather_groups) {
      std::vector<int> after;
      for (int gr : group) {
        if (pipe.fsdp[gr][k].prereq) after.push_back(*pipe.fsdp[gr][k].prereq);
        if (split && last_gather[static_cast<size_t>(gr)])
          after.push_back(*last_gather[static_cast<size_t>(gr)]);
      }
      for (double piece : pieces) {
        const int task = planner.collective(
            ranks, TaskKind::param_gather, CollectiveOp::all_gather,
            in_node ? GroupKind::dp_local : side.kind, group, after,
            Bytes(piece * (1.0 - fp8_share) * weight_bytes + piece * fp8_share * 1.0),
            StreamKind::gather, true);
        for (int gr : group) {
          g.depend(task, pipe.fsdp[gr][k].compute);
          last_gather[static_cast<size_t>(gr)] = task;
        }
        after = {task};
      }
    }
  };
  // Need by need across every side, so that each rank's streams take their collectives in
  // schedule order.
  for (size_t k = 0; k < needs; ++k) {
    for (Side& side : sides) {
      if (k >= pipe.fsdp[side.owner].size()) continue;
      const FsdpNeed& need = pipe.fsdp[side.owner][k];
      if (need.gather) {
        // A forward gather starts a new forward pass: the last backward's bucket is reduced
        // at its end (DeepSpeed's independent_gradient_partition_epilogue).
        if (bucketed && !need.backward && side.bucket > 0) {
          reduce(side, side.bucket_k, side.bucket);
          side.bucket = 0;
        }
        gather(side, k);
      } else if (p.fsdp_unit == ParallelismSpec::FsdpUnit::layer) {
        const double elements = part_params(need, side.part);
        if (elements > 0 || side.part == UnitPart::all) reduce(side, k, elements);
      } else if (!bucketed) {
        // PyTorch FSDP wrapped per module: each module's gradients reduce-scattered.
        for (double m : reduce_modules(need, side.part)) reduce(side, k, m);
      } else {
        for (double m : reduce_modules(need, side.part)) {
          if (side.bucket > 0 && side.bucket + m > p.fsdp_reduce_bucket) {
            reduce(side, k, side.bucket);
            side.bucket = 0;
          }
          side.bucket += m;
        }
        side.bucket_k = k;
      }
    }
  }
  for (Side& side : sides)
    if (bucketed && side.bucket > 0) reduce(side, side.bucket_k, side.bucket);
}

std::optional<TrainingSpec::GradBuckets> grad_buckets(const StepContext& ctx) {
  const ParallelismSpec& p = ctx.p;
  if (p.pipeline_engine != PipelineEngine::megatron || p.zero_stage > 1 || ctx.dual)
    return std::nullopt;
  return ctx.s.training.grad_buckets;
}

bool gather_with_optimizer_step(const StepContext& ctx) {
  return ctx.s.training.overlap_param_gather_with_optimizer_step && param_gather_in_forward(ctx) &&
         grad_buckets(ctx) == TrainingSpec::GradBuckets::megatron_core;
}

bool bucket_per_layer(const StepContext& ctx) {
  return grad_buckets(ctx) == TrainingSpec::GradBuckets::apex_distributed_adam &&
         ctx.p.virtual_pipeline_stages == 1;
}

// Megatron-Core's aligned gradient reduction in the non-interleaved 1F1B schedule: with
// --overlap-grad-reduce, Megatron-LM sets config.grad_sync_func to the model's
// start_grad_sync while align_grad_reduce is on, its default (megatron/training/config/
// common_config.py and training.py, NVIDIA/Megatron-LM d98e8a64; at core_r0.8.0, the
// Megatron-Core of the README's H100 table, delay_grad_reduce, on unless
// --no-delay-grad-reduce, megatron/training/arguments.py and training.py). With it,
// forward_backward_pipelining_without_interleaving enables the per-bucket reduction
// during the last backward on the first pipeline stage only ("Other pipeline stages do
// grad reduction during pipeline bubble", megatron/core/pipeline_parallel/schedules.py
// at both commits); every other stage launches all its buckets once its last backward
// (and that backward's send) is done, so that the reduction does not slow the compute
// the earlier stages wait for. forward_backward_pipelining_with_interleaving enables no
// per-bucket reduction at all: after its backward block k, pipeline rank r launches
// every bucket of the chunk whose last backward was block k - r (the blocks counted in
// the schedule table's order, the same on every rank), and whatever chunk is left after
// its last block ("Asynchronous communication tends to slow down compute ... we launch
// asynchronous communication at the same time across the pipeline-parallel group",
// backward_step_helper_postprocess at d98e8a64, the same at core_r0.8.0).
bool aligned_grad_reduce(const StepContext& ctx, int stage) {
  const ParallelismSpec& p = ctx.p;
  if (p.pp <= 1 || p.pipeline_engine != PipelineEngine::megatron || p.zero_stage > 1 ||
      ctx.dual || !ctx.s.training.overlap_grad_reduce)
    return false;
  if (p.schedule == PipelineSchedule::interleaved_1f1b) return true;
  return p.schedule == PipelineSchedule::one_f_one_b && p.virtual_pipeline_stages == 1 &&
         stage != 0;
}

// The task after which rank `mr`'s aligned reduction launches the buckets of `chunk`
// (aligned_grad_reduce): its last compute task without interleaving, else the end of its
// backward block (the chunk's last + its stage), or its last compute task past the end.
MaybeTask aligned_launch(const StepContext& ctx, const RankSet& ranks, const PipelineTasks& pipe,
                         int mr, int chunk) {
  const size_t m = static_cast<size_t>(mr);
  if (ctx.p.schedule != PipelineSchedule::interleaved_1f1b) return pipe.last_compute[m];
  const std::vector<BackwardEnd>& ends = pipe.backward_ends[m];
  size_t last = ends.size();
  for (size_t k = 0; k < ends.size(); ++k)
    if (ends[k].chunk == chunk) last = k;
  ORRERY_CHECK(last < ends.size(), "a chunk with gradients has a backward block");
  const size_t launch = last + static_cast<size_t>(ranks[m].s);
  return launch < ends.size() ? ends[launch].task : pipe.last_compute[m];
}

// One gradient bucket of the whole-model reduction, closed by the rule of
// dense_bucket_sizes (a layer with expert parameters joins whole, its experts counted
// too): the index of the layer holding its last parameter, whose backward task makes it
// final, its dense and expert parameters and their shapes (for compression). A layer's
// backward is one task, so a bucket closed inside a layer waits for the layer's end: up to
// one layer's backward later than Megatron-Core's hook, which fires with that parameter's
// weight gradient.
struct GradBucket {
  size_t last = 0;
  std::pair<double, double> params{0.0, 0.0};
  GradientShape shape[2];  // dense, expert
};

void grad_sync_pass(const StepContext& ctx, const RankSet& ranks, const StageLayers& layers,
                    const PipelineTasks& pipe, CommPlanner& planner, TaskGraph& g,
                    GradientTasks& out) {
  const ParallelismSpec& p = ctx.p;
  const bool distributed = p.zero_stage >= 1;
  // Buckets in backward order, each chunk's size as Megatron-Core sets it
  // (chunk_bucket_params).
  // ZeRO-2 without overlap: each rank's compute-stream tasks so far, in stream order
  // (its tasks are issued in schedule order), and the first after a given task.
  std::vector<std::vector<int>> compute_tasks(ranks.size());
  if (p.zero_stage == 2 && !ctx.s.training.overlap_grad_reduce) {
    for (size_t i = 0; i < g.tasks.size(); ++i) {
      const Task& t = g.tasks[i];
      if (t.stream == StreamKind::compute)
        compute_tasks[static_cast<size_t>(t.rank)].push_back(static_cast<int>(i));
    }
  }
  auto next_compute = [&](int mr, int task) -> MaybeTask {
    const std::vector<int>& list = compute_tasks[static_cast<size_t>(mr)];
    const auto it = std::upper_bound(list.begin(), list.end(), task);
    return it == list.end() ? std::nullopt : MaybeTask(*it);
  };
  for (size_t r = 0; r < ranks.size(); ++r) {
    // Bucket boundaries over the gradients this rank's collectives carry: identical for
    // every rank of a stage (and its mirror's copy).
    const std::vector<GradReady>& owned = pipe.grads[r][0];
    std::vector<GradBucket> buckets;
    {
      GradBucket open;
      // Megatron-Core's buckets never span two model chunks (one DDP buffer a chunk); the
      // aligned reduction launches them a chunk at a time.
      const bool aligned = aligned_grad_reduce(ctx, ranks[r].s);
      const bool per_chunk = aligned || grad_buckets(ctx).has_value();
      // Apex DistributedFusedAdam without interleaving: one bucket a transformer layer, the
      // stage's first (the last in backward order) open for what follows it (bucket_per_layer).
      const bool per_layer = bucket_per_layer(ctx);
      size_t first_layer = owned.size();
      for (size_t i = 0; i < owned.size(); ++i)
        if (owned[i].layer->kind == LayerKind::transformer) first_layer = i;
      auto close = [&](size_t i) {
        open.last = i;
        buckets.push_back(open);
        open = GradBucket{};
      };
      for (size_t i = 0; i < owned.size(); ++i) {
        const Layer& layer = *owned[i].layer;
        out.dense_total[r] += owned[i].dense_params;
        const bool chunk_ends =
            per_chunk && i + 1 < owned.size() && owned[i + 1].chunk != owned[i].chunk;
        const double bucket = chunk_bucket_params(ctx, ranks[r].s, owned[i].chunk);
        if (owned[i].expert_params > 0) {
          // A layer with expert parameters (their own buffer in Megatron-Core) joins a
          // bucket whole.
          open.params.first += owned[i].dense_params;
          open.params.second += owned[i].expert_params;
          add_gradients(open.shape[0], layer, false);
          add_gradients(open.shape[1], layer, true);
          if (open.params.first + open.params.second >= bucket) close(i);
        } else {
          // The layer's parameters in backward order (its ops reversed), the bucket closing
          // at the first one that brings it to `bucket` elements.
          for (auto op = layer.ops.rbegin(); op != layer.ops.rend(); ++op) {
            if (op->params <= 0) continue;
            open.params.first += op->params;
            add_op_gradients(open.shape[0], *op);
            if (open.params.first >= bucket) close(i);
          }
        }
        const bool layer_ends =
            per_layer && layer.kind == LayerKind::transformer && i != first_layer;
        if ((i + 1 == owned.size() || chunk_ends || layer_ends) &&
            open.params.first + open.params.second > 0)
          close(i);
      }
    }
    double all_dense = 0, all_expert = 0;  // every chunk this rank updates
    for (const std::vector<GradReady>& list : pipe.grads[r]) {
      for (const GradReady& gr : list) {
        all_dense += gr.dense_params;
        all_expert += gr.expert_params;
      }
    }
    out.local_params[r] =
        all_dense / (distributed ? p.shard_group() * copies(ctx) : 1) +
        all_expert / (distributed ? std::max(1, p.expert_shard_group()) * copies(ctx) : 1);
    if (ctx.s.training.stack.optimizer == StackSpec::OptimizerKernels::per_parameter) {
      // The tensors torch's optimizer is handed (validated: zero_stage 0, or 3 under FSDP1
      // or FSDP2). Without sharding, the model's own parameters. FSDP1 (use_orig_params
      // False, its default) hands it one FlatParameter a unit, the unit's parameters
      // flattened and concatenated, this rank's shard of it (FlatParameter and _params,
      // "If use_orig_params=True ... otherwise None", torch/distributed/fsdp/_flat_param.py
      // at pytorch/pytorch fe03cf69): one tensor a layer. FSDP2 shards each parameter on
      // its own (a DTensor a parameter): every tensor, its 1/group share.
      // Dense models only (validated).
      const double group = p.zero_stage >= 3 ? p.zero3_group(ctx.s.cluster.gpus_per_node) : 1;
      std::vector<double>& tensors = out.local_tensors[r];
      for (int c = 0; c < p.virtual_pipeline_stages; ++c) {
        for (const Layer* l : layers.of(ranks[r].s, c)) {
          if (p.zero_stage >= 3 && p.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp1) {
            if (l->params() > 0) tensors.push_back(l->params() / group);
            continue;
          }
          const std::vector<double> mine = l->parameter_tensors();
          for (double t : mine) tensors.push_back(t / group);
        }
      }
    }
    if (p.zero_stage >= 3) {
      // No buckets: per-layer reduce-scatters were wired by fsdp_pass. The shard of every
      // layer of the stage is updated.
      double dense3 = 0, expert3 = 0;
      for (int c = 0; c < p.virtual_pipeline_stages; ++c) {
        for (const Layer* l : layers.of(ranks[r].s, c)) {
          dense3 += l->params() - l->expert_params();
          expert3 += l->expert_params();
        }
      }
      const double group = p.zero3_group(ctx.s.cluster.gpus_per_node);
      out.local_params[r] =
          dense3 / group + expert3 / std::max(1.0, group * p.tp / (static_cast<double>(p.etp()) * p.ep));
      continue;
    }
    if (p.zero_stage == 2) {
      // Sharded gradients cannot be kept whole across micro-batches: every block that
      // computes weight gradients reduce-scatters them in its backward, each rank adding
      // its shard into its sharded buffer (Megatron-FSDP optim_grads: "gradient
      // reduce-scatter is overlapped with backward compute and accumulated during every
      // backward pass", docs/user-guide/features/megatron_fsdp.md, and
      // grad_reduce_every_bprop in megatron_fsdp.py _process_post_backward_gradients,
      // NVIDIA/Megatron-LM d98e8a64; DeepSpeed reduces in every backward when it
      // partitions gradients, `partition_gradients or is_gradient_accumulation_boundary()`
      // in stage_1_and_2.py reduce_ready_partitions_and_remove_grads, deepspeedai/
      // DeepSpeed edaa7221). Without overlap_grad_reduce (DeepSpeed's overlap_comm false,
      // its stage-2 default: the reduction runs on the compute stream) a bucket leaves
      // once its gradients are final and the member's next compute task waits for it;
      // under DualPipe, whose groups join two stages of different schedules, it waits for
      // the end of the block's backward instead and holds nothing.
      if (!ctx.gradient_sync) continue;
      const std::vector<std::vector<GradReady>>& blocks = pipe.micro_grads[r][0];
      for (size_t k = 0; k < blocks.size(); ++k) {
        for (const Zero2Bucket& b : zero2_buckets(ctx, blocks[k])) {
          auto ready_of = [&, k, last = b.last](int mr, int list) {
            const std::vector<std::vector<GradReady>>& theirs = pipe.micro_grads[mr][list];
            ORRERY_CHECK(theirs.size() == blocks.size() && theirs[k].size() == blocks[k].size(),
                         "the members of a ZeRO-2 reduction compute the same gradients");
            const MaybeTask ready = theirs[k][last].task;
            if (ctx.dual) return BucketReady{ready, theirs[k].back().task, std::nullopt};
            return BucketReady{ready, ready, ready ? next_compute(mr, *ready) : std::nullopt};
          };
          reduce_bucket(ctx, ranks, planner, g, out, r, ready_of, {b.dense, b.expert}, b.shape);
        }
      }
      continue;
    }
    for (const GradBucket& b : buckets) {
      if (!ctx.gradient_sync) continue;  // local SGD between averagings
      auto ready_of = [&, last = b.last](int mr, int list) {
        const MaybeTask ready =
            aligned_grad_reduce(ctx, ranks[static_cast<size_t>(mr)].s)
                ? aligned_launch(ctx, ranks, pipe, mr, pipe.grads[mr][list][last].chunk)
                : pipe.grads[mr][list][last].task;
        return BucketReady{ready, pipe.last_compute[mr], std::nullopt};
      };
      reduce_bucket(ctx, ranks, planner, g, out, r, ready_of, b.params, b.shape);
    }
  }
}

std::vector<double> dense_bucket_sizes(const std::vector<const Layer*>& layers, double bucket,
                                       bool per_layer) {
  std::vector<double> sizes;
  double open = 0;
  auto add = [&](double params) {
    open += params;
    if (open >= bucket) {
      sizes.push_back(open);
      open = 0;
    }
  };
  const Layer* first_layer = nullptr;  // the last transformer layer in backward order
  for (const Layer* l : layers)
    if (l->kind == LayerKind::transformer) first_layer = l;
  for (const Layer* l : layers) {
    if (l->expert_params() > 0) {
      add(l->params() - l->expert_params());
    } else {
      for (auto op = l->ops.rbegin(); op != l->ops.rend(); ++op)
        if (op->params > 0) add(op->params);
    }
    if (per_layer && l->kind == LayerKind::transformer && l != first_layer && open > 0) {
      sizes.push_back(open);
      open = 0;
    }
  }
  if (open > 0) sizes.push_back(open);
  return sizes;
}

// Tied word embeddings on two pipeline stages (StageLayers: the head's stage holds a copy
// of the table) have their gradients summed between the two copies once a step: dist.
// all_reduce over the group of the first- and last-stage GPUs of one tensor, context and
// data index.
//  - DeepSpeed's PipelineEngine, in the TrainSchedule's last step, runs ReduceTiedGrads
//    before ReduceGrads, on `weight._hp_grad if self.bfloat16_enabled() else weight.grad`
//    (_exec_reduce_tied_grads in deepspeed/runtime/pipe/engine.py, microsoft/DeepSpeed
//    56c522386878): under BF16_Optimizer the fp32 accumulation buffer (4 bytes an
//    element), else the gradient in the scenario's gradient dtype.
//  - Megatron-LM all-reduces the word embeddings' main_grad over its embedding group after
//    the data-parallel gradient reduction and before the optimizer (train_step in
//    megatron/training.py at NVIDIA/Megatron-LM 6985e589; _allreduce_word_embedding_grads
//    after finish_grad_sync in megatron/core/distributed/finalize_model_grads.py at
//    d98e8a64), in the gradient buffer's dtype (the scenario's gradient dtype).
// The table is vocabulary-parallel: ceil(V / tp) x h elements a GPU.
double tied_embedding_bytes(const StepContext& ctx) {
  return embedding_group_allreduce_bytes(ctx.s);
}

void tied_embedding_pass(const StepContext& ctx, const RankSet& ranks, const PipelineTasks& pipe,
                         CommPlanner& planner, GradientTasks& out, bool after_reduction) {
  const bool deepspeed = ctx.p.pipeline_engine == PipelineEngine::deepspeed;
  if (deepspeed == after_reduction) return;
  const double bytes = tied_embedding_bytes(ctx);
  if (bytes <= 0) return;
  for (size_t r = 0; r < ranks.size(); ++r) {
    if (ranks[r].s != 0) continue;
    const std::vector<int> members = ranks.embedding_members(r, ctx.L.embedding_stages);
    std::vector<int> after;
    for (int mr : members) {
      const size_t m = static_cast<size_t>(mr);
      if (const MaybeTask last = pipe.last_compute[m]) after.push_back(*last);
      if (after_reduction) after.insert(after.end(), out.reductions[m].begin(), out.reductions[m].end());
    }
    const int task = planner.collective(ranks, TaskKind::dp_comm, CollectiveOp::all_reduce,
                                        GroupKind::embedding, members, after, Bytes(bytes));
    for (int mr : members) {
      out.tied[static_cast<size_t>(mr)] = task;
      out.reductions[static_cast<size_t>(mr)].push_back(task);
    }
  }
}

double grad_bucket_params(const StepContext& ctx) {
  return ctx.s.training.grad_bucket_params.value_or(
      deepspeed_bf16_optimizer(ctx) ? 500e6 : megatron_default_bucket_params(ctx.s));
}

double chunk_bucket_params(const StepContext& ctx, int stage, int chunk) {
  using B = TrainingSpec::GradBuckets;
  const std::optional<B> kind = grad_buckets(ctx);
  const TrainingSpec& t = ctx.s.training;
  const double none = std::numeric_limits<double>::infinity();
  if (kind == B::apex_distributed_adam) return none;  // a layer or a chunk a bucket
  if (kind == B::megatron_core && (!t.overlap_grad_reduce || stage > 0 || chunk > 0 ||
                                   t.overlap_param_gather_with_optimizer_step))
    return none;
  return grad_bucket_params(ctx);
}

MegatronStepPasses megatron_step_passes(const StepContext& ctx, double stage_params,
                                        double local_params) {
  MegatronStepPasses out;
  if (grad_buckets(ctx) != TrainingSpec::GradBuckets::megatron_core) return out;
  const TrainingSpec& t = ctx.s.training;
  const double g = state_bytes_per_param(t).gradient;
  // zero_grad_buffer: grad_data.zero_() over every buffer of the rank, unsharded.
  out.after = elementwise_time(ctx, 0.0, g * stage_params);
  // The fp32 main gradients: a 16-bit buffer's shard is cast (.float(): read g, write 4)
  // unless the optimizer reads it as is, which Megatron-Core does only where
  // use_precision_aware_optimizer_no_fp8_or_ds_fp8 holds (optimizer_config.py lines
  // 407-414 at d98e8a64): the precision-aware optimizer (which bf16 moments, 16-bit master
  // weights and the CPU offload need, arguments.py) and, besides, master weights not in
  // fp32, no fp8 recipe, delayed scaling, or the offload. The norm reads the main
  // gradients; loss scaling's unscale reads and writes them; the fused step's gradient
  // read and the unscale are counted at the buffer's width (optimizer_bytes_per_param), so
  // a cast main gradient adds 4 - g to each of those three.
  const bool precision_aware = t.optimizer_state_dtype != StateDtype::fp32 ||
                               t.main_params_dtype != MainParams::fp32 ||
                               t.optimizer_offload.has_value();
  const bool quantized = (t.fp8 && t.fp8->scaling != Fp8Spec::Scaling::delayed) || t.fp4;
  const bool reads_buffer =
      precision_aware &&
      (t.main_params_dtype != MainParams::fp32 || !quantized || t.optimizer_offload.has_value());
  const bool scaled = t.loss_scaling.effective(t.precision) != LossScalingSpec::Kind::none;
  if (g < 4.0 && !reads_buffer) {
    const double wider = 4.0 - g;  // each further pass over the fp32 copy
    out.before += elementwise_time(ctx, g * local_params, 4.0 * local_params, true) +
                  elementwise_time(ctx, (scaled ? 3.0 : 1.0) * wider * local_params, 0.0);
  }
  out.before += elementwise_time(ctx, (reads_buffer ? g : 4.0) * local_params, 0.0);
  return out;
}

Seconds optimizer_step_time(const Scenario& s, const ComputeModel& model, double params,
                            const std::vector<double>& tensors, Seconds* gpu_share) {
  const TrainingSpec& t = s.training;
  const auto on_gpu = [&](Seconds all) {
    if (gpu_share) *gpu_share = all;
    return all;
  };
  if (t.stack.optimizer == StackSpec::OptimizerKernels::per_parameter)
    return on_gpu(model.optimizer_time_per_tensor(tensors));  // no offload (validated)
  if (!t.optimizer_offload) return on_gpu(model.optimizer_time(params));
  // Megatron-Core's hybrid device optimizer (hybrid_optimizer.py at NVIDIA/Megatron-LM
  // d98e8a64): the first `fraction` of the shard steps on the CPU. Its gradients go to
  // pinned host memory (D2H, the gradient dtype), torch's fused CPU AdamW reads the
  // gradient and reads and writes the fp32 parameter and two fp32 moments (4 + 8 + 16 =
  // 28 bytes) at the node's host memory bandwidth shared by its GPUs' optimizers, and the
  // fp32 parameters come back (H2D, 4 bytes) for the GPU to cast. The rest steps on the
  // GPU as without offload.
  const double off = t.optimizer_offload->fraction * params;
  const Seconds gpu = model.optimizer_time(params - off);
  if (gpu_share) *gpu_share = gpu;
  const HostSpec& host = s.cluster.host;
  const Seconds d2h(off * state_bytes_per_param(t).gradient / host.pcie_bandwidth.value());
  const Seconds h2d(off * 4.0 / host.pcie_bandwidth.value());
  const Seconds cpu(off * 28.0 * s.cluster.gpus_per_node / host.memory_bandwidth.value());
  if (t.optimizer_offload->overlap) {
    // --overlap-cpu-optimizer-d2h-h2d: copies down and up on their own streams, each
    // parameter's CPU step as soon as its gradient has arrived: the slowest of the four.
    return std::max({gpu, d2h, cpu, h2d});
  }
  // Default: every copy on the compute stream, in order: all gradients down, the GPU
  // share's step, then each parameter up after its CPU step (which starts once its own
  // gradient is down).
  return std::max(d2h + gpu + h2d, cpu);
}

std::vector<int> optimizer_pass(const StepContext& ctx, const RankSet& ranks,
                                const PipelineTasks& pipe, const GradientTasks& grads,
                                CommPlanner& planner, TaskGraph& g) {
  const ParallelismSpec& p = ctx.p;
  std::vector<int> optimizer;
  // --overlap-param-gather-with-optimizer-step: the first chunk's optimizer (a chained
  // optimizer of its own) steps first and its parameters' gather is dispatched at once, one
  // bucket, under the other chunks' step (ChainedOptimizer._step in
  // megatron/core/optimizer/optimizer.py, start_param_sync(force_dispatch=True); the
  // chunk's DDP skips its own dispatch, distributed_data_parallel.py; NVIDIA/Megatron-LM
  // d98e8a64). In the steady state that gather, of the step's update, is what the next
  // step's first forward of chunk 0 waits for, so it ends this step (pipeline_pass builds
  // no gather into chunk 0's forward).
  const bool with_step = gather_with_optimizer_step(ctx);
  const StageLayers stage_layers(ctx);
  auto params_of = [&](int stage, int chunk, bool dense) {
    double n = 0;
    for (const Layer* l : stage_layers.of_block(stage, chunk))
      n += dense ? l->params() - l->expert_params() : l->params();
    return n;
  };
  std::vector<int> first_chunk(ranks.size(), -1);  // the task ending chunk 0's step
  for (size_t r = 0; r < ranks.size(); ++r) {
    Task opt;
    opt.kind = TaskKind::optimizer;
    opt.stream = StreamKind::compute;
    opt.rank = static_cast<int>(r);
    Seconds gpu;
    const Seconds step = optimizer_step_time(ctx.s, *ctx.model, grads.local_params[r],
                                             grads.local_tensors[r], &gpu);
    opt.work = step + grads.decode[r];
    // With optimizer offload, the copies and the CPU step are waits of the GPU's, which a
    // fault or a slow machine does not stretch (the engine's computing share).
    if (ctx.s.training.optimizer_offload) opt.offload = step - gpu;
    double stage_params = 0;  // every parameter of the rank's chunks (its gradient buffers)
    for (int c = 0; c < stage_layers.chunks(); ++c) stage_params += params_of(ranks[r].s, c, false);
    const MegatronStepPasses passes =
        megatron_step_passes(ctx, stage_params, grads.local_params[r]);
    const double dense0 = with_step ? params_of(ranks[r].s, 0, true) : 0.0;
    if (dense0 > 0) {
      // Chunk 0's share of the step: its optimizer holds chunk 0's dense parameters only
      // (their shard), the expert parameters of every chunk being stepped by an optimizer
      // of their own, last (get_megatron_optimizer's is_expert_parallel filter and the
      // expert optimizer appended after the dense ones, megatron/core/optimizer/
      // __init__.py at d98e8a64).
      const double local = grads.local_params[r];
      const double share =
          local > 0 ? std::min(1.0, dense0 / (p.shard_group() * copies(ctx)) / local) : 0.0;
      Task first = opt;
      first.work = opt.work * share + passes.before;
      first.offload = opt.offload * share;
      opt.work = opt.work * (1.0 - share) + passes.after;
      opt.offload = opt.offload - first.offload;
      const int first_id = planner.issue(first);
      g.depend(pipe.last_compute[r], first_id);
      for (int d : grads.reductions[r]) g.depend(d, first_id);
      first_chunk[r] = first_id;
    } else {
      opt.work += passes.before + passes.after;
    }
    const int opt_id = planner.issue(opt);
    g.depend(pipe.last_compute[r], opt_id);
    for (int d : grads.reductions[r]) g.depend(d, opt_id);
    if (first_chunk[r] >= 0) g.depend(first_chunk[r], opt_id);
    optimizer.push_back(opt_id);
  }
  if (with_step) {
    for (size_t r = 0; r < ranks.size(); ++r) {
      const std::vector<int> members = ranks.reduce_members(r, false, false);
      if (members.front() != static_cast<int>(r)) continue;
      const std::vector<const Layer*> chunk0 = stage_layers.of_block(ranks[r].s, 0);
      const double dense = params_of(ranks[r].s, 0, true);
      if (dense <= 0) continue;
      std::vector<int> after;
      for (int mr : members) after.push_back(first_chunk[static_cast<size_t>(mr)]);
      planner.collective(ranks, TaskKind::param_gather, CollectiveOp::all_gather, GroupKind::dp,
                         members, after, Bytes(dense * dense_gather_bytes_per_param(ctx, chunk0)));
    }
  }
  // The distributed optimizer's all-gather of the updated parameters, when it is not
  // hidden under the next step's forward.
  const bool distributed = p.zero_stage >= 1;
  if (distributed && !ctx.s.training.overlap_param_gather && p.shard_group() * copies(ctx) > 1) {
    for (size_t r = 0; r < ranks.size(); ++r) {
      const std::vector<int> members = ranks.reduce_members(r, false, ctx.dual);
      if (members.front() != static_cast<int>(r)) continue;
      std::vector<const Layer*> held;
      for (int c = 0; c < stage_layers.chunks(); ++c)
        for (const Layer* l : stage_layers.of_block(ranks[r].s, c)) held.push_back(l);
      const double weight_bytes = dense_gather_bytes_per_param(ctx, held);
      std::vector<int> after;
      for (int mr : members) after.push_back(optimizer[mr]);
      planner.collective(ranks, TaskKind::param_gather, CollectiveOp::all_gather,
                         ctx.dual ? GroupKind::dp_mirror : GroupKind::dp, members, after,
                         Bytes(grads.dense_total[r] * weight_bytes));
    }
  }
  return optimizer;
}

}  // namespace orrery::detail

namespace orrery {

double megatron_default_bucket_params(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const bool megatron_lm = s.training.stack.preset == StackSpec::Preset::megatron_core &&
                           s.training.grad_buckets.has_value();
  return std::max(40e6, 1e6 * (megatron_lm ? p.dp * p.cp : p.dp));
}

bool tied_embedding_copy(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  // A validated pipeline_layout puts E on rank 0 and L on rank pp - 1 (scenario/validate_parallelism.cpp).
  return p.pp >= 2 && m.is_transformer() && m.tied_embeddings &&
         p.schedule != PipelineSchedule::dualpipe;
}

namespace {

// The gradient bytes of a GPU's share of a copy of the word embedding: ceil(V / tp) x h in
// the gradient buffer's dtype (DeepSpeed's BF16_Optimizer: its fp32 buffer); none under
// ZeRO-3, whose reduce-scatters cover it.
double word_embedding_gradient_bytes(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  if (p.zero_stage >= 3) return 0.0;
  const double vocab_share = std::ceil(static_cast<double>(m.vocab) / p.tp);
  // DeepSpeed's BF16_Optimizer: its fp32 buffer.
  const double bytes =
      deepspeed_bf16_optimizer(s) ? 4.0 : state_bytes_per_param(s.training).gradient;
  return vocab_share * static_cast<double>(m.hidden) * bytes;
}

}  // namespace

std::vector<int> embedding_group_stages(const Scenario& s) {
  std::vector<int> out{0};
  if (tied_embedding_copy(s)) out.push_back(s.parallelism.pp - 1);
  const int mtp = mtp_embedding_copy_rank(s.model, s.parallelism);
  if (mtp >= 0) out.push_back(mtp);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());  // a tied last rank with MTP
  return out;
}

double embedding_group_allreduce_bytes(const Scenario& s) {
  return embedding_group_stages(s).size() < 2 ? 0.0 : word_embedding_gradient_bytes(s);
}

double tied_embedding_allreduce_bytes(const Scenario& s) {
  return tied_embedding_copy(s) ? word_embedding_gradient_bytes(s) : 0.0;
}

namespace {

double gradient_predivide_factor(int world) {
  int factor = 1;
  while (world % factor == 0 && world / factor > factor) factor *= 2;
  return factor;
}

}  // namespace

std::vector<FsdpGradientPass> fsdp_gradient_passes(const Scenario& s) {
  std::vector<FsdpGradientPass> out;
  const ParallelismSpec& p = s.parallelism;
  using I = ParallelismSpec::FsdpImpl;
  if (p.zero_stage < 3 || (p.fsdp_impl != I::fsdp1 && p.fsdp_impl != I::fsdp2)) return out;
  const StateBytes sb = state_bytes_per_param(s.training);
  const double weight_bytes = sb.weight, grad_bytes = sb.gradient;
  // The divide factors count the whole data-parallel world; the post-divide runs on this
  // rank's shard of the unit, 1 / (ranks the unit is sharded over) of it.
  const int world = p.shard_group();
  const int shard = p.zero3_group(s.cluster.gpus_per_node);
  const double pre = gradient_predivide_factor(world);
  const double post = world / pre;
  bool divides = true;
  if (p.fsdp_impl == I::fsdp1) {
    out.push_back({"assembly of the flat gradient", 2 * weight_bytes});
    if (grad_bytes != weight_bytes)
      out.push_back({"cast to the reduce dtype", weight_bytes + grad_bytes, true});
  } else {
    // Under a pipeline (fsdp_pipeline_deferred) the input is the accumulated gradient,
    // already in the reduce dtype.
    out.push_back({"copy-in to the reduce-scatter input",
                   (fsdp_pipeline_deferred(p, s.training) ? grad_bytes : weight_bytes) +
                       grad_bytes});
    divides = s.training.gradient_dtype == Dtype::fp16;
  }
  if (divides && pre > 1)
    out.push_back({fmt::format("pre-divide by {:g}", pre), 2 * grad_bytes});
  if (divides && post > 1)
    out.push_back({fmt::format("post-divide of the shard by {:g}", post), 2 * grad_bytes / shard});
  return out;
}

}  // namespace orrery
