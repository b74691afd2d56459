// The pipeline pass: every simulated rank's compute stream runs its schedule's blocks
// (simulator/schedule.h), built from layer templates or op by op, and each block's output
// crosses to the next position of the pipeline as a send/recv flow.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "core/error.h"
#include "core/number_format.h"
#include "model/memory.h"
#include "model/pipeline.h"
#include "simulator/schedule.h"
#include "simulator/step.h"
#include "simulator/step_passes.h"

namespace orrery::detail {

namespace {

// The layer that runs the multi-token-prediction layers, with the copy of the word embedding
// their rank keeps (mtp_embedding_copy_rank, model/pipeline.h; `table` elements a GPU) as
// the parameter of their lookup: reduced over the data-parallel group, stepped, and summed
// with the first stage's in the embedding group (tied_embedding_pass). The workload counts
// the table once (on the embedding).
std::shared_ptr<const Layer> with_mtp_table(const Layer& l, double table) {
  auto copy = std::make_shared<Layer>(l);
  for (Op& op : copy->ops) {
    if (op.kind == OpKind::embedding) {
      op.params += table;
      break;
    }
  }
  return copy;
}

}  // namespace

StageLayers::StageLayers(const StepContext& ctx)
    : pp_(ctx.p.pp), vp_(ctx.p.virtual_pipeline_stages), dual_(ctx.dual) {
  const Scenario& s = ctx.s;
  const ParallelismSpec& p = ctx.p;
  chunks_ = dual_ ? 2 : vp_;
  // A GPU's share of a copy of the vocabulary-parallel word embedding.
  const double table =
      std::ceil(static_cast<double>(s.model.vocab) / p.tp) * static_cast<double>(s.model.hidden);
  std::vector<std::pair<int, int>> place;
  std::pair<int, int> mtp_at{0, 0};
  if (s.model.is_transformer()) {
    const PipelineLayout layout = pipeline_layout(s.model, p);
    place = layout.place_of_layers();
    embedding_at_ = {layout.embedding_stage % pp_, layout.embedding_stage / pp_};
    head_at_ = {layout.loss_stage % pp_, layout.loss_stage / pp_};
    mtp_at = {layout.mtp_stage % pp_, layout.mtp_stage / pp_};
  }
  layers_.assign(pp_, std::vector<std::vector<const Layer*>>(vp_));
  std::size_t index = 0;
  for (const Layer& l : ctx.work.layers) {
    if (l.kind == LayerKind::embedding) {
      embedding_ = &l;
    } else if (l.kind == LayerKind::head) {
      head_ = &l;
    } else if (l.kind == LayerKind::cnn) {
      layers_[0][0].push_back(&l);  // CNNs are data parallel only (validated): one stage
    } else if (l.kind == LayerKind::mtp) {
      // A multi-token-prediction stage of its own, with its copy of the word embedding
      // (with_mtp_table, below).
      mtp_ = with_mtp_table(l, table);
      layers_[mtp_at.first][mtp_at.second].push_back(mtp_.get());
    } else {
      const auto [stage, chunk] = place.at(index++);
      layers_[stage][chunk].push_back(&l);
    }
  }
  // Tied word embeddings whose head sits on another GPU than the embedding
  // (tied_embedding_copy; under DualPipe the first and last ranks hold both): that stage
  // holds a copy of the table as a parameter of its own (Megatron-LM's
  // initialize_word_embeddings, megatron/model/module.py at NVIDIA/Megatron-LM 6985e589, and
  // Megatron-Core's setup_embeddings_and_output_layer; DeepSpeed's TiedLayerSpec module on
  // each stage that uses it, deepspeed/runtime/pipe/module.py at microsoft/DeepSpeed
  // 56c522386878), whose gradient is accumulated, reduced over the data-parallel group,
  // stepped and gathered with the stage's others; the two copies' gradients are summed
  // between the stages (tied_embedding_pass). The workload counts the table once (on the
  // embedding); the memory model counts the copy (model/memory.cpp).
  if (head_ && tied_embedding_copy(s)) {
    auto copy = std::make_shared<Layer>(*head_);
    for (Op& op : copy->ops)
      if (op.name == "head.output") op.params += table;
    tied_head_ = std::move(copy);
    head_ = tied_head_.get();
  }
  // MTP layers with the loss: their table beside the head's (a tied one included).
  if (head_ && !mtp_ && mtp_embedding_copy_rank(s.model, p) >= 0) {
    tied_head_ = with_mtp_table(*head_, table);
    head_ = tied_head_.get();
  }
}

std::vector<const Layer*> StageLayers::of(int stage, int chunk) const {
  std::vector<const Layer*> out;
  if (std::pair{stage, chunk} == embedding_at_ && embedding_) out.push_back(embedding_);
  for (const Layer* l : layers_[stage][chunk]) out.push_back(l);
  if (std::pair{stage, chunk} == head_at_ && head_) out.push_back(head_);
  return out;
}

std::vector<const Layer*> StageLayers::of_block(int stage, int chunk) const {
  return dual_ ? of(chunk == 0 ? stage : pp_ - 1 - stage, 0) : of(stage, chunk);
}

bool deepspeed_bf16_optimizer(const StepContext& ctx) {
  return orrery::deepspeed_bf16_optimizer(ctx.s);
}

double dense_gather_bytes_per_param(const StepContext& ctx,
                                    const std::vector<const Layer*>& layers) {
  const double weight = state_bytes_per_param(ctx.s.training).weight;
  if (!ctx.s.training.fp8 || !ctx.s.training.fp8->param_allgather_fp8) return weight;
  double dense = 0, fp8 = 0;
  for (const Layer* l : layers) {
    dense += l->params() - l->expert_params();
    for (const Op& op : l->ops)
      if (!op.expert) fp8 += op.fp8_weight_elems;
  }
  const double share = dense > 0 ? fp8 / dense : 0.0;
  return weight * (1.0 - share) + 1.0 * share;
}

Seconds elementwise_time(const StepContext& ctx, double read, double written, bool dtype_cast) {
  Op op;
  op.kind = OpKind::elementwise;
  op.fwd_read = Bytes(read);
  op.fwd_written = Bytes(written);
  op.dtype_cast = dtype_cast;
  return ctx.model->op_time(op, Pass::forward);
}

namespace {

// FSDP2's copy-out of a unit's gathered buffer into its parameters (fsdp_block): the
// gathered bytes read and written once, a memory-bound kernel.
Seconds fsdp2_copy_out_time(const ComputeModel& model, double gathered_bytes) {
  Op op;
  op.kind = OpKind::elementwise;
  op.fwd_read = Bytes(2.0 * gathered_bytes);
  return model.op_time(op, Pass::forward);
}

// DualPipe's overlapped forward-backward pair (DeepSeek-V3 report, section 3.2.1): the
// MoE all-to-all of each side (tasks forward.first..second, backward.first..second) runs
// under the other side's compute, hidden up to that compute's length; the compute
// covering it runs slower by the engine's compute_slowdown. Tensor- and context-parallel
// exposure is kept (DeepSeek-V3 trains without either).
void overlap_pair(TaskGraph& g, double slowdown, std::pair<int, int> forward,
                  std::pair<int, int> backward) {
  struct Sums {
    double ep = 0, compute = 0;
  };
  auto sums = [&](std::pair<int, int> range) {
    Sums out;
    for (int i = range.first; i <= range.second; ++i) {
      const Task& t = g.tasks[static_cast<size_t>(i)];
      out.ep += t.ep.value();
      out.compute += (t.work - t.ep - t.tp - t.cp).value();
    }
    return out;
  };
  const Sums f = sums(forward), b = sums(backward);
  // Each side's all-to-all is hidden up to the other side's compute; the compute that
  // covers it runs (1 - slowdown) as fast, so hiding h seconds costs h * slowdown.
  auto hide = [&](std::pair<int, int> range, double exposed, double hidden) {
    if (exposed <= 0 || hidden <= 0) return;
    for (int i = range.first; i <= range.second; ++i) {
      Task& t = g.tasks[static_cast<size_t>(i)];
      const double share = hidden * t.ep.value() / exposed;
      t.ep -= Seconds(share);
      t.work -= Seconds(share * (1.0 - slowdown));
    }
  };
  hide(forward, f.ep, std::min(f.ep, b.compute));
  hide(backward, b.ep, std::min(b.ep, f.compute));
}

// DeepSpeed's fp32 gradient accumulation (deepspeed_bf16_optimizer, step_passes.h): after
// every micro-batch's backward, on every stage, BF16_Optimizer.update_hp_grads casts each
// parameter's bf16 gradient to fp32 (.to(): read 2 bytes, write 4) and adds it into the fp32
// gradient buffer (add_: read 4 + 4, write 4), 18 bytes a parameter on the compute stream
// before the gradient is sent back (deepspeed/runtime/bf16_optimizer.py update_hp_grads,
// called from pipe/engine.py _exec_backward_pass and, on the last stage, through
// engine.py backward; microsoft/DeepSpeed 56c522386878). Megatron-LM has no such pass: it
// accumulates into its fp32 main gradients inside the weight-gradient GEMM
// (--gradient-accumulation-fusion, on by default).
// The cast is a dtype-converting copy, timed at cluster.gpu.cast_efficiency; the add at the
// other kernels' rate.
constexpr double kBf16CastReadBytes = 2.0, kBf16CastWrittenBytes = 4.0;
constexpr double kBf16AddReadBytes = 4.0 + 4.0, kBf16AddWrittenBytes = 4.0;

// The time of that pass over the parameters of `layers` on this rank: the cast kernel,
// then the add.
Seconds bf16_accumulation_time(const StepContext& ctx, const std::vector<const Layer*>& layers) {
  double params = 0;
  for (const Layer* l : layers) params += l->params();
  return elementwise_time(ctx, kBf16CastReadBytes * params, kBf16CastWrittenBytes * params, true) +
         elementwise_time(ctx, kBf16AddReadBytes * params, kBf16AddWrittenBytes * params);
}

// Megatron-LM's unfused gradient accumulation (training.stack.gradient_accumulation), one
// elementwise kernel a parameter on the compute stream after its layer's backward of a
// micro-batch:
//  hook      the DDP registers a hook on each parameter's gradient accumulator that runs
//            `param.main_grad.add_(param.grad.data)` and frees param.grad, every
//            micro-batch (megatron/core/distributed/distributed_data_parallel.py lines
//            575-578 at NVIDIA/Megatron-LM d98e8a64, where a fused GEMM has not already
//            added it; megatron/model/distributed.py _make_param_hook at 6985e589):
//            param.grad read in the parameters' format, the main gradient
//            (training.gradient_dtype) read and written.
//  autograd  no gradient buffer: torch's AccumulateGrad keeps the first micro-batch's
//            gradient as param.grad (the optimizer's zero_grad sets it to None) and adds
//            each later one in place outside double backward (variable_grad += new_grad,
//            accumulateGrad in torch/csrc/autograd/functions/accumulate_grad.h at
//            pytorch/pytorch bc2c6eda): read both, write one, in the parameters' format,
//            from the second micro-batch on. The 2021 Megatron-LM of the SC21
//            scripts (examples/sc21 at 6985e589) ran so: torch DDP under no_sync for all
//            but the last micro-batch (megatron/schedules.py), or local DDP, which builds
//            the hook's buffer only under --use-contiguous-buffers-in-ddp (off by default,
//            megatron/arguments.py).
// The fused form (83b1e42f, 2022-02-13, on by default) adds inside the weight-gradient
// GEMM. The tensors outside linear layers still take the hook there: of those the
// embedding tables are counted (the word table is vocab/tp x h, as large as a linear
// layer's weight; its backward is no GEMM, so the hook adds its dense gradient into the
// main gradient, the same bytes as `hook`), on the Megatron presets (megatron-core, nemo)
// without ZeRO-3; the small ones (norms, biases) are not.
Seconds unfused_accumulation_time(const StepContext& ctx, const Layer& layer, int microbatch) {
  using G = StackSpec::GradAccumulation;
  const G how = ctx.s.training.stack.gradient_accumulation;
  const double params = layer.params();
  if (params <= 0) return Seconds(0);
  if (how == G::fused) {
    // Only the embedding tables' hook (above).
    const StackSpec::Preset preset = ctx.s.training.stack.preset;
    const bool megatron =
        preset == StackSpec::Preset::megatron_core || preset == StackSpec::Preset::nemo;
    if (!megatron || ctx.p.zero_stage == 3 || layer.kind != LayerKind::embedding) return Seconds(0);
  }
  if (how == G::autograd && microbatch == 0) return Seconds(0);
  // param.grad in the parameters' format, added into the main gradient (hook) or into
  // param.grad itself (autograd).
  const double grad = weight_bytes(ctx.s.training.precision);
  const double main = how == G::autograd ? grad : bytes_per_value(ctx.s.training.gradient_dtype);
  return elementwise_time(ctx, (grad + main) * params, main * params);
}

// torchtitan's FSDP2 under a pipeline (fsdp_pipeline_deferred): a unit's post-backward,
// its gradient sync off, keeps the micro-batch's unsharded gradient (the parameters'
// dtype, b_w bytes an element) in an accumulator of the reduce dtype (b_r): the first
// backward casts it (to_accumulated_grad_if_needed: read b_w, write b_r), each later one
// adds it (accumulate_unsharded_grad_if_needed: read b_r + b_w, write b_r). With the
// reduce dtype the parameters' own there is no accumulator: autograd adds each later
// gradient into param.grad (read 2 b_w, write b_w), as `autograd` above.
// (torch/distributed/fsdp/_fully_shard/_fsdp_param.py at pytorch/pytorch 010ae4a8.)
Seconds fsdp2_deferred_accumulation_time(const StepContext& ctx, const Layer& layer,
                                         int microbatch) {
  const double params = layer.params();
  if (params <= 0) return Seconds(0);
  const double wb = weight_bytes(ctx.s.training.precision);
  const double rb = bytes_per_value(ctx.s.training.gradient_dtype);
  if (rb == wb) {
    if (microbatch == 0) return Seconds(0);
    return elementwise_time(ctx, 2 * wb * params, wb * params);
  }
  if (microbatch == 0) return elementwise_time(ctx, wb * params, rb * params, true);
  return elementwise_time(ctx, (rb + wb) * params, rb * params);
}

// Builds the pass rank by rank. Blocks are indexed by (rank, forward?, chunk,
// micro-batch) in dense arrays: their first and last task, and the transfer a receiving
// block waits for.
class PipelineBuilder {
 public:
  PipelineBuilder(const StepContext& ctx, const RankSet& ranks, const StageLayers& layers,
                  LayerTemplates& templates, CommPlanner& planner, TaskGraph& g)
      : ctx_(ctx),
        p_(ctx.p),
        ranks_(ranks),
        layers_(layers),
        templates_(templates),
        planner_(planner),
        g_(g),
        m_(p_.microbatches()),
        chunks_(layers.chunks()),
        positions_(ctx.dual ? p_.pp : p_.pp * p_.virtual_pipeline_stages),
        mtp_stage_(standalone_mtp_stage(p_.pipeline_layout)),
        // Interleaved 1F1B without overlapped transfers: Megatron-Core's loop runs a
        // forward and a backward, then one call that sends and receives for both
        // (schedules.py, send_forward_backward_recv_forward_backward at d98e8a64), where
        // orrery sends after each block; a rendezvous per direction would close cycles
        // there, so only the exchange's time is kept.
        rendezvous_(mtp_stage_ >= 0 &&
                    !(p_.schedule == PipelineSchedule::interleaved_1f1b && !ctx.s.training.overlap_p2p)) {
    const size_t count = ranks.size() * 2 * static_cast<size_t>(chunks_) * static_cast<size_t>(m_);
    block_first_.assign(count, std::nullopt);
    block_last_.assign(count, std::nullopt);
    incoming_.assign(count, std::nullopt);
    if (rendezvous_) {
      shape_exchange_.assign(count, std::nullopt);
      receiver_ready_.assign(count, std::nullopt);
    }
    out_.grads.assign(ranks.size(), std::vector<std::vector<GradReady>>(ctx.dual ? 2 : 1));
    out_.fsdp.resize(ranks.size());
    out_.backward_ends.resize(ranks.size());
    if (p_.zero_stage == 2)
      out_.micro_grads.assign(ranks.size(),
                              std::vector<std::vector<std::vector<GradReady>>>(ctx.dual ? 2 : 1));
    out_.last_compute.assign(ranks.size(), std::nullopt);
    g.tasks.reserve(
        ranks.size() *
        (static_cast<size_t>(m_) * static_cast<size_t>(p_.virtual_pipeline_stages) * 4 + 64));
  }

  PipelineTasks build() {
    if (deepspeed_) {
      for (int st = 0; st < p_.pp; ++st)
        ds_sched_.push_back(deepspeed_train_schedule(p_.pp, m_, st));
      for (size_t r = 0; r < ranks_.size(); ++r) build_rank_deepspeed(r);
    } else {
      for (int st = 0; st < p_.pp; ++st) sched_.push_back(pipeline_order(p_, st));
      for (size_t r = 0; r < ranks_.size(); ++r) build_rank(r);
    }
    link_blocks();
    return std::move(out_);
  }

 private:
  size_t block_key(int rank, int fwd, int chunk, int mb) const {
    return ((static_cast<size_t>(rank) * 2 + static_cast<size_t>(fwd)) * chunks_ +
            static_cast<size_t>(chunk)) *
               m_ +
           static_cast<size_t>(mb);
  }

  // The transfer of block b's output to the next position along its pipeline, issued on
  // rank r's streams after task `after` (if any). Positions: chunk * p + stage along the
  // virtual pipeline; under DualPipe chunk 0 runs from rank 0 up and chunk 1 from rank
  // p - 1 down.
  void send_after(size_t r, const Block& b, MaybeTask after) {
    const int p = p_.pp;
    const bool dual = ctx_.dual;
    const RankId& id = ranks_[r];
    const int st = id.s;
    const int q = dual ? (b.chunk == 0 ? st : p - 1 - st) : b.chunk * p + st;
    const int next_q = b.forward ? q + 1 : q - 1;
    if (next_q < 0 || next_q >= positions_) return;
    const int next_stage = dual ? (b.chunk == 0 ? next_q : p - 1 - next_q) : next_q % p;
    const int next_chunk = dual ? b.chunk : next_q / p;
    const int peer = ranks_.rank_of(id.t, id.c, id.d, next_stage);
    Task t;
    t.kind = TaskKind::pp_comm;
    // The sender's compute waits for the transfer unless the interleaved schedule
    // overlaps pipeline communication (spec.h, PipelineEngine).
    const bool overlapped = p_.pipeline_engine == PipelineEngine::megatron &&
                            p_.schedule == PipelineSchedule::interleaved_1f1b &&
                            ctx_.s.training.overlap_p2p;
    t.stream = overlapped ? StreamKind::pp : StreamKind::compute;
    t.rank = static_cast<int>(r);
    t.microbatch = b.microbatch;
    // Past a multi-token-prediction stage of its own (and back to it) Megatron-Core sends
    // the main hidden state with each depth's, concatenated (multi_token_prediction.py
    // line 2139 at NVIDIA/Megatron-LM d98e8a64): 1 + mtp_layers activations.
    const int copies =
        mtp_stage_ >= 0 && std::min(q, next_q) >= mtp_stage_ ? 1 + ctx_.s.model.mtp_layers : 1;
    const int from_gpu = ctx_.L.gpu(id.t, id.c, id.d, st);
    const int to_gpu = ctx_.L.gpu(id.t, id.c, id.d, next_stage);
    auto pair = [&](Bytes bytes) {
      return ranks_.full() ? planner_.gpu_pair(from_gpu, to_gpu, bytes)
                           : planner_.stage_pair(st, next_stage, bytes);
    };
    const size_t key = block_key(peer, b.forward ? 1 : 0, next_chunk, b.microbatch);
    if (mtp_stage_ >= 0) {
      // Under mtp_standalone every pipeline transfer is preceded by an exchange of the
      // tensor's shape (three int64s) with the peer, batch_isend_irecv waited on and then
      // torch.cuda.synchronize() (p2p_communication.py lines 227-266 and 327-330 at
      // d98e8a64): the host blocks until the peer has reached its matching call and its own
      // GPU has drained. Timed as a 24-byte transfer before the data's on the same stream
      // that starts once the receiver has finished what it ran before the receiving block
      // (link_blocks), so the data cannot be sent ahead of the receiver.
      Task shape = t;
      shape.comm = pair(Bytes(24.0));
      const int exchange = planner_.issue(shape);
      g_.depend(after, exchange);
      after = exchange;
      if (rendezvous_) shape_exchange_[key] = exchange;
    }
    t.comm = pair(Bytes(ctx_.bytes.pp * copies));
    const int task = planner_.issue(t);
    g_.depend(after, task);
    if (t.stream == StreamKind::compute) prev_ = task;
    incoming_[key] = task;
  }

  // A block of a virtual stage that holds nothing (parallelism.pipeline_layout): Megatron-
  // Core's TransformerBlock with no layers, neither first nor last, clones what it received
  // so that its output is a tensor of its own (transformer_block.py lines 764-766 at
  // NVIDIA/Megatron-LM d98e8a64): one copy of the activation in the forward (b s/cp h, its
  // sequence-parallel share under sp), at least one kernel's host time; the clone's
  // backward hands the gradient on without a kernel. The block stays a task so that the
  // schedule's transfers through the stage keep their order. Past a multi-token-prediction
  // stage of its own it passes on 1 + mtp_layers hidden states (send_after).
  void empty_block(size_t r, const Block& b) {
    Seconds work;
    if (b.forward) {
      const int q = b.chunk * p_.pp + ranks_[r].s;
      const int copies = mtp_stage_ >= 0 && q > mtp_stage_ ? 1 + ctx_.s.model.mtp_layers : 1;
      const double bytes = copies * ctx_.bytes.tp / (p_.sequence_parallel ? p_.tp : 1);
      work = std::max(elementwise_time(ctx_, bytes, bytes, false),
                      ctx_.s.training.stack.host_overhead);
    }
    add_block(r, b, work, Parts{}, b.forward ? TaskKind::forward : TaskKind::backward);
  }

  // Every op of every layer of block b in the graph (SimulationOptions::op_level).
  void op_level_block(size_t r, const Block& b, const std::vector<const Layer*>& layers,
                      bool final_bwd, int grad_list) {
    const int rank = static_cast<int>(r);
    const int st = ranks_[r].s;
    const bool full_recompute = ctx_.s.training.recompute == Recompute::full;
    MaybeTask after = prev_;
    // The chunk's first forward under the overlapped parameter gather: the gathers are
    // issued first, so that the block's first task (first_, which the pipeline's receive
    // waits on) is not one of them. Each layer's first compute task waits for the gathers
    // of the buckets that start before the layer ends: the whole layer waits, where the
    // layer templates split it at the bucket's first parameter (gathered_forward), since
    // op-level tasks are runs of kernels between collectives, which carry no parameter
    // positions. Unlike there, a layer without dense parameters waits for no bucket, and
    // a layer's activation-offload wait runs beside its gathers, not after them.
    const bool gathered = gathers_in_forward(b);
    const ParamGathers gathers = gathered ? param_gathers(r, b, layers) : ParamGathers{};
    const size_t before = g_.tasks.size();
    const std::vector<Seconds>* waits = offload_waits(r, b, layers);
    // A wait for activation offload copies, a compute-stream task of its own.
    auto wait_for_copies = [&](size_t k) {
      const Seconds wait = wait_at(waits, k);
      if (wait.value() <= 0) return;
      Task t;
      t.kind = b.forward ? TaskKind::forward : TaskKind::backward;
      t.rank = rank;
      t.microbatch = b.microbatch;
      t.work = t.offload = wait;
      const int id = planner_.issue(t);
      g_.depend(after, id);
      after = id;
    };
    if (b.forward) {
      size_t next = 0;  // the next bucket no layer has waited for
      double at = 0;    // parameter position of the layer's start
      for (size_t k = 0; k < layers.size(); ++k) {
        wait_for_copies(k);
        const size_t first = g_.tasks.size();
        after = templates_.append_layer(planner_, g_, rank, st, *layers[k], LayerPass::forward,
                                        after, b.microbatch);
        if (!gathered) continue;
        // The layer's first compute task: an overlapped collective before it would not
        // hold back the compute after it (LayerTemplates::append_layer).
        size_t gate = first;
        while (gate < g_.tasks.size() && is_comm(g_.tasks[gate].kind)) ++gate;
        if (gate < g_.tasks.size()) {
          const int first_task = static_cast<int>(gate);
          // The chunk's first compute on the issuing member (emplace keeps the first).
          if (gathers.issuer) gather_launch_.emplace(gathers.key, first_task);
          while (next < gathers.ids.size() && gathers.starts[next] < at + gathers.params[k] - 0.5)
            g_.depend(gathers.ids[next++], first_task);
        }
        at += gathers.params[k];
      }
    } else {
      if (p_.zero_stage == 2) out_.micro_grads[r][grad_list].emplace_back();
      for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
        wait_for_copies(static_cast<size_t>(layers.rend() - it) - 1);
        if (full_recompute && (*it)->kind == LayerKind::transformer)
          after = templates_.append_layer(planner_, g_, rank, st, **it, LayerPass::recompute, after,
                                          b.microbatch);
        after = templates_.append_layer(planner_, g_, rank, st, **it, LayerPass::backward, after,
                                        b.microbatch);
        const Seconds hook = unfused_accumulation_time(ctx_, **it, b.microbatch);
        if (hook.value() > 0) {
          Task t;
          t.kind = TaskKind::backward;
          t.rank = rank;
          t.microbatch = b.microbatch;
          t.work = hook;
          const int id = planner_.issue(t);
          g_.depend(after, id);
          after = id;
        }
        const GradReady ready{after, (*it)->params() - (*it)->expert_params(),
                              (*it)->expert_params(), *it, b.chunk};
        if (final_bwd) out_.grads[r][grad_list].push_back(ready);
        if (p_.zero_stage == 2) out_.micro_grads[r][grad_list].back().push_back(ready);
      }
    }
    if (g_.tasks.size() > before && !first_) first_ = static_cast<int>(before);
    prev_ = after;
    if (!b.forward) accumulate_gradients(r, b, layers);
  }

  // DeepSpeed's fp32 gradient accumulation after a backward block.
  void accumulate_gradients(size_t r, const Block& b, const std::vector<const Layer*>& layers) {
    if (!deepspeed_bf16_optimizer(ctx_) || b.split || b.weight) return;
    add_block(r, b, bf16_accumulation_time(ctx_, layers), Parts{}, TaskKind::backward);
  }

  // A compute task of `work` seconds after the rank's last one.
  int add_block(size_t r, const Block& b, Seconds work, const Parts& parts, TaskKind kind) {
    Task t;
    t.kind = kind;
    t.stream = StreamKind::compute;
    t.rank = static_cast<int>(r);
    t.microbatch = b.microbatch;
    t.work = work;
    t.selective = parts.selective;
    t.tp = parts.tp;
    t.ep = parts.ep;
    t.cp = parts.cp;
    t.recompute = parts.recompute;
    t.offload = parts.offload;
    const int id = planner_.issue(t);
    g_.depend(prev_, id);
    if (pending_gather_) {
      g_.depend(pending_gather_, id);
      pending_gather_.reset();
    }
    if (!first_ && drain_ready_) {
      // Megatron-FSDP: a new block after a backward, whose reduce-scatters it waits for.
      for (size_t k : drain_) out_.fsdp[r][k].drain_before = id;
      drain_.clear();
      drain_ready_ = false;
    }
    if (!first_) first_ = id;
    prev_ = id;
    return id;
  }

  // training.activation_offload (pp = 1, validated): the wait before each layer's pass
  // of a forward (`forward`) or backward block, by position in `layers`; none without it.
  // Transformer Engine's DefaultOffloadSynchronizer (transformer_engine/pytorch/
  // cpu_offload.py at NVIDIA/TransformerEngine d0067d0d) offloads transformer layers
  // 0..N-1 one after another on a side stream, layer i's copy starting after its forward
  // and due before the forward of layer L-N+i; in backward it starts reloading layer i
  // before the backward of layer L-1-N+i and layer i's backward waits for it. A copy
  // moves the layer's saved bytes at the slower of the GPU's PCIe link and its share of
  // the node's host memory bandwidth. The same for every rank of a stage and every
  // micro-batch, so computed once per (stage, chunk, direction); null without offload or
  // for a weight-gradient block.
  const std::vector<Seconds>* offload_waits(size_t r, const Block& b,
                                            const std::vector<const Layer*>& layers) {
    if (!ctx_.s.training.activation_offload || b.weight) return nullptr;
    const auto key = std::make_tuple(ranks_[r].s, b.chunk, b.forward);
    auto it = offload_waits_.find(key);
    if (it == offload_waits_.end())
      it = offload_waits_.emplace(key, compute_offload_waits(ranks_[r].s, layers, b.forward)).first;
    return &it->second;
  }

  static Seconds wait_at(const std::vector<Seconds>* waits, size_t k) {
    return waits ? (*waits)[k] : Seconds();
  }

  std::vector<Seconds> compute_offload_waits(int st, const std::vector<const Layer*>& layers,
                                             bool forward) {
    std::vector<Seconds> wait(layers.size());
    const ActivationOffloadSpec& off = *ctx_.s.training.activation_offload;
    const ClusterSpec& c = ctx_.s.cluster;
    const double bw = std::min(c.host.pcie_bandwidth.value(),
                               c.host.memory_bandwidth.value() / c.gpus_per_node);
    std::vector<int> index(layers.size(), -1);  // transformer index, -1 for others
    int L = 0;
    for (size_t k = 0; k < layers.size(); ++k)
      if (layers[k]->kind == LayerKind::transformer) index[k] = L++;
    const int N = std::min(off.layers, L);
    std::vector<double> copy(static_cast<size_t>(N)), done(static_cast<size_t>(N), 0.0);
    for (size_t k = 0; k < layers.size(); ++k)
      if (index[k] >= 0 && index[k] < N)
        copy[static_cast<size_t>(index[k])] = layers[k]->saved(Recompute::none).value() / bw;
    double t = 0, q = 0;  // the compute and the copy stream's clocks
    for (size_t n = 0; n < layers.size(); ++n) {
      const size_t k = forward ? n : layers.size() - 1 - n;
      const int j = index[k];
      Seconds pass;
      if (forward) {
        if (j >= 0 && j - (L - N) >= 0) {  // due: layer j - (L - N)'s copy
          const double w = std::max(0.0, done[static_cast<size_t>(j - (L - N))] - t);
          wait[k] = Seconds(w);
          t += w;
        }
        pass = templates_.get(st, *layers[k], LayerPass::forward).total;
        t += pass.value();
        if (j >= 0 && j < N) {
          done[static_cast<size_t>(j)] = std::max(q, t) + copy[static_cast<size_t>(j)];
          q = done[static_cast<size_t>(j)];
        }
      } else {
        const int i = j - (L - 1 - N);  // the layer whose reload starts now
        if (j >= 0 && i >= 0 && i < N) {
          done[static_cast<size_t>(i)] = std::max(q, t) + copy[static_cast<size_t>(i)];
          q = done[static_cast<size_t>(i)];
        }
        if (j >= 0 && j < N) {
          const double w = std::max(0.0, done[static_cast<size_t>(j)] - t);
          wait[k] = Seconds(w);
          t += w;
        }
        pass = templates_.get(st, *layers[k], LayerPass::backward).total;  // no recompute
        t += pass.value();
      }
    }
    return wait;
  }

  // Adds a template's time to a block's; its traffic is tallied once per stage (the
  // template's collectives already count every group of the stage).
  void accumulate(size_t r, const Template& tpl, Seconds& work, Parts& parts) {
    work += tpl.total;
    parts.tp += tpl.parts.tp;
    parts.ep += tpl.parts.ep;
    parts.cp += tpl.parts.cp;
    parts.recompute += tpl.parts.recompute;
    parts.selective += tpl.parts.selective;
    const RankId& id = ranks_[r];
    if (!ranks_.full() || (id.t == 0 && id.c == 0 && id.d == 0)) planner_.tally(tpl.traffic);
  }

  void backward_of(size_t r, const Layer& l, Seconds& work, Parts& parts) {
    const int st = ranks_[r].s;
    if (ctx_.s.training.recompute == Recompute::full && l.kind == LayerKind::transformer)
      accumulate(r, templates_.get(st, l, LayerPass::recompute), work, parts);
    accumulate(r, templates_.get(st, l, LayerPass::backward), work, parts);
  }

  // ZeRO-3 / FSDP: every layer is an FSDP unit, its compute a task of its own that waits
  // for its gathered weights. Megatron-FSDP (NVIDIA/Megatron-LM core_v0.14.0 23e00ed0,
  // megatron/core/distributed/fsdp/src/megatron_fsdp/megatron_fsdp.py, _register_fsdp_hooks,
  // and param_and_grad_buffer.py, AllGatherPipeline) differs in three ways:
  //  - with its default units (TransformerLayer, mcore_fsdp_adapter.py) the embedding and
  //    the output layer are no units: only units are released after their forward and
  //    backward (release_module_parameters), and _root_pre_backward marks only units'
  //    buckets releasable, so their weights, gathered by the step's first forward, stay
  //    until finish_grad_sync resets the gather pipeline after the last micro-batch;
  //  - the gather stream waits for the compute stream when a hook issues a gather
  //    (all_gather_params: all_gather_stream.wait_stream(current_stream)), so a block's
  //    first gathers start after the compute before the first unit that gathers;
  //  - every backward ends by draining the reduce-scatters (_root_post_backward calls
  //    GradReducePipeline.reset, wait_for_previous_grad_reduce(0): the compute stream
  //    waits for each one's event), so the rank's next block waits for them (fsdp_pass,
  //    FsdpNeed::drain_before).
  void fsdp_block(size_t r, const Block& b, const std::vector<const Layer*>& layers,
                  const std::vector<Seconds>* waits, bool final_bwd) {
    const bool fp8_param_gather = ctx_.s.training.fp8 && ctx_.s.training.fp8->param_allgather_fp8;
    const bool megatron = p_.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp;
    // FSDP2 gathers each unit into one flat buffer and copies it out into the parameters'
    // own tensors on the compute stream once the gather is done
    // (foreach_all_gather_copy_out: the current stream waits for the all-gather event,
    // then one split_with_sizes_copy reads the buffer and writes the parameters;
    // torch/distributed/fsdp/_fully_shard/_fsdp_collectives.py at pytorch/pytorch
    // 010ae4a8): the unit's gathered bytes read and written, before its compute. FSDP1,
    // Megatron-FSDP and DeepSpeed gather into the buffer the parameters view.
    const bool copy_out = p_.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp2;
    const bool outside_units_resident = megatron && p_.fsdp_unit == ParallelismSpec::FsdpUnit::layer;
    // FSDP1 wrapping the transformer blocks (llm-foundry, fms-fsdp, Accelerate's
    // transformer policy) leaves the embedding, the final norm and the output layer in the
    // root instance's flat parameter (fsdp1_root_unit): gathered by the root's pre-forward
    // before any block's, not freed after the forward, and its gradient, one flat tensor,
    // reduce-scattered once the last of them has its gradient.
    const bool fsdp1_root = p_.fsdp1_root_unit();
    auto in_root = [&](const Layer& l) {
      return fsdp1_root && (l.kind == LayerKind::embedding || l.kind == LayerKind::head);
    };
    double root_params = 0, root_fp8 = 0;
    size_t root_first = layers.size();  // the block's first root layer, in forward order
    for (size_t k = 0; k < layers.size(); ++k) {
      if (!in_root(*layers[k])) continue;
      root_params += layers[k]->params();
      if (fp8_param_gather) root_fp8 += layers[k]->fp8_weight_elems();
      root_first = std::min(root_first, k);
    }
    // FSDP2 under torch.distributed.pipelining (fsdp_pipeline_deferred, scenario/spec.h):
    // a unit is gathered when a forward or backward finds it sharded, freed only after a
    // forward under reshard_after_forward, and reduce-scattered once, after the chunk's
    // last backward.
    const bool deferred = fsdp_pipeline_deferred(p_, ctx_.s.training);
    // torchtitan's tied [tok_embeddings, norm, output] unit (fsdp2_tied_output_unit): with
    // the embedding and the head in this block, the head's parameters are the embedding's
    // unit's, and the head gathers and reduce-scatters nothing of its own.
    double merged_head = 0;
    if (!deferred &&
        fsdp2_tied_output_unit(p_, ctx_.s.training, ctx_.s.model.tied_embeddings)) {
      const Layer* embedding = nullptr;
      const Layer* head = nullptr;
      for (const Layer* l : layers) {
        if (l->kind == LayerKind::embedding) embedding = l;
        if (l->kind == LayerKind::head) head = l;
      }
      if (embedding && head) merged_head = head->params();
    }
    const MaybeTask before_block = prev_;
    std::optional<MaybeTask> anchor;  // Megatron-FSDP: what the block's first gathers wait for
    std::vector<int> done;
    int last_id = -1;  // the block's last compute task
    auto unit = [&](size_t k, bool forward, Seconds wait) {
      const Layer& l = *layers[k];
      Seconds work = wait;
      Parts parts;
      parts.offload = wait;
      if (forward) {
        accumulate(r, templates_.get(ranks_[r].s, l, LayerPass::forward), work, parts);
      } else {
        backward_of(r, l, work, parts);
        if (deferred) work += fsdp2_deferred_accumulation_time(ctx_, l, b.microbatch);
      }
      const int id = add_block(r, b, work, parts, forward ? TaskKind::forward : TaskKind::backward);
      // The gather may start once the layer fsdp_prefetch + 1 places back is done.
      const size_t ahead = static_cast<size_t>(p_.fsdp_prefetch) + 1;
      MaybeTask prereq =
          done.size() >= ahead ? MaybeTask(done[done.size() - ahead]) : std::nullopt;
      last_id = id;
      const bool resident = outside_units_resident && l.kind != LayerKind::transformer;
      const bool root = in_root(l);
      // FSDP2 may keep the output layer's unit gathered from its forward to its backward.
      const bool reshards =
          p_.reshards_after_forward(in_output_unit(l, ctx_.s.model.tied_embeddings));
      const bool merged = merged_head > 0 && l.kind == LayerKind::head;
      const double params =
          l.params() + (merged_head > 0 && l.kind == LayerKind::embedding ? merged_head : 0.0);
      bool gathers = root || merged ? false
                     : resident     ? forward && b.microbatch == 0
                                    : forward || reshards;
      if (deferred) {
        bool& held = unit_held_[{r, b.chunk, k}];
        gathers = !held;
        held = !forward || !reshards;
      }
      // The root's gather comes first in the block, before its first unit's own, when a
      // backward has freed it (or nothing has gathered it yet): FSDP1 frees the root only
      // in its post-backward, so with pp > 1 the warm-up forwards find it gathered and the
      // cool-down backwards gather it again (_pre_backward_hook unshards only what is
      // sharded). The root's pre-forward first makes the gather stream wait for the
      // compute stream (_root_pre_forward, _wait_for_computation_stream).
      if (root_params > 0 && k == (forward ? 0 : layers.size() - 1)) {
        bool& held = root_held_[{r, b.chunk}];
        if (!held) {
          out_.fsdp[r].push_back(
              {true, !forward, id, before_block, root_params, root_fp8, nullptr, std::nullopt});
          held = true;
        }
      }
      // That wait holds every FSDP1 forward's first gathers, the root gathered or not.
      if (gathers && fsdp1_root && forward && done.size() < ahead) prereq = before_block;
      if (gathers && megatron && done.size() < ahead) {
        if (!anchor) anchor = done.empty() ? before_block : MaybeTask(done.back());
        prereq = *anchor;
      }
      const double fp8_params = fp8_param_gather ? l.fp8_weight_elems() : 0.0;
      if (gathers && copy_out) {
        g_.tasks[static_cast<size_t>(id)].work +=
            fsdp2_copy_out_time(*ctx_.model, params * dense_gather_bytes_per_param(ctx_, {&l}));
      }
      if (gathers) out_.fsdp[r].push_back({true, !forward, id, prereq, params, fp8_params, &l, std::nullopt});
      if (!forward && root && k == root_first) root_held_.at({r, b.chunk}) = false;
      if (!forward && !deferred && !merged && (!root || k == root_first)) {
        // The root's one reduce-scatter follows the backward of its first layer, the last
        // of them to finish.
        out_.fsdp[r].push_back(root ? FsdpNeed{false, true, id, std::nullopt, root_params, 0.0,
                                               nullptr, std::nullopt}
                                    : FsdpNeed{false, true, id, std::nullopt, params, 0.0,
                                               &l, std::nullopt});
        if (megatron) drain_.push_back(out_.fsdp[r].size() - 1);
      }
      // FSDP1's root has a buffer of its own: it takes no place in the prefetch window.
      if (!root) done.push_back(id);
    };
    if (b.forward) {
      for (size_t k = 0; k < layers.size(); ++k) unit(k, true, wait_at(waits, k));
    } else {
      for (size_t k = layers.size(); k-- > 0;) unit(k, false, wait_at(waits, k));
      drain_ready_ = megatron;  // the next block's first task waits for them
    }
    if (deferred && final_bwd) {
      // The reduce step after the chunk's last backward: each unit's accumulated gradient
      // reduce-scattered, units in module order (the FSDP states' order, forward), and
      // every unit resharded.
      for (size_t k = 0; k < layers.size(); ++k) {
        const Layer& l = *layers[k];
        out_.fsdp[r].push_back({false, true, last_id, std::nullopt, l.params(), 0.0, &l, std::nullopt});
        unit_held_[{r, b.chunk, k}] = false;
      }
    }
  }

  // Block b from templates; the final backward of a chunk stays per layer so that
  // gradient buckets can leave as soon as their layers are done, and under ZeRO-2 every
  // block that computes weight gradients (each micro-batch's are reduce-scattered).
  void template_block(size_t r, const Block& b, const std::vector<const Layer*>& layers,
                      bool final_bwd, int grad_list) {
    const int st = ranks_[r].s;
    // Waits for activation offload copies, by layer position (none without offload).
    const std::vector<Seconds>* waits = offload_waits(r, b, layers);
    auto add_wait = [&](size_t k, Seconds& work, Parts& parts) {
      work += wait_at(waits, k);
      parts.offload += wait_at(waits, k);
    };
    if (p_.zero_stage >= 3) {
      fsdp_block(r, b, layers, waits, final_bwd);
    } else if (gathers_in_forward(b)) {
      gathered_forward(r, b, layers, waits);
    } else if (b.forward) {
      Seconds work;
      Parts parts;
      for (size_t k = 0; k < layers.size(); ++k) {
        add_wait(k, work, parts);
        accumulate(r, templates_.get(st, *layers[k], LayerPass::forward), work, parts);
      }
      add_block(r, b, work, parts, TaskKind::forward);
    } else if (b.split) {
      // B: the backward without its weight-gradient GEMMs.
      Seconds work;
      Parts parts;
      for (size_t k = layers.size(); k-- > 0;) {
        add_wait(k, work, parts);
        backward_of(r, *layers[k], work, parts);
        work -= templates_.weight_gradient_time(*layers[k]);
      }
      add_block(r, b, work, parts, TaskKind::backward);
    } else if (!final_bwd && p_.zero_stage != 2) {
      Seconds work;
      Parts parts;
      for (size_t k = layers.size(); k-- > 0;) {
        if (b.weight) {
          work += templates_.weight_gradient_time(*layers[k]);
        } else {
          add_wait(k, work, parts);
          backward_of(r, *layers[k], work, parts);
        }
        work += unfused_accumulation_time(ctx_, *layers[k], b.microbatch);
      }
      add_block(r, b, work, parts, TaskKind::backward);
    } else {
      if (p_.zero_stage == 2) out_.micro_grads[r][grad_list].emplace_back();
      for (size_t k = layers.size(); k-- > 0;) {
        const auto it = layers.begin() + static_cast<std::ptrdiff_t>(k);
        Seconds work;
        Parts parts;
        if (b.weight) {
          work = templates_.weight_gradient_time(**it);
        } else {
          add_wait(k, work, parts);
          backward_of(r, **it, work, parts);
        }
        work += unfused_accumulation_time(ctx_, **it, b.microbatch);
        const int id = add_block(r, b, work, parts, TaskKind::backward);
        const GradReady ready{id, (*it)->params() - (*it)->expert_params(), (*it)->expert_params(),
                              *it, b.chunk};
        if (final_bwd) out_.grads[r][grad_list].push_back(ready);
        if (p_.zero_stage == 2) out_.micro_grads[r][grad_list].back().push_back(ready);
      }
    }
    if (!b.forward && p_.zero_stage < 3) accumulate_gradients(r, b, layers);
  }

  // Megatron-Core's overlapped parameter all-gather (--overlap-param-gather, distributed
  // optimizer): the updated parameters of a model chunk are gathered bucket by bucket
  // during that chunk's first forward. Buckets are the gradient buckets (dense_bucket_sizes:
  // closed in backward order at the parameter that fills them, so the first in forward
  // order holds what is left). Without interleaving, the first bucket's gather is
  // launched by zero_grad at the start of the step and each forward pre-hook that waits for
  // bucket k launches bucket k + 1 (finish_param_sync in
  // megatron/core/distributed/param_and_grad_buffer.py, optimizer step and zero_grad in
  // megatron/core/optimizer/distrib_optimizer.py, NVIDIA/Megatron-LM d98e8a64). Waiting
  // on a gather's handle makes the compute stream wait, not the host, so the host reaches
  // the next pre-hook at once and the gathers run back to back on the data-parallel
  // communicator from the start of the step. With interleaving (align_param_gather, on by
  // default there, megatron/training/arguments.py) the schedule launches every bucket of
  // chunks 0 and 1 at its start and those of chunk c + 1 when chunk c's first forward
  // starts (forward_backward_pipelining_with_interleaving in
  // megatron/core/pipeline_parallel/schedules.py): again one after another on the
  // communicator. Either way the forward waits for bucket k's gather where it reaches
  // bucket k's first parameter (gathered_forward, op_level_block).
  //
  // Whether block `b` is a chunk's first forward that waits for the chunk's parameter
  // gathers (param_gather_in_forward), chunk 0 excepted under
  // --overlap-param-gather-with-optimizer-step, whose gather ends the step (optimizer_pass).
  bool gathers_in_forward(const Block& b) const {
    return b.forward && b.microbatch == 0 && param_gather_in_forward(ctx_) &&
           !(b.chunk == 0 && gather_with_optimizer_step(ctx_));
  }

  // The parameter all-gathers of a chunk's first forward (param_gather_in_forward) and
  // where each bucket starts among the chunk's dense parameters.
  struct ParamGathers {
    std::vector<double> params;  // each layer's dense parameters, in forward order
    std::vector<double> starts;  // each bucket's first parameter position, in forward order
    std::vector<int> ids;        // each bucket's gather task
    std::pair<int, int> key;     // (issuing member, chunk): gathers_ and gather_launch_
    bool issuer = false;         // this rank issues them (the group's first member)
  };
  ParamGathers param_gathers(size_t r, const Block& b, const std::vector<const Layer*>& layers) {
    ParamGathers out;
    out.params.resize(layers.size());
    double total = 0;
    for (size_t k = 0; k < layers.size(); ++k) {
      out.params[k] = layers[k]->params() - layers[k]->expert_params();
      total += out.params[k];
    }
    // The gradient buckets (dense_bucket_sizes, formed in backward order), in forward
    // order; their starts as parameter positions.
    std::vector<double> sizes =
        total > 0 ? dense_bucket_sizes({layers.rbegin(), layers.rend()},
                                       chunk_bucket_params(ctx_, ranks_[r].s, b.chunk),
                                       bucket_per_layer(ctx_))
                  : std::vector<double>{};
    std::reverse(sizes.begin(), sizes.end());
    out.starts = {0.0};
    for (size_t k = 0; k + 1 < sizes.size(); ++k) out.starts.push_back(out.starts.back() + sizes[k]);
    // The gathers: one task per bucket on the data-parallel stream, over the stage's
    // data-parallel group, shared by its members (the first member issues them).
    const std::vector<int> members = ranks_.reduce_members(r, false, false);
    out.key = std::make_pair(members.front(), b.chunk);
    out.issuer = static_cast<int>(r) == members.front();
    if (out.issuer) {
      const double weight = dense_gather_bytes_per_param(ctx_, layers);
      std::vector<int> after;
      // Interleaving: chunk c >= 2 waits for chunk c - 1's first forward segment.
      if (b.chunk >= 2) {
        const auto it = gather_launch_.find(std::make_pair(members.front(), b.chunk - 1));
        if (it != gather_launch_.end()) after.push_back(it->second);
      }
      std::vector<int>& ids = gathers_[out.key];
      for (double size : sizes) {
        const int id = planner_.collective(ranks_, TaskKind::param_gather,
                                           CollectiveOp::all_gather, GroupKind::dp, members,
                                           after, Bytes(size * weight));
        ids.push_back(id);
        after = {id};
      }
    }
    out.ids = gathers_[out.key];
    ORRERY_CHECK(out.ids.size() == sizes.size(),
                 "the first data-parallel member issues the gathers");
    return out;
  }

  // The chunk's first forward from layer templates, in segments: bucket k's first
  // parameter is placed inside its layer by the layer's forward time in proportion to the
  // parameters before it, and the segment from there waits for bucket k's gather.
  void gathered_forward(size_t r, const Block& b, const std::vector<const Layer*>& layers,
                        const std::vector<Seconds>* waits) {
    const int st = ranks_[r].s;
    const ParamGathers gathers = param_gathers(r, b, layers);
    const std::vector<double>& params = gathers.params;
    const std::vector<double>& starts = gathers.starts;
    const std::vector<int>& ids = gathers.ids;
    const auto& key = gathers.key;
    // The forward in segments, each waiting for its bucket's gather.
    size_t next = 0;  // the next bucket whose start the forward has not reached
    double at = 0;    // parameter position reached
    Seconds work;
    Parts parts;
    auto flush = [&] {
      const int id = add_block(r, b, work, parts, TaskKind::forward);
      // The chunk's first piece on the issuing member (emplace keeps the first).
      if (gathers.issuer) gather_launch_.emplace(key, id);
      work = Seconds();
      parts = Parts{};
    };
    auto reach = [&](double position) {  // a bucket boundary: the next segment waits
      while (next < ids.size() && starts[next] <= position + 0.5) {
        if (work.value() > 0) flush();
        pending_gather_ = ids[next];
        ++next;
      }
    };
    for (size_t k = 0; k < layers.size(); ++k) {
      const Template& tpl = templates_.get(st, *layers[k], LayerPass::forward);
      const double wait = wait_at(waits, k).value();
      // A bucket that starts with this layer waits before its offload wait.
      reach(at);
      work += Seconds(wait);
      parts.offload += Seconds(wait);
      double done = 0;  // share of the layer's forward placed so far
      while (params[k] > 0 && next < ids.size() && starts[next] < at + params[k] - 0.5) {
        const double share = (starts[next] - at) / params[k];
        add_share(r, tpl, share - done, work, parts);
        done = share;
        reach(starts[next]);
      }
      add_share(r, tpl, 1.0 - done, work, parts);
      at += params[k];
    }
    if (work.value() > 0 || !first_) flush();
  }

  // `share` of a layer template's pass added to a block's work and parts.
  void add_share(size_t r, const Template& tpl, double share, Seconds& work, Parts& parts) {
    if (share <= 0) return;
    Template part = tpl;
    part.total = tpl.total * share;
    part.parts.tp = tpl.parts.tp * share;
    part.parts.ep = tpl.parts.ep * share;
    part.parts.cp = tpl.parts.cp * share;
    part.parts.recompute = tpl.parts.recompute * share;
    part.parts.selective = tpl.parts.selective * share;
    for (auto& [cls, bytes] : part.traffic) bytes *= share;
    accumulate(r, part, work, parts);
  }

  void build_rank(size_t r) {
    const int rank = static_cast<int>(r);
    const int st = ranks_[r].s;
    const std::vector<Block>& sched = sched_[static_cast<size_t>(st)];
    prev_.reset();
    drain_.clear();
    drain_ready_ = false;
    // Gradients of a chunk are final after the last of its blocks that computes weight
    // gradients: a whole backward or a W.
    std::vector<size_t> last_bwd_of_chunk(chunks_, 0);
    for (size_t i = 0; i < sched.size(); ++i) {
      const Block& b = sched[i];
      ORRERY_CHECK(!(ctx_.opt.op_level && (b.split || b.weight || b.fused_with_next)),
                   "split backwards and fused pairs are built from layer templates");
      if (!b.forward && !b.split) last_bwd_of_chunk[b.chunk] = i;
    }
    fused_forward_.reset();
    pending_send_.reset();
    MaybeTask compute_end;
    for (size_t bi = 0; bi < sched.size(); ++bi) {
      const Block& b = sched[bi];
      const std::vector<const Layer*> layers = layers_.of_block(st, b.chunk);
      const bool final_bwd = !b.forward && !b.split && last_bwd_of_chunk[b.chunk] == bi;
      const int grad_list = ctx_.dual ? b.chunk : 0;
      first_.reset();
      if (rendezvous_) {
        // What the rank computed before this block (not its sends, which Megatron-Core
        // batches with this block's receive in one exchange).
        receiver_ready_[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = compute_end;
      }
      if (layers.empty()) {
        empty_block(r, b);
        // A pair of overlapped forward and backward (moe_a2a_overlap) with an empty side
        // has nothing to overlap: the other side runs alone.
        fused_forward_.reset();
      } else if (ctx_.opt.op_level) {
        op_level_block(r, b, layers, final_bwd, grad_list);
      } else {
        template_block(r, b, layers, final_bwd, grad_list);
        // A fused pair's blocks each add tasks.
        ORRERY_CHECK(!(b.fused_with_next || fused_forward_) || (first_ && prev_),
                     "the blocks of a DualPipe pair have tasks");
        if (b.fused_with_next) {
          fused_forward_ = std::make_pair(*first_, *prev_);
        } else if (fused_forward_) {
          overlap_pair(g_, ctx_.engine.compute_slowdown, *fused_forward_, {*first_, *prev_});
          fused_forward_.reset();
        }
      }
      compute_end = prev_;
      if (!b.forward && !b.weight) out_.backward_ends[r].push_back({prev_, b.chunk});
      if (pending_send_) {
        send_after(r, *pending_send_, prev_);
        pending_send_.reset();
      }
      if (b.weight) continue;  // a W sends nothing and nothing waits for it but the step
      block_first_[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = first_;
      block_last_[block_key(rank, b.forward ? 1 : 0, b.chunk, b.microbatch)] = prev_;
      if (b.defer_send) {
        pending_send_ = b;
      } else {
        send_after(r, b, prev_);
      }
    }
    ORRERY_CHECK(!pending_send_ && !fused_forward_, "a schedule ends with a held-back block");
    out_.last_compute[r] = prev_;
  }

  // DeepSpeed's PipelineEngine (pipeline_engine: deepspeed) runs its TrainSchedule's
  // instructions one after another on each rank (deepspeed_train_schedule, schedule.h;
  // PipelineEngine._exec_schedule in deepspeed/runtime/pipe/engine.py, microsoft/DeepSpeed
  // 56c522386878). Its transfers are blocking: p2p.send and p2p.recv call dist.send and
  // dist.recv (deepspeed/runtime/pipe/p2p.py at that commit; torch >= 1.8), one NCCL
  // send/recv each, which moves an activation far larger than NCCL's staging buffer (4 MiB,
  // DEFAULT_BUFFSIZE in src/init.cc, NVIDIA/nccl 48bb7fec) only once the receiver has
  // posted its recv, and after which the issuing rank's stream waits for the transfer. So
  // a transfer starts when both partners have reached it in their instruction streams and
  // each partner's next instruction waits for it to end: the transfer is a task on the
  // sender's compute stream that also waits for the receiver's last task before its
  // receive, and the receiver's next instruction (a compute block or a send) waits for it.
  void build_rank_deepspeed(size_t r) {
    using K = PipeInstruction::Kind;
    const int rank = static_cast<int>(r);
    const int st = ranks_[r].s;
    const std::vector<PipeInstruction>& instructions = ds_sched_[static_cast<size_t>(st)];
    const std::vector<const Layer*> layers = layers_.of_block(st, 0);
    size_t last_backward = 0;
    for (size_t i = 0; i < instructions.size(); ++i)
      if (instructions[i].kind == K::backward) last_backward = i;
    prev_.reset();
    drain_.clear();
    drain_ready_ = false;
    // The transfer (incoming_ key) just received, if the last instruction was a receive.
    bool has_received = false;
    size_t received = 0;
    for (size_t i = 0; i < instructions.size(); ++i) {
      const PipeInstruction& in = instructions[i];
      const bool forward =
          in.kind == K::forward || in.kind == K::recv_activation || in.kind == K::send_activation;
      const Block b{forward, 0, in.microbatch};
      const size_t key = block_key(rank, forward ? 1 : 0, 0, in.microbatch);
      if (in.kind == K::recv_activation || in.kind == K::recv_grad) {
        posted_.emplace_back(prev_, key);
        has_received = true;
        received = key;
      } else if (in.kind == K::send_activation || in.kind == K::send_grad) {
        send_after(r, b, prev_);
        if (has_received) waits_on_.emplace_back(received, *prev_);
        has_received = false;
      } else {
        first_.reset();
        const bool final_bwd = in.kind == K::backward && i == last_backward;
        if (ctx_.opt.op_level) {
          op_level_block(r, b, layers, final_bwd, 0);
        } else {
          template_block(r, b, layers, final_bwd, 0);
        }
        // The block itself waits for its received transfer in link_blocks.
        block_first_[key] = first_;
        block_last_[key] = prev_;
        has_received = false;
      }
    }
    out_.last_compute[r] = prev_;
  }

  // Each receiving block waits for its transfer; the last position's backward follows
  // its own forward: rank p - 1's last chunk, and under DualPipe also rank 0's chunk 1,
  // where the reverse direction ends.
  void link_blocks() {
    for (size_t k = 0; k < incoming_.size(); ++k) {
      g_.depend(incoming_[k], block_first_[k]);
    }
    // DeepSpeed's blocking transfers (build_rank_deepspeed).
    for (const auto& [before, key] : posted_) {
      ORRERY_CHECK(incoming_[key].has_value(), "every DeepSpeed receive has its send");
      g_.depend(before, incoming_[key]);
    }
    for (const auto& [key, after] : waits_on_) g_.depend(incoming_[key], after);
    // mtp_standalone's shape exchange waits for the receiver (send_after).
    for (size_t k = 0; k < shape_exchange_.size(); ++k) {
      g_.depend(receiver_ready_[k], shape_exchange_[k]);
    }
    const int p = p_.pp, v = p_.virtual_pipeline_stages;
    for (size_t r = 0; r < ranks_.size(); ++r) {
      const int rank = static_cast<int>(r);
      for (int chunk = 0; chunk < chunks_; ++chunk) {
        const bool last = ctx_.dual ? (chunk == 0 ? ranks_[r].s == p - 1 : ranks_[r].s == 0)
                                    : ranks_[r].s == p - 1 && chunk == v - 1;
        if (!last) continue;
        for (int mb = 0; mb < m_; ++mb) {
          g_.depend(block_last_[block_key(rank, 1, chunk, mb)],
                    block_first_[block_key(rank, 0, chunk, mb)]);
        }
      }
    }
  }

  const StepContext& ctx_;
  const ParallelismSpec& p_;
  const RankSet& ranks_;
  const StageLayers& layers_;
  LayerTemplates& templates_;
  CommPlanner& planner_;
  TaskGraph& g_;
  const int m_, chunks_, positions_;
  std::vector<std::vector<Block>> sched_;
  // pipeline_engine: deepspeed: every stage's instruction stream, and the edges of its
  // blocking transfers resolved once every rank is built: a transfer (incoming_ key)
  // waits for the receiver's last task before the receive, and the send after a
  // receive waits for the received transfer.
  const bool deepspeed_ = p_.pipeline_engine == PipelineEngine::deepspeed;
  std::vector<std::vector<PipeInstruction>> ds_sched_;
  std::vector<std::pair<MaybeTask, size_t>> posted_;
  std::vector<std::pair<size_t, int>> waits_on_;
  // Per block (block_key): its first and last compute task, and the transfer it receives.
  std::vector<MaybeTask> block_first_, block_last_, incoming_;
  int mtp_stage_ = -1;  // a multi-token-prediction stage of its own (PipelineLayout::mtp_stage)
  bool rendezvous_ = false;  // its shape exchanges wait for the receiver (send_after)
  // Under mtp_standalone, by block key: the shape exchange before the block's incoming
  // transfer, and the receiving rank's last task before the block.
  std::vector<MaybeTask> shape_exchange_, receiver_ready_;
  // Megatron-FSDP: the rank's reduce-scatter needs (indices into out_.fsdp[r]) of its
  // last backward, which the next block's first compute task waits for, once that
  // backward has ended (drain_ready_).
  std::vector<size_t> drain_;
  // FSDP1: whether a rank's chunk holds its root flat parameter gathered (fsdp_block).
  std::map<std::pair<size_t, int>, bool> root_held_;
  // FSDP2 under a pipeline: whether (rank, chunk, the unit's place in the chunk) is
  // gathered now (fsdp_block).
  std::map<std::tuple<size_t, int, size_t>, bool> unit_held_;
  bool drain_ready_ = false;
  MaybeTask prev_;   // the last task on the current rank's compute stream, once there is one
  MaybeTask first_;  // the first task of the current block, once it has one
  // DualPipe's overlapped pair: the forward's tasks, whose communication and that of the
  // backward after it are then hidden under each other's compute.
  std::optional<std::pair<int, int>> fused_forward_;
  // A transfer held back until after the next block (Block::defer_send).
  std::optional<Block> pending_send_;
  // The overlapped parameter gathers of each (first data-parallel member, chunk), in
  // forward order, and the first forward task of the chunk's first micro-batch on that
  // member (gathered_forward).
  std::map<std::pair<int, int>, std::vector<int>> gathers_;
  std::map<std::pair<int, int>, int> gather_launch_;
  // A gather the next compute task waits for (gathered_forward), consumed by add_block.
  MaybeTask pending_gather_;
  // Activation offload waits by (stage, chunk, forward): offload_waits.
  std::map<std::tuple<int, int, bool>, std::vector<Seconds>> offload_waits_;
  PipelineTasks out_;
};

}  // namespace

bool param_gather_in_forward(const StepContext& ctx) {
  const ParallelismSpec& p = ctx.p;
  return p.zero_stage == 1 && ctx.s.training.overlap_param_gather && p.shard_group() > 1 &&
         p.pipeline_engine == PipelineEngine::megatron && !ctx.dual;
}

PipelineTasks pipeline_pass(const StepContext& ctx, const RankSet& ranks, const StageLayers& layers,
                            LayerTemplates& templates, CommPlanner& planner, TaskGraph& g) {
  g.ranks = static_cast<int>(ranks.size());
  return PipelineBuilder(ctx, ranks, layers, templates, planner, g).build();
}

}  // namespace orrery::detail
