#include "model/memory.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/allocator_sequence.h"
#include "model/compression.h"
#include "model/layer_pass.h"
#include "model/pipeline.h"
#include "model/workload.h"

namespace orrery {
namespace {

// Micro-batches' worth of layers that stage i keeps at its peak, as a multiple of the
// stage's layer count (so 1F1B's first stage of p returns p).
double in_flight_factor(const ParallelismSpec& p, int stage) {
  const int m = p.microbatches();
  switch (p.schedule) {
    case PipelineSchedule::gpipe:
      return m;
    case PipelineSchedule::one_f_one_b:
      // Megatron-Core's combined 1F1B (moe_a2a_overlap) runs one more forward first.
      return std::min(p.pp - stage + (p.moe_a2a_overlap ? 1 : 0), m);
    case PipelineSchedule::zero_bubble_h1:
      // ZB-H1 gives every stage p micro-batches in flight (Qi et al. 2023, section 2.1):
      // stage i's p - i of 1F1B plus i whose W is deferred. A deferred W needs only its
      // GEMMs' inputs, so counting whole micro-batches is an upper bound except on the
      // first stage, where it equals 1F1B's peak.
      return std::min(p.pp, m);
    case PipelineSchedule::interleaved_1f1b:
      break;  // per chunk: see interleaved_peak
    case PipelineSchedule::dualpipe:
      break;  // two stages per rank: see stages_held
  }
  return 1.0;
}

// The model stages rank i holds, each with the micro-batches it keeps at its peak. Under
// DualPipe rank i holds stage h = min(i, p-1-i) for one direction and stage p-1-h for
// the other; the reference schedule (deepseek-ai/DualPipe, DualPipe.step) runs
// 2(p/2-h-1) + (h+1) forwards of the first and h+1 of the second before its first
// backward, then one more forward of the first: p - h and h + 1, p + 1 in all (the
// "PP+1" of the DualPipe README's comparison table).
std::vector<std::pair<int, double>> stages_held(const ParallelismSpec& p, int i) {
  if (p.schedule != PipelineSchedule::dualpipe) return {{i, in_flight_factor(p, i)}};
  const int h = std::min(i, p.pp - 1 - i);
  return {{h, static_cast<double>(p.pp - h)}, {p.pp - 1 - h, static_cast<double>(h + 1)}};
}

// Interleaved 1F1B: the micro-batches of each chunk that rank `stage` keeps when the
// activations it holds peak, given one micro-batch's activations through each chunk. The
// rank runs Megatron-Core's order (schedules.py at d98e8a64): the schedule table's first
// (p - stage - 1) * 2 + (v - 1) * G forwards, then one forward and one backward in turn
// (the k-th backward is the k-th table entry's micro-batch through the mirrored chunk),
// then the remaining backwards. A forward adds its chunk's activations, a backward frees
// them; the peak is taken after each forward.
std::vector<double> interleaved_peak(const ParallelismSpec& p, int stage,
                                     const std::vector<Bytes>& per_chunk) {
  const int v = p.virtual_pipeline_stages, m = p.microbatches();
  const int g = p.microbatch_group_size > 0 ? p.microbatch_group_size : p.pp;
  const auto table = interleaved_table(m, v, g);
  const int total = m * v;
  const int warmup =
      std::min((p.pp - stage - 1) * 2 + (v - 1) * g + (p.moe_a2a_overlap ? 1 : 0), total);
  std::vector<double> held(static_cast<std::size_t>(v), 0.0), best = held;
  double bytes = 0, peak = -1;
  auto forward = [&](int k) {
    const auto c = static_cast<std::size_t>(table[static_cast<std::size_t>(k)].second);
    held[c] += 1;
    bytes += per_chunk[c].value();
    if (bytes > peak) {
      peak = bytes;
      best = held;
    }
  };
  auto backward = [&](int k) {
    const auto c = static_cast<std::size_t>(v - 1 - table[static_cast<std::size_t>(k)].second);
    held[c] -= 1;
    bytes -= per_chunk[c].value();
  };
  for (int k = 0; k < warmup; ++k) forward(k);
  for (int i = 0; i < total - warmup; ++i) {
    forward(warmup + i);
    backward(i);
  }
  return best;
}

}  // namespace

StateBytes state_bytes_per_param(const TrainingSpec& t) {
  const bool fp32_weights = t.precision == Precision::fp32 || t.precision == Precision::tf32;
  StateBytes b;
  b.weight = weight_bytes(t.precision);
  b.gradient = fp32_weights ? 4.0 : bytes_per_value(t.gradient_dtype);
  const bool two_moments = t.optimizer == Optimizer::adam || t.optimizer == Optimizer::adamw ||
                           t.optimizer == Optimizer::lamb;
  // Adafactor keeps no per-element moment: its factored statistics are counted from the
  // matrices' shapes (estimate_memory), a fraction of a percent of the parameters.
  b.moments = two_moments                           ? 2 * moment_bytes(t.optimizer_state_dtype)
              : t.optimizer == Optimizer::adafactor ? 0.0
                                                    : 4.0;
  // The master copy under 16-bit training: fp32 (Megatron's default), fp16 (Megatron-Core
  // --main-params-dtype fp16) or none, the 16-bit weights updated in place.
  const double master = t.main_params_dtype == MainParams::fp32   ? 4.0
                        : t.main_params_dtype == MainParams::fp16 ? 2.0
                                                                  : 0.0;
  b.master = fp32_weights ? 0.0 : master;
  b.optimizer = b.moments + b.master;
  return b;
}

double moment_bytes(StateDtype d) {
  switch (d) {
    case StateDtype::fp32:
      return 4.0;
    case StateDtype::bf16:
      return 2.0;
    case StateDtype::int8:
      // bitsandbytes' 8-bit Adam: one uint8 code per element and one fp32 absmax per
      // block of 256 elements for each moment (bitsandbytes/optim/optimizer.py,
      // Optimizer2State.init_state, `blocksize = 256`, at bitsandbytes-foundation/
      // bitsandbytes 95f9af30; the paper's blocks of 2048, arXiv:2110.02861 section 2,
      // became 256 in commit aa57bd89). Tensors under min_8bit_size (4096 elements) stay
      // in fp32 there; orrery counts every parameter as 8-bit.
      return 1.0 + 4.0 / 256;
  }
  return 4.0;
}

namespace {

// The workload's layers by pipeline stage (model/pipeline.h): a CNN's all on stage 0;
// a transformer's where its pipeline layout puts them, with each layer's model chunk.
struct StageLayers {
  std::vector<std::vector<const Layer*>> layers;
  std::vector<std::vector<int>> chunk;  // chunk of each of layers[stage]
  std::vector<const Layer*> embedding, head;
  std::vector<int> embedding_chunk, head_chunk;
  // The rank whose multi-token-prediction layers keep a copy of the word embedding
  // (mtp_embedding_copy_rank, model/pipeline.h), or -1.
  int mtp_table_rank = -1;
  // Each rank's empty virtual stages (parallelism.pipeline_layout): (chunk, hidden states
  // it receives: 1, or 1 + mtp_layers past a multi-token-prediction stage of its own).
  std::vector<std::vector<std::pair<int, int>>> empty_chunks;
};

StageLayers assign_stages(const ModelSpec& m, const ParallelismSpec& p, const Workload& w) {
  StageLayers sl;
  sl.layers.resize(p.pp);
  sl.chunk.resize(p.pp);
  sl.embedding.assign(p.pp, nullptr);
  sl.head.assign(p.pp, nullptr);
  sl.embedding_chunk.assign(p.pp, 0);
  sl.head_chunk.assign(p.pp, 0);
  if (m.family == ModelFamily::cnn) {
    for (const Layer& l : w.layers) {
      sl.layers[0].push_back(&l);
      sl.chunk[0].push_back(0);
    }
  } else {
    const PipelineLayout layout = pipeline_layout(m, p);
    const auto place = layout.place_of_layers();
    sl.mtp_table_rank = mtp_embedding_copy_rank(m, p);
    sl.empty_chunks.resize(p.pp);
    for (int q = 0; q < p.pp * layout.vp; ++q) {
      if (layout.layers[static_cast<std::size_t>(q)] > 0 || q == layout.embedding_stage ||
          q == layout.loss_stage || q == layout.mtp_stage) {
        continue;
      }
      const int copies = layout.mtp_stage >= 0 && q > layout.mtp_stage ? 1 + m.mtp_layers : 1;
      sl.empty_chunks[static_cast<std::size_t>(q % p.pp)].emplace_back(q / p.pp, copies);
    }
    std::size_t index = 0;
    for (const Layer& l : w.layers) {
      if (l.kind == LayerKind::embedding) {
        const int r = layout.embedding_stage % p.pp;
        sl.embedding[r] = &l;
        sl.embedding_chunk[r] = layout.embedding_stage / p.pp;
      } else if (l.kind == LayerKind::head) {
        const int r = layout.loss_stage % p.pp;
        sl.head[r] = &l;
        sl.head_chunk[r] = layout.loss_stage / p.pp;
      } else if (l.kind == LayerKind::mtp) {
        // The last layer of its virtual stage (Shard::mtp_standalone).
        const int r = layout.mtp_stage % p.pp;
        sl.layers[r].push_back(&l);
        sl.chunk[r].push_back(layout.mtp_stage / p.pp);
      } else {
        const auto [r, c] = place.at(index++);
        sl.layers[r].push_back(&l);
        sl.chunk[r].push_back(c);
      }
    }
  }
  return sl;
}

// The loss's temporaries on the rank holding the head: what its cross-entropy holds at once
// beyond the fp32 softmax the head keeps for backward (the head.loss op's `saved`, 4 bytes a
// logit), per logit. Megatron-Core's vocab_parallel_cross_entropy (megatron/core/
// tensor_parallel/cross_entropy.py at NVIDIA/Megatron-LM d98e8a64; the fused variant calls
// the same functions; Megatron-DeepSpeed calls its own on output.float(), megatron/model/
// gpt_model.py line 63 at bigscience-workshop/Megatron-DeepSpeed 8387ae17) casts the logits
// to fp32 and turns that copy into the softmax in place, and its backward turns the softmax
// into the gradient in place before the cast's backward writes it in 16 bits: the 16-bit
// logits (or their gradient) beside it, `act` bytes when the cast copies (16-bit training),
// 0 in fp32. torchtitan (the fsdp2 stack: cross_entropy_loss, F.cross_entropy(
// pred.flatten(0, 1).float(), ...) in torchtitan/components/loss.py at pytorch/torchtitan
// b5bcd76c) keeps the 16-bit logits and their fp32 copy while log_softmax writes its fp32
// output (the saved tensor): act + 4 in 16-bit training, act in fp32; in backward
// nll_loss's backward writes a dense fp32 gradient the size of the logits and
// log_softmax's backward another beside the saved output: 8. Compiled, Inductor chooses
// what the fused loss saves, which orrery does not model: counted as eager. The fsdp1
// trainers' losses differ (LLM Foundry's MPT defaults to flash-attn's fused Triton
// cross-entropy, loss_fn 'fused_crossentropy' in llmfoundry/models/mpt/modeling_mpt.py at
// mosaicml/llm-foundry 8c8dd48f, which keeps the 16-bit logits, not an fp32 softmax), so
// none is counted for them.
double loss_temporaries_per_logit(const TrainingSpec& t) {
  // Transformer Engine's fused cross-entropy works in the logits' own buffer (the op's
  // saved bytes, model/transformer.cpp); its row statistics are 12 bytes a token.
  if (t.te_cross_entropy()) {
    return 0.0;
  }
  const double act = activation_bytes(t.precision);
  const double cast = act < 4.0 ? act : 0.0;
  switch (t.stack.preset) {
    case StackSpec::Preset::megatron_core:
    case StackSpec::Preset::nemo:
    case StackSpec::Preset::deepspeed:
      return cast;
    case StackSpec::Preset::fsdp2:
      return std::max(act + (cast > 0 ? 4.0 : 0.0), 8.0);
    case StackSpec::Preset::fsdp1:
      break;
  }
  return 0.0;
}

// Bytes of a layer's gathered weights: 1 byte for fp8 GEMM weights gathered in fp8.
Bytes gathered(const Layer& l, const StateBytes& sb, bool fp8_gather) {
  const double fp8_w = fp8_gather ? l.fp8_weight_elems() : 0.0;
  return Bytes(sb.weight * (l.params() - fp8_w) + 1.0 * fp8_w);
}

// What the stages one rank holds add up to, before sharding.
struct RankTally {
  double dense = 0, expert = 0;
  // Of those, the fp8 GEMMs' weight elements (Op::fp8_weight_elems), dense and expert.
  double fp8_dense = 0, fp8_expert = 0;
  Bytes activations;
  Bytes largest_layer_full;
  double largest_layer_params = 0;
  Bytes largest_layer_gathered;  // ZeRO-3: the largest layer's weights as gathered
  GradientShape gradients;       // this rank's gradients, for compression buffers
  // The largest single parameter tensor (an op's parameters: the word embedding's table
  // share, else a weight matrix): for DeepSpeed's per-tensor gradient casts
  // (deepspeed_transients).
  double largest_tensor = 0;
  // What the activations are right after one micro-batch's backward (the other
  // micro-batches in flight), and the head's fp32 logits, a block the loss frees.
  Bytes after_backward;
  Bytes loss_fp32;
};

// The largest parameter tensor of a layer: its op with the most parameters, an MoE expert
// op's one expert's weight matrix (each expert its own tensor).
double largest_tensor_of(const Layer& l) {
  double most = 0;
  for (const Op& op : l.ops) {
    const double matrix = op.weight_k * op.weight_n;
    most = std::max(most, op.expert && matrix > 0 ? matrix : op.params);
  }
  return most;
}

// The layer's fp8 state into the stage's memory, and its fp8 GEMM weight elements, dense
// and expert, into the rank's tally.
void add_fp8(StageMemory& st, RankTally& r, const Layer& l) {
  st.fp8_scaling_state += l.fp8_scaling_state();
  st.fp8_weight_cache += l.fp8_weight_cache();
  for (const Op& op : l.ops) (op.expert ? r.fp8_expert : r.fp8_dense) += op.fp8_weight_elems;
}

// Rank i's parameters, activations and largest layer; fills st's layer counts,
// activations per layer, parameter counts and fp8 state.
RankTally tally_rank(const Scenario& s, const StageLayers& sl, int i, const StateBytes& sb,
                     bool fp8_gather, StageMemory& st) {
  const ParallelismSpec& p = s.parallelism;
  const TrainingSpec& t = s.training;
  const ModelSpec& m = s.model;
  const Layer* embedding = sl.embedding[0];
  RankTally r;
  // Activations of one micro-batch through this rank's transformer layers (a
  // multi-token-prediction stage's layer is counted in the activations, not per layer).
  Bytes per_microbatch;
  for (const auto& [held, factor] : stages_held(p, i)) {
    for (const Layer* l : {sl.embedding[held], sl.head[held]}) {
      if (!l) continue;
      add_gradients(r.gradients, *l, false);
    }
    Bytes stage_microbatch;
    // Interleaved: one micro-batch's activations through each chunk, and layers per chunk.
    const bool interleaved = p.schedule == PipelineSchedule::interleaved_1f1b;
    std::vector<Bytes> chunk_microbatch(static_cast<std::size_t>(p.virtual_pipeline_stages));
    std::vector<int> chunk_layers(chunk_microbatch.size(), 0);
    int layers = 0;  // transformer layers (a multi-token-prediction layer is not one)
    for (std::size_t k = 0; k < sl.layers[held].size(); ++k) {
      const Layer* l = sl.layers[held][k];
      const int counted = l->kind == LayerKind::mtp ? 0 : 1;
      layers += counted;
      if (counted) per_microbatch += l->saved(t.recompute, t.recompute_modules);
      if (interleaved) {
        const auto c = static_cast<std::size_t>(sl.chunk[held][k]);
        chunk_microbatch[c] += l->saved(t.recompute, t.recompute_modules);
        chunk_layers[c] += counted;
      }
      add_gradients(r.gradients, *l, false);
      add_gradients(r.gradients, *l, true);
      r.dense += l->params() - l->expert_params();
      r.expert += l->expert_params();
      stage_microbatch += l->saved(t.recompute, t.recompute_modules);
      r.largest_layer_full = std::max(r.largest_layer_full, l->saved(Recompute::none));
      r.largest_layer_params = std::max(r.largest_layer_params, l->params());
      r.largest_layer_gathered = std::max(r.largest_layer_gathered, gathered(*l, sb, fp8_gather));
      r.largest_tensor = std::max(r.largest_tensor, largest_tensor_of(*l));
      add_fp8(st, r, *l);
    }
    // An empty virtual stage keeps what it received until the micro-batch's backward: the
    // schedule holds each forward's received tensor (input_tensors, Megatron-Core's
    // pipeline_parallel/schedules.py lines 1659 and 1692 at NVIDIA/Megatron-LM d98e8a64),
    // which in a stage with layers is its first layer's saved input, counted there; the
    // clone it sends on is freed once sent (deallocate_output_tensor, on in Megatron-LM:
    // argument_utils.py line 305). One hidden state (b s/cp h, its sequence-parallel share
    // under sp) a micro-batch in flight, 1 + mtp_layers past an MTP stage of its own.
    if (!sl.empty_chunks.empty() && !sl.empty_chunks[static_cast<std::size_t>(held)].empty()) {
      const double hidden_state = message_sizes(s).tp / (p.sequence_parallel ? p.tp : 1);
      for (const auto& [c, copies] : sl.empty_chunks[static_cast<std::size_t>(held)]) {
        const Bytes held_input(copies * hidden_state);
        stage_microbatch += held_input;
        if (interleaved) chunk_microbatch[static_cast<std::size_t>(c)] += held_input;
      }
    }
    st.layers += layers;
    if (interleaved) {
      // Each chunk's micro-batches held at the rank's peak (interleaved_peak).
      const std::vector<double> held_mb = interleaved_peak(p, held, chunk_microbatch);
      for (std::size_t c = 0; c < held_mb.size(); ++c) {
        st.layers_in_flight += held_mb[c] * chunk_layers[c];
        r.activations += chunk_microbatch[c] * held_mb[c];
      }
    } else {
      st.layers_in_flight += factor * layers;
      r.activations += stage_microbatch * factor;
      r.after_backward += stage_microbatch * std::max(0.0, factor - 1.0);
      if (t.activation_offload) {
        // pp = 1 (validated): the first `layers` transformer layers' saved tensors wait in
        // host memory, so the GPU's peak is the other layers' (Transformer Engine's
        // DefaultOffloadSynchronizer: (L - N) x T).
        const int n = std::min(t.activation_offload->layers, layers);
        Bytes off;
        for (int k = 0; k < n; ++k)
          off += sl.layers[held][static_cast<std::size_t>(k)]->saved(t.recompute, t.recompute_modules);
        st.layers_in_flight -= factor * n;
        st.offloaded_activations += off * factor;
        r.activations -= off * factor;
      }
    }
    if (held == sl.mtp_table_rank && embedding) {
      // The multi-token-prediction layers' copy of the word embedding
      // (simulator/pipeline_pass.cpp, StageLayers).
      r.dense += embedding->ops.front().params;
      r.largest_tensor = std::max(r.largest_tensor, embedding->ops.front().params);
    }
    if (const Layer* e = sl.embedding[held]) {
      r.dense += e->params();
      r.largest_layer_params = std::max(r.largest_layer_params, e->params());
      r.largest_layer_gathered = std::max(r.largest_layer_gathered, gathered(*e, sb, fp8_gather));
      r.largest_tensor = std::max(r.largest_tensor, largest_tensor_of(*e));
      add_fp8(st, r, *e);
      // Interleaved: as many as its chunk holds at the rank's peak.
      const double embedding_in_flight =
          p.schedule == PipelineSchedule::dualpipe ? factor
          : interleaved ? interleaved_peak(p, held, chunk_microbatch).at(
                              static_cast<std::size_t>(sl.embedding_chunk[held]))
                        : std::min(p.pp, p.microbatches());
      r.activations += e->saved(t.recompute, t.recompute_modules) * embedding_in_flight;
      r.after_backward +=
          e->saved(t.recompute, t.recompute_modules) * std::max(0.0, embedding_in_flight - 1.0);
    }
    if (const Layer* h = sl.head[held]) {
      r.dense += h->params();
      r.largest_layer_params = std::max(r.largest_layer_params, h->params());
      r.largest_layer_gathered = std::max(r.largest_layer_gathered, gathered(*h, sb, fp8_gather));
      add_fp8(st, r, *h);
      // Megatron keeps a copy of tied word embeddings on the last stage when pp > 1; under
      // DualPipe the first and last ranks hold the embedding and the head as one parameter
      // (tied_embedding_copy, simulator/step.h).
      r.largest_tensor = std::max(r.largest_tensor, largest_tensor_of(*h));
      if (m.tied_embeddings && p.pp > 1 && p.schedule != PipelineSchedule::dualpipe &&
          embedding) {
        r.dense += embedding->ops.front().params;
        r.largest_tensor = std::max(r.largest_tensor, embedding->ops.front().params);
      }
      r.activations += h->saved(t.recompute, t.recompute_modules);  // one micro-batch in flight
      for (const Op& op : h->ops) {
        if (op.kind == OpKind::loss) {
          r.loss_fp32 = std::max(r.loss_fp32, op.saved);
          st.loss_buffers += Bytes(op.saved.value() / 4.0 * loss_temporaries_per_logit(t));
        }
      }
    }
  }
  if (st.layers > 0) st.activations_per_layer = per_microbatch / st.layers;
  // Full recompute rebuilds one layer's activations at a time during backward.
  if (t.recompute == Recompute::full && m.family != ModelFamily::cnn) {
    r.activations += r.largest_layer_full;
  }
  st.params = r.dense + r.expert;
  st.expert_params = r.expert;
  return r;
}

// Weights, gradients and optimizer state, each sharded over its ZeRO group.
void add_model_states(const ParallelismSpec& p, const TrainingSpec& t, const StateBytes& sb,
                      const RankTally& r, double dense_group, double expert_group,
                      MemoryBreakdown& mem, double& offloaded) {
  const double dense = r.dense, expert = r.expert;
  const double wdiv_dense = p.zero_stage >= 3 ? dense_group : 1.0;
  const double wdiv_expert = p.zero_stage >= 3 ? expert_group : 1.0;
  // FSDP2 under a pipeline accumulates every micro-batch's gradients unsharded, in the
  // reduce dtype, until the step's reduce (fsdp_pipeline_deferred, scenario/spec.h).
  const bool sharded_grads = p.zero_stage >= 2 && !fsdp_pipeline_deferred(p, t);
  const double gdiv_dense = sharded_grads ? dense_group : 1.0;
  const double gdiv_expert = sharded_grads ? expert_group : 1.0;
  const double odiv_dense = p.zero_stage >= 1 ? dense_group : 1.0;
  const double odiv_expert = p.zero_stage >= 1 ? expert_group : 1.0;
  // Weights kept in fp8 (Fp8Spec::fp8_weights: Megatron-Core's fp8_param_gather builds the
  // fp8 GEMMs' weights as fp8 tensors, docs/model.md "Weights kept in fp8"): 1 byte each
  // per-tensor, MXFP8's two scaled copies under MXFP8 (fp8_kept_weight_bytes).
  const bool fp8_kept = t.fp8 && t.fp8->fp8_weights;
  const double fp8_dense = fp8_kept ? r.fp8_dense : 0.0;
  const double fp8_expert = fp8_kept ? r.fp8_expert : 0.0;
  const double fp8_bytes = fp8_kept ? fp8_kept_weight_bytes(t.fp8->scaling) : 0.0;
  mem.weights = Bytes(sb.weight * ((dense - fp8_dense) / wdiv_dense +
                                   (expert - fp8_expert) / wdiv_expert) +
                      fp8_bytes * (fp8_dense / wdiv_dense + fp8_expert / wdiv_expert));
  mem.gradients = Bytes(sb.gradient * (dense / gdiv_dense + expert / gdiv_expert));
  const double shard = dense / odiv_dense + expert / odiv_expert;
  mem.optimizer = Bytes(sb.optimizer * shard);
  if (t.optimizer_offload) {
    // The first `fraction` of the shard's elements step on the CPU (hybrid_optimizer.py,
    // _get_sub_optimizer_param_groups): their state leaves HBM.
    offloaded = t.optimizer_offload->fraction * shard;
    mem.optimizer = Bytes(sb.optimizer * (shard - offloaded));
  }
  if (t.optimizer == Optimizer::adafactor) {
    // Factored second moments: fp32 row and column means of every weight matrix, a full
    // fp32 second moment for the other parameters (Shazeer & Stern 2018, Algorithm 4).
    const double stats = r.gradients.p_rows + r.gradients.q_rows +
                         (r.gradients.params - r.gradients.matrix_params);
    mem.optimizer += Bytes(4.0 * stats / odiv_dense);
  }
}

// The elements of one layer's FSDP unit as the implementation lays it out over `w` ranks.
// FSDP1 flattens the unit's parameters into one FlatParameter and pads it to a multiple
// of the world size (FlatParamHandle's sharding: chunk(world_size), the last chunk padded;
// torch/distributed/fsdp/_flat_param.py at pytorch/pytorch 00ae0bc9). FSDP2 shards each
// parameter on dim 0 and pads that dim to a multiple of the world size
// (_get_dim0_padded_size in torch/distributed/fsdp/_fully_shard/_fsdp_common.py, used by
// _fsdp_collectives.py at pytorch/pytorch 010ae4a8): an nn.Linear weight of k inputs and n
// outputs is (n, k), so ceil(n / w) * w rows of k; the other parameters (norm weights,
// biases, the embedding table) are counted as one-dimensional tensors. Other
// implementations: the layer's parameters unpadded.
// FSDP1's flat parameter of n elements, padded to a multiple of the w ranks it shards over.
double flat_padded(double n, double w) { return std::ceil(n / w) * w; }

double fsdp_unit_elements(const Layer& l, ParallelismSpec::FsdpImpl impl, double w) {
  const double n = l.params();
  if (impl == ParallelismSpec::FsdpImpl::fsdp1) return flat_padded(n, w);
  if (impl != ParallelismSpec::FsdpImpl::fsdp2) return n;
  double padded = 0;
  for (const Op& op : l.ops) {
    double rest = op.params;
    if (op.kind == OpKind::gemm && op.weight_k > 0 && op.weight_n > 0) {
      const double copies = std::floor(op.params / (op.weight_k * op.weight_n));
      padded += copies * std::ceil(op.weight_n / w) * w * op.weight_k;
      rest -= copies * op.weight_k * op.weight_n;
    }
    if (rest > 0) padded += std::ceil(rest / w) * w;
  }
  return padded;
}

// FSDP1 / FSDP2: the gradient buffers of one unit's reduce-scatter beyond its gathered
// weights, at the post-backward hook of a unit of `u` padded elements over `w` ranks, with
// the next unit already prefetched (the default backward prefetch of both). Before the
// hook frees the unit's unsharded weights, the gathered weights of two units and the unit's
// unsharded gradient (in the weight dtype, `wb` bytes, as autograd produced it) are live:
// u * wb beyond the gather buffers. After it:
//  - FSDP1 (_post_backward_hook in torch/distributed/fsdp/_runtime_utils.py at
//    pytorch/pytorch 00ae0bc9) reduce-scatters the flat gradient where it lies: a cast copy
//    in the reduce dtype (`rb` bytes) when that differs from the weight dtype, a padded copy
//    when u is not a multiple of w, and the sharded output of u / w elements;
//  - FSDP2 (foreach_reduce in _fsdp_collectives.py at pytorch/pytorch 010ae4a8) always
//    copies the gradients into a new reduce-scatter input of u elements in the reduce dtype
//    (chunk_cat) before freeing them, plus the output of u / w elements;
// each beside the prefetched unit's weights and the unsharded gradient, so their excess
// over the two units of gather buffers is the larger of u * wb and those copies.
Bytes fsdp_reduce_buffers(ParallelismSpec::FsdpImpl impl, double u, double w, double wb, double rb,
                          bool padded) {
  double copies = u * rb / w;  // the sharded output
  if (impl == ParallelismSpec::FsdpImpl::fsdp1) {
    if (rb != wb) copies += u * rb;
    if (padded) copies += u * rb;
  } else {
    copies += u * rb;
  }
  return Bytes(std::max(u * wb, copies));
}

// ZeRO-2 shards the gradients because it reduce-scatters each micro-batch's gradients as
// the backward produces them (docs/simulator.md, "ZeRO-1 and ZeRO-2"); what is being
// reduced is whole meanwhile, and that is reduce_buffers. Which implementation follows the
// simulator's ZeRO-2 buckets (simulator/gradient_passes.cpp, zero2_buckets):
//  - DeepSpeed's engine (pipeline_engine: deepspeed): with contiguous_gradients, its
//    default, every backward allocates an IPG buffer of reduce_bucket_size elements
//    (zero2_deepspeed_bucket) in the model's 16-bit dtype, whatever gradient_dtype says,
//    and a second one under overlap_comm (training.overlap_grad_reduce), whatever the
//    model's size (stage_1_and_2.py `backward` and `self.dtype`; reduce_bucket_size 5e8
//    and overlap_comm_valid in zero/config.py; microsoft/DeepSpeed 38327e07);
//  - Megatron-FSDP's per-layer buckets, the other engine: the largest layer's gradients in
//    gradient_dtype.
Bytes zero2_reduce_buffers(const Scenario& s, const StateBytes& sb, const RankTally& r) {
  if (s.parallelism.pipeline_engine == PipelineEngine::deepspeed) {
    return Bytes(zero2_deepspeed_bucket(s.training) * sb.weight *
                 (s.training.overlap_grad_reduce ? 2.0 : 1.0));
  }
  return Bytes(r.largest_layer_params * sb.gradient);
}

// The caching allocator as far as a few large requests go: a request takes the smallest
// free cached block at least its size, else the allocator reserves a new segment of its
// size; blocks of different segments never merge (get_free_block, then alloc_block, in
// c10/cuda/CUDACachingAllocator.cpp at pytorch/pytorch 001074d2).
class SegmentTally {
 public:
  explicit SegmentTally(double freed) {
    if (freed > 0) free_.push_back(freed);
  }
  // The block a request of `size` bytes holds until give().
  double take(double size) {
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (*it >= size && (best == free_.end() || *it < *best)) best = it;
    if (best != free_.end()) {
      const double block = *best;
      free_.erase(best);
      return block;
    }
    grown_ += size;
    return size;
  }
  void give(double block) { free_.push_back(block); }
  double grown() const { return grown_; }

 private:
  std::vector<double> free_;
  double grown_ = 0;
};

struct Transients {
  Bytes held;      // beyond the backward's peak, at once (allocated)
  Bytes segments;  // reserved beyond that: new segments no freed block could serve
};

// DeepSpeed's engine (pipeline_engine: deepspeed, ZeRO stages 0-2) copies and casts its
// gradients after the backward's peak, in requests of whole tensors, buckets or partitions
// (DeepSpeed 0.5-0.6, the versions the BigScience runs used: v0.5.10, and the bf16 +
// pipeline change 56c522386878 at microsoft/DeepSpeed; P the rank's parameters, T its
// largest gradient tensor, 5e8 the engine's MEMORY_OPT_ALLREDUCE_SIZE):
//  - BF16_Optimizer (bf16_optimizer.py): after each micro-batch's backward, update_hp_grads
//    adds every bf16 gradient into the fp32 buffer through `lp.grad.to(fp32)`, one tensor
//    at a time (4T, the other micro-batches in flight keeping their activations); at the
//    step the engine's all-reduce (pipe/engine.py _bf16_reduce_grads -> engine.py
//    allreduce_no_retain and allreduce_bucket) casts the fp32 buffer to bf16 (2P): a bucket
//    goes out once it holds more than 5e8 elements, so a weight-decay group above that is
//    flattened alone, a view, and one below it is flattened with the other group into a
//    new fp32 tensor first (4P more).
//  - FP16_Optimizer (fp16 at ZeRO stage 0, fp16/fused_optimizer.py step): the engine's
//    all-reduce flattens buckets of just over 5e8 16-bit elements (the one copy a 32-bit
//    model makes at stage 0); the overflow check
//    copies each gradient to fp32 (`x.float()`, 4T); step() casts every gradient to fp32 (a
//    list, 4P) and flattens the list (4P more) while the fp16 gradients are held, and the
//    flat copy stays as the master's .grad through the update.
//  - DeepSpeedZeroOptimizer (zero/stage_1_and_2.py): at stage 1 the reduction flattens
//    buckets of up to reduce_bucket_size 16-bit elements (buffered_reduce_fallback;
//    contiguous_gradients is off at stage 1, engine.py _configure_zero_optimizer), and its
//    epilogue drops every gradient but the views of the rank's partition (zero_grad);
//    step() then checks for overflow with `x.float().sum()` and takes the norm with
//    `g.double().norm(2)` of each gradient of the partition (4 and 8 bytes an element, one
//    tensor at a time) and flattens the partition's gradients into one tensor cast to fp32
//    (`self.flatten(...).to(fp32)`: the 16-bit copy and the fp32 one at once; the fp32 one
//    stays as the master's .grad through the update). A 32-bit model's `x.float()` and
//    `.to(fp32)` return the tensor itself: only the norm's copy and the flat one remain.
// The activations and loss temporaries are freed by then. `held` is the most these hold
// at once beyond the backward's peak; `segments` what the caching allocator reserves for
// them beyond that (SegmentTally; the freed blocks it may reuse: a layer's saved tensors
// of one micro-batch, and the loss's fp32 logits on the head's stage).
Transients deepspeed_transients(const Scenario& s, const StateBytes& sb, const RankTally& r,
                                const StageMemory& st, double dense_group, double expert_group) {
  const ParallelismSpec& p = s.parallelism;
  if (p.pipeline_engine != PipelineEngine::deepspeed || p.zero_stage >= 3) return {};
  constexpr double kAllreduceBucket = 5e8;  // MEMORY_OPT_ALLREDUCE_SIZE, engine.py
  const double params = r.dense + r.expert;
  const double T = r.largest_tensor;
  // What the backward's peak holds beyond the model states.
  const double backward = (st.memory.activations + st.loss_buffers + st.reduce_buffers).value();
  SegmentTally seg(st.activations_per_layer.value());
  if (r.loss_fp32.value() > 0) seg.give(r.loss_fp32.value());
  double held = 0;
  // A request held alone for a moment, beside `beside` bytes beyond the model states (the
  // activations still live, less gradients already dropped), then freed.
  auto brief = [&](double size, double beside = 0) {
    held = std::max(held, size + beside - backward);
    seg.give(seg.take(size));
  };
  if (deepspeed_bf16_optimizer(s)) {
    brief(4.0 * T, r.after_backward.value());
    // The weight-decay group taken as every parameter: the other group holds the norms and
    // biases (under 0.1 % of a transformer's), so a rank just above 5e8 parameters, by less
    // than those, is read as one whose group goes out alone.
    const double flat = params > kAllreduceBucket ? 0.0 : 4.0 * params;
    const double block = flat > 0 ? seg.take(flat) : 0.0;
    brief(sb.weight * params, flat);
    if (block > 0) seg.give(block);
  } else if (p.zero_stage == 0) {
    brief(sb.weight * std::min(params, kAllreduceBucket + T));
    if (s.training.precision == Precision::fp16) {
      brief(4.0 * T);
      held = std::max(held, 8.0 * params - backward);
      const double largest = seg.take(4.0 * T);
      const double rest = params > T ? seg.take(4.0 * (params - T)) : 0.0;
      seg.take(4.0 * params);
      seg.give(largest);
      if (rest > 0) seg.give(rest);
    }
  } else {
    // A 32-bit model's `x.float()` and `.to(fp32)` return the tensor itself.
    const bool low = sb.weight < 4.0;
    const double shard = r.dense / dense_group + r.expert / expert_group;
    if (p.zero_stage == 1) brief(sb.weight * std::min(params, zero2_deepspeed_bucket(s.training)));
    // Stage 1's epilogue has dropped the gradients outside the partition; stage 2 holds
    // only those.
    const double freed = p.zero_stage == 1 ? sb.gradient * (params - shard) : 0.0;
    const double piece = std::min(T, shard);
    if (low) brief(4.0 * piece, -freed);
    brief(8.0 * piece, -freed);
    const double flat = sb.gradient * shard, master_grad = low ? 4.0 * shard : 0.0;
    held = std::max(held, flat + master_grad - freed - backward);
    const double block = seg.take(flat);
    if (master_grad > 0) seg.take(master_grad);
    seg.give(block);
  }
  Transients out;
  out.held = Bytes(std::max(0.0, held));
  out.segments = Bytes(std::max(0.0, seg.grown() - out.held.value()));
  return out;
}

// FSDP1's root (ParallelismSpec::fsdp1_root_unit) on rank i: the embedding and the head in
// one flat parameter, padded as one, beside the largest transformer layer.
struct Fsdp1Root {
  double unit = 0, unpadded = 0;          // the root's elements, padded and not
  double layer_unit = 0, layer_unpadded = 0;  // the largest other unit's
  Bytes gathered, layer_gathered;         // as gathered (fp8 gathers included)
};

// The word-embedding copies stage `held` keeps beside its head (as rank_tally counts
// them), in parameters: on the loss stage part of FSDP1's root flat parameter.
double head_table_copies(const Scenario& s, const StageLayers& sl, int held) {
  const ParallelismSpec& p = s.parallelism;
  const Layer* table = sl.embedding[0];
  if (!sl.head[held] || !table) return 0.0;
  const double table_params = table->ops.front().params;
  double copies = 0;
  if (s.model.tied_embeddings && p.pp > 1 && p.schedule != PipelineSchedule::dualpipe)
    copies += table_params;
  if (held == sl.mtp_table_rank) copies += table_params;
  return copies;
}

// The copy of the word embedding layer `l` of stage `held` carries as a parameter of its
// own, in parameters: the head's (head_table_copies), and a multi-token-prediction stage's
// own layer's when the loss is elsewhere (simulator/pipeline_pass.cpp, with_mtp_table).
double table_copy_params(const Scenario& s, const StageLayers& sl, int held, const Layer& l) {
  if (l.kind == LayerKind::head) return head_table_copies(s, sl, held);
  const Layer* table = sl.embedding[0];
  if (l.kind == LayerKind::mtp && table && !sl.head[held] && held == sl.mtp_table_rank)
    return table->ops.front().params;
  return 0.0;
}

Fsdp1Root fsdp1_root(const Scenario& s, const StageLayers& sl, int i, const StateBytes& sb,
                     bool fp8_gather, double w) {
  const ParallelismSpec& p = s.parallelism;
  Fsdp1Root out;
  // The word-embedding copies a stage keeps beside its head or MTP layers (as rank_tally
  // counts them): on the loss stage part of the root's flat parameter; on an MTP stage of
  // its own part of the MTP layer's unit (table_copy_params).
  for (const auto& [held, factor] : stages_held(p, i)) {
    (void)factor;
    for (const Layer* l : {sl.embedding[held], sl.head[held]}) {
      if (!l) continue;
      out.unpadded += l->params();
      out.gathered += gathered(*l, sb, fp8_gather);
    }
    const double copies = head_table_copies(s, sl, held);
    out.unpadded += copies;
    out.gathered += Bytes(copies * sb.weight);
    for (const Layer* l : sl.layers[held]) {
      const double extra = table_copy_params(s, sl, held, *l);
      const double e = flat_padded(l->params() + extra, w);
      if (e > out.layer_unit) {
        out.layer_unit = e;
        out.layer_unpadded = l->params() + extra;
      }
      out.layer_gathered =
          std::max(out.layer_gathered, gathered(*l, sb, fp8_gather) + Bytes(extra * sb.weight));
    }
  }
  out.unit = flat_padded(out.unpadded, w);
  return out;
}

// ZeRO-3 / FSDP: rank i's gather buffers, and with hpZ the secondary weight copy.
void add_zero3_terms(const Scenario& s, const StageLayers& sl, int i, const StateBytes& sb,
                     bool fp8_gather, const RankTally& r, StageMemory& st) {
  const ParallelismSpec& p = s.parallelism;
  const double dense = r.dense, expert = r.expert;
  // FSDP/ZeRO-3 materialise a layer's full weights before using it and prefetch
  // fsdp_prefetch more (one by default: two unsharded layers resident, FSDP's default
  // limit). Without resharding after forward, every layer's gathered weights stay
  // until its backward.
  // The largest unit as the implementation pads it (fsdp_unit_elements).
  const double w = p.zero3_group(s.cluster.gpus_per_node);
  double unit = 0, unpadded = 0;
  for (const auto& [held, factor] : stages_held(p, i)) {
    (void)factor;
    std::vector<const Layer*> units(sl.layers[held].begin(), sl.layers[held].end());
    for (const Layer* l : {sl.embedding[held], sl.head[held]})
      if (l) units.push_back(l);
    for (const Layer* l : units) {
      const double e = fsdp_unit_elements(*l, p.fsdp_impl, w);
      if (e > unit) {
        unit = e;
        unpadded = l->params();
      }
    }
  }
  const Fsdp1Root root = p.fsdp1_root_unit() ? fsdp1_root(s, sl, i, sb, fp8_gather, w) : Fsdp1Root{};
  // FSDP2 under a pipeline keeps every unit gathered from its first use until the step's
  // reduce (fsdp_pipeline_deferred, scenario/spec.h): once the first backwards have run,
  // all of them, reshard_after_forward or not.
  const bool resharded = reshards_each_microbatch(p, s.training);
  if (p.fsdp1_root_unit()) {
    unit = std::max(root.layer_unit, root.unit);
    unpadded = root.unit >= root.layer_unit ? root.unpadded : root.layer_unpadded;
  }
  if (p.fsdp1_root_unit() && p.reshard_after_forward && root.unit > 0) {
    // FSDP1: fsdp_prefetch + 1 transformer layers beside the root, which stays gathered
    // from the forward through the backward (_post_forward_reshard frees no root
    // parameters; simulator/pipeline_pass.cpp, fsdp_block).
    st.gather_buffers =
        fp8_gather ? root.layer_gathered * (1.0 + p.fsdp_prefetch) + root.gathered
                   : Bytes(((1.0 + p.fsdp_prefetch) * root.layer_unit + root.unit) * sb.weight);
  } else if (p.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp &&
      p.fsdp_unit == ParallelismSpec::FsdpUnit::layer && p.reshard_after_forward) {
    // Megatron-FSDP's units are its transformer layers: fsdp_prefetch + 1 of them
    // gathered at once, and the embedding and output layer, which are no units, gathered
    // by the step's first forward and kept until its end (simulator/pipeline_pass.cpp,
    // fsdp_block; megatron_fsdp.py at NVIDIA/Megatron-LM core_v0.14.0 23e00ed0).
    Bytes largest, outside;
    for (const auto& [held, factor] : stages_held(p, i)) {
      (void)factor;
      for (const Layer* l : sl.layers[held]) largest = std::max(largest, gathered(*l, sb, fp8_gather));
      for (const Layer* l : {sl.embedding[held], sl.head[held]})
        if (l) outside += gathered(*l, sb, fp8_gather);
    }
    st.gather_buffers = largest * (1.0 + p.fsdp_prefetch) + outside;
  } else if (!fp8_gather) {
    st.gather_buffers = resharded ? Bytes((1.0 + p.fsdp_prefetch) * unit * sb.weight)
                                  : Bytes((dense + expert) * sb.weight);
  } else {
    // fp8 all-gathers: the fp8 GEMMs' weights arrive (and stay) as 1-byte copies.
    Bytes all;
    for (const auto& [held, factor] : stages_held(p, i)) {
      (void)factor;
      for (const Layer* l : sl.layers[held]) all += gathered(*l, sb, fp8_gather);
      for (const Layer* l : {sl.embedding[held], sl.head[held]})
        if (l) all += gathered(*l, sb, fp8_gather);
    }
    st.gather_buffers = resharded ? r.largest_layer_gathered * (1.0 + p.fsdp_prefetch) : all;
  }
  // FSDP2 keeping a tied embedding's unit ([tok_embeddings, norm, output], torchtitan)
  // gathered from its forward, a micro-batch's first, to its backward, its last
  // (reshard_output_after_forward false): through the micro-batch it stays beside
  // fsdp_prefetch + 1 gathered layers. An untied output unit is kept from its forward, the
  // last, to its backward, the first, beside at most the prefetched layer: within the
  // terms above.
  if (resharded && p.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp2 && s.model.tied_embeddings &&
      !p.reshard_output_after_forward) {
    // A unit's bytes as gathered: padded as FSDP2 pads it, or in fp8 (gathered()).
    auto bytes_of = [&](const Layer& l) {
      return fp8_gather ? gathered(l, sb, fp8_gather)
                        : Bytes(fsdp_unit_elements(l, p.fsdp_impl, w) * sb.weight);
    };
    // The unit: the embedding's table and, on the same rank, the head's final norm
    // (fsdp2_tied_output_unit), each parameter padded on its own.
    Bytes table, largest_layer;
    for (const auto& [held, factor] : stages_held(p, i)) {
      (void)factor;
      if (const Layer* e = sl.embedding[held]) {
        table = std::max(table, bytes_of(*e) + (sl.head[held] ? bytes_of(*sl.head[held])
                                                               : Bytes(0)));
      }
      for (const Layer* l : sl.layers[held]) largest_layer = std::max(largest_layer, bytes_of(*l));
    }
    st.gather_buffers =
        std::max(st.gather_buffers, table + largest_layer * (1.0 + p.fsdp_prefetch));
  }
  // DeepSpeed ZeRO-3 keeps one reduce bucket of reduce_bucket_size gradient elements
  // (stage3.py allocates its IPG buffer at that size, in the gradient dtype); FSDP
  // reduce-scatters a unit's gradients where they were produced.
  if (p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed &&
      p.fsdp_unit == ParallelismSpec::FsdpUnit::module) {
    st.gather_buffers += Bytes(p.fsdp_reduce_bucket * sb.gradient);
  }
  if (p.torch_fsdp()) {
    st.reduce_buffers =
        fsdp_reduce_buffers(p.fsdp_impl, unit, w, sb.weight, sb.gradient, unit != unpadded);
  }
  if (p.zero_hpz) {
    // hpZ's secondary copy: the stage's weights over the ranks of a node that hold
    // them (its data-parallel ranks, with their context-parallel peers).
    st.memory.weights +=
        Bytes(sb.weight * (dense + expert) / (p.node_dp(s.cluster.gpus_per_node) * p.cp));
  }
}

}  // namespace

namespace {

// Micro-batches simulated for the allocator's waste: those the rank holds at its peak, at
// most kMaxSimulatedMicrobatches. Simulated, the waste does not grow in proportion to them
// (GPT-3 175B's first stage: 0.26-0.27 GiB for every count from 1 to 8; DeepSeek-V3's
// third: 1.12 GiB with one, 1.64 GiB with nine), so a schedule holding more (GPipe) is
// taken to waste what the largest simulated count does.
constexpr int kMaxSimulatedMicrobatches = 32;
// The rank's allocator waste (allocator_sequence_waste) for stage memory `st`.
Bytes rank_allocator_waste(const Scenario& s, const StageLayers& sl, int i, const StateBytes& sb,
                           bool fp8_gather, const StageMemory& st) {
  const ParallelismSpec& p = s.parallelism;
  const TrainingSpec& t = s.training;
  if (t.memory.allocator == MemorySpec::Allocator::none) return Bytes(0);
  std::vector<const Layer*> layers;
  // Gathers freed and taken again in every micro-batch, as the simulator takes them
  // (simulator/pipeline_pass.cpp, fsdp_block; GatherRequest), each with the table copy its
  // layer carries (table_copy_params): FSDP1's root (the embedding and head of one model
  // chunk, one flat parameter) taken by that chunk's first forward and, once freed, its
  // first backward, and freed after its first root layer's backward; FSDP2's output unit
  // when kept gathered from its forward to its backward (with torchtitan's tied unit the
  // head's bytes in the embedding's block); Megatron-FSDP's layers that are no units (the
  // embedding, head and multi-token-prediction layers) kept from the step's first forward;
  // the others in the window. A rank's chunks run in model order, one after another.
  using Hold = GatherRequest::Hold;
  std::vector<GatherRequest> gathered_weights;
  const bool gathers = reshards_each_microbatch(p, t);
  const bool outside_resident = p.fsdp_impl == ParallelismSpec::FsdpImpl::megatron_fsdp &&
                                p.fsdp_unit == ParallelismSpec::FsdpUnit::layer;
  for (const auto& [held, factor] : stages_held(p, i)) {
    (void)factor;
    const std::size_t first = layers.size();
    std::vector<int> chunk;  // each entry's model chunk
    if (sl.embedding[held]) {
      layers.push_back(sl.embedding[held]);
      chunk.push_back(sl.embedding_chunk[held]);
    }
    for (std::size_t k = 0; k < sl.layers[held].size(); ++k) {
      layers.push_back(sl.layers[held][k]);
      chunk.push_back(sl.chunk[held][k]);
    }
    if (sl.head[held]) {
      layers.push_back(sl.head[held]);
      chunk.push_back(sl.head_chunk[held]);
    }
    if (!gathers || layers.size() == first) continue;
    int root = -1;  // the first root layer, which holds the root's block
    for (std::size_t k = first; k < layers.size(); ++k) {
      const Layer& l = *layers[k];
      const bool edge = l.kind == LayerKind::embedding || l.kind == LayerKind::head;
      GatherRequest g{gathered(l, sb, fp8_gather) +
                      Bytes(table_copy_params(s, sl, held, l) * sb.weight)};
      if (p.fsdp1_root_unit() && edge) {
        g.hold = Hold::backward;
        if (root >= 0) {
          gathered_weights[static_cast<std::size_t>(root)].bytes += g.bytes;
          g.bytes = Bytes(0);
        } else {
          root = static_cast<int>(k);
        }
      } else if (outside_resident && l.kind != LayerKind::transformer) {
        g.hold = Hold::step;
      } else if (!p.reshards_after_forward(in_output_unit(l, s.model.tied_embeddings))) {
        g.hold = Hold::backward;
      }
      gathered_weights.push_back(g);
    }
    if (root >= 0) {
      // The root's chunk: its first entry's forward and its last entry's backward take it.
      const int c = chunk[static_cast<std::size_t>(root) - first];
      std::size_t lo = layers.size(), hi = first;
      for (std::size_t k = first; k < layers.size(); ++k) {
        if (chunk[k - first] != c) continue;
        lo = std::min(lo, k);
        hi = std::max(hi, k);
      }
      gathered_weights[lo].take_forward = root;
      gathered_weights[hi].take_backward = root;
    }
    // torchtitan's tied [tok_embeddings, norm, output] unit: the head's bytes are the
    // embedding's block (fsdp2_tied_output_unit; simulator/pipeline_pass.cpp, fsdp_block).
    if (sl.embedding[held] && sl.head[held] &&
        fsdp2_tied_output_unit(p, t, s.model.tied_embeddings)) {
      gathered_weights[first].bytes += gathered_weights.back().bytes;
      gathered_weights.back().bytes = Bytes(0);
    }
  }
  const std::vector<Bytes> states = {
      st.memory.weights, st.memory.gradients, st.memory.optimizer,
      st.compression_buffers + st.fp8_scaling_state + st.fp8_weight_cache};
  const int held = st.layers > 0 ? static_cast<int>(std::ceil(st.layers_in_flight / st.layers)) : 1;
  const int n = std::clamp(held, 1, kMaxSimulatedMicrobatches);
  const int m = p.microbatches();
  return detail::remembered_sequence_waste(t.memory.allocator, states, layers, gathered_weights,
                                           p.fsdp_prefetch, n, m > n, t.recompute,
                                           t.recompute_modules);
}

}  // namespace

// Per GPU, the communicators a rank of the layout uses, in Megatron-Core's rank order (tp
// innermost, then cp, then dp, pp outermost; experts carved out of dp with stride tp), a
// group spanning nodes when the ranks it strides over exceed a node. NCCL connects an
// algorithm's channels when a collective first uses it (NCCL_RUNTIME_CONNECT, on by
// default: src/init.cc at NVIDIA/nccl 5067397c), so only what the step runs is counted:
//  - tp, and dp x cp (the gradient group): a ring, one incoming connection a channel; an
//    all-reduce across nodes (tp without sequence parallelism, dp under ZeRO stage 0) also
//    connects the tree, a parent and a child a channel (3);
//  - cp (Transformer Engine's ring attention) and pp: send/receive with the two
//    neighbours (one when the group has two ranks, and for pp's first and last stages
//    unless interleaved or DualPipe);
//  - cp under cp_comm all_gather: a ring collective instead;
//  - ep: an all-to-all with every other rank of the group; under ep_alltoall hierarchical
//    (DeepSeek-V3's exchange) the group's ranks in the node and one GPU in each other node
//    it spans.
// Point-to-point uses `nccl_channels` per peer (NVIDIA/nccl issue 1685: 32 a pair on
// H100), halved while channels per peer x ceil(ranks / 8) exceed the channels when the
// group spans nodes (ncclTopoComputeP2pChannels, src/graph/paths.cc;
// NCCL_MAX_DEV_WORK_P2P_PER_BATCH 8, src/include/device.h). Not counted: NVLink SHARP's
// buffers, the network transport's shared buffers and proxy memory, CollNet, Megatron's
// embedding group, and communicators a stack creates besides these.
std::vector<NcclCommunicator> nccl_communicators(const Scenario& s, int stage) {
  const ParallelismSpec& p = s.parallelism;
  const int node = std::max(1, s.cluster.gpus_per_node);
  const int channels = s.training.memory.nccl_channels;
  std::vector<NcclCommunicator> out;
  auto add = [&](const char* group, int ranks, int span, int connections, int per_channel) {
    if (ranks <= 1) return;
    NcclCommunicator c;
    c.group = group;
    c.ranks = ranks;
    c.spans_nodes = span > node;
    c.connections = connections;
    c.channels = per_channel;
    c.bytes = Bytes(static_cast<double>(connections) * per_channel * kNcclConnectionBytes);
    out.push_back(c);
  };
  auto collective = [&](const char* group, int ranks, int span, bool all_reduce) {
    add(group, ranks, span, all_reduce && span > node ? 3 : 1, channels);
  };
  auto p2p = [&](const char* group, int ranks, int span, int peers) {
    int per_peer = channels;
    if (span > node) {
      const int rounds = (ranks + 7) / 8;
      while (per_peer * rounds > channels && per_peer > 1) per_peer /= 2;
    }
    add(group, ranks, span, peers, per_peer);
  };
  collective("tp", p.tp, p.tp, !p.sequence_parallel);
  if (p.cp_comm == ParallelismSpec::CpComm::all_gather) {
    collective("cp", p.cp, p.tp * p.cp, false);
  } else {
    p2p("cp", p.cp, p.tp * p.cp, p.cp == 2 ? 1 : 2);
  }
  collective("dp", p.dp * p.cp, p.dp_span(), p.zero_stage == 0);
  if (p.ep_alltoall == ParallelismSpec::Alltoall::hierarchical) {
    // Two-level exchange: the group's other ranks in this node, then the same-rail GPU
    // of each other node the group spans.
    const int in_node = std::min(p.ep, std::max(1, node / p.etp()));
    const int nodes = (p.ep + in_node - 1) / in_node;
    p2p("ep", p.ep, p.etp() * p.ep, (in_node - 1) + (nodes - 1));
  } else {
    p2p("ep", p.ep, p.etp() * p.ep, p.ep - 1);
  }
  // The first and last stages of a plain schedule talk to one neighbour; interleaved
  // chunks and DualPipe's two directions reach both from every rank.
  const bool both_ends = p.virtual_pipeline_stages > 1 || p.schedule == PipelineSchedule::dualpipe;
  const bool end_stage = stage == 0 || stage == p.pp - 1;
  p2p("pp", p.pp, p.pp_span(), p.pp == 2 || (end_stage && !both_ends) ? 1 : 2);
  return out;
}
MemoryReport estimate_memory(const Scenario& s) {
  return estimate_memory(s, build_workload(s.model, s.training, shard_of(s.parallelism)));
}

MemoryReport estimate_memory(const Scenario& s, const Workload& w) {
  return estimate_memory(s, w, false);
}

MemoryReport estimate_memory(const Scenario& s, const Workload& w, bool verdict_only) {
  const ParallelismSpec& p = s.parallelism;
  const TrainingSpec& t = s.training;
  const ModelSpec& m = s.model;
  const StageLayers sl = assign_stages(m, p, w);

  const StateBytes sb = state_bytes_per_param(t);
  // DualPipe reduces a stage's gradients over both copies' data-parallel ranks, so
  // ZeRO stages 1-2 shard over twice the group (ZeRO-3 is refused with it).
  const double copies = p.schedule == PipelineSchedule::dualpipe ? 2.0 : 1.0;
  const double dense_group =
      (p.zero_stage >= 3 ? p.zero3_group(s.cluster.gpus_per_node) : p.shard_group()) * copies;
  // The expert data-parallel group: dp x cp / ep, or tp x dp x cp / ep under expert_tp 1.
  const double expert_group =
      std::max(copies, dense_group * p.tp / (static_cast<double>(p.etp()) * p.ep));
  const bool fp8_gather = t.fp8 && t.fp8->param_allgather_fp8;

  MemoryReport report;
  // Each stage's DeepSpeed step segments before the capacity caps them (add_step_segments).
  std::vector<Bytes> segments;
  report.capacity = s.cluster.gpu.memory;
  for (int i = 0; i < p.pp; ++i) {
    StageMemory st;
    st.stage = i;
    const RankTally r = tally_rank(s, sl, i, sb, fp8_gather, st);
    MemoryBreakdown& mem = st.memory;
    add_model_states(p, t, sb, r, dense_group, expert_group, mem, st.offloaded_params);
    st.host = Bytes(kOffloadedHostBytes * st.offloaded_params) + st.offloaded_activations;
    mem.activations = r.activations;

    if (t.runtime_reserve_set) {
      st.runtime_reserve = t.runtime_reserve;
    } else {
      st.cuda_context = t.memory.cuda_context;
      for (const NcclCommunicator& c : nccl_communicators(s, i)) st.nccl_buffers += c.bytes;
      st.runtime_reserve = st.cuda_context + st.nccl_buffers;
    }
    st.cublas_workspace = t.memory.cublas_workspace;
    if (p.zero_stage >= 3) add_zero3_terms(s, sl, i, sb, fp8_gather, r, st);
    if (p.zero_stage == 2) st.reduce_buffers = zero2_reduce_buffers(s, sb, r);
    if (deepspeed_bf16_optimizer(s)) {
      // The bf16 param.grad beside the fp32 buffer: the pipeline engine clears it only at
      // the start of the next backward (clear_lp_grads, then update_hp_grads with
      // clear_lp_grads=False, pipe/engine.py _exec_backward_pass at 56c522386878).
      // Its fp32 buffer is the whole model's whatever gradient_dtype says.
      mem.gradients = Bytes((4.0 + sb.weight) * (r.dense + r.expert));
    }
    const Transients tr = deepspeed_transients(s, sb, r, st, dense_group, expert_group);
    st.step_buffers = tr.held;
    segments.push_back(tr.segments);
    st.compression_buffers = compression_state(t.compression, r.gradients, p.shard_group());
    report.stages.push_back(st);
  }
  // The caching allocator's waste last, once the stages' other figures are known.
  auto sum_other = [](StageMemory& st) {
    st.memory.other = st.runtime_reserve + st.cublas_workspace + st.allocator_overhead +
                      st.gather_buffers + st.reduce_buffers + st.loss_buffers + st.step_buffers +
                      st.compression_buffers + st.fp8_scaling_state + st.fp8_weight_cache;
  };
  bool over = false;
  // DeepSpeed's step segments are the caching allocator's (training.memory.allocator:
  // caching; expandable segments grow one segment whose freed pages the next request
  // reuses, and `none` reserves what is allocated). They are reserved only while the
  // device has room: a cudaMalloc that fails makes the allocator release its free cached
  // blocks and retry (release_cached_blocks in CUDACachingAllocator.cpp's malloc). What
  // that cuts is kept apart (step_segments_cut): such a run fits only through the release.
  const bool caching = t.memory.allocator == MemorySpec::Allocator::caching;
  auto add_step_segments = [&](StageMemory& st, Bytes uncapped) {
    if (!caching) uncapped = Bytes(0);
    const double room = std::max(0.0, (report.capacity - st.memory.total()).value());
    st.step_segments = Bytes(std::min(uncapped.value(), room));
    st.step_segments_cut = uncapped - st.step_segments;
    st.allocator_overhead += st.step_segments;
    sum_other(st);
  };
  for (int i = 0; i < p.pp; ++i) {
    StageMemory& st = report.stages[static_cast<std::size_t>(i)];
    st.allocator_overhead = st.memory.activations * t.allocator_overhead;
    sum_other(st);
    add_step_segments(st, segments[static_cast<std::size_t>(i)]);
    if (st.memory.total() > report.capacity) over = true;
  }
  if (!(verdict_only && over)) {
    for (int i = 0; i < p.pp; ++i) {
      StageMemory& st = report.stages[static_cast<std::size_t>(i)];
      st.allocator_overhead = st.memory.activations * t.allocator_overhead +
                              rank_allocator_waste(s, sl, i, sb, fp8_gather, st);
      sum_other(st);
      add_step_segments(st, segments[static_cast<std::size_t>(i)]);
    }
  }
  for (int i = 0; i < p.pp; ++i) {
    if (report.stages[i].memory.total() > report.stages[report.worst_stage].memory.total()) {
      report.worst_stage = i;
    }
  }
  report.fits = report.worst().memory.total() <= report.capacity;
  report.margin = t.memory.margin;
  report.near_capacity =
      report.fits && report.worst().memory.total() > report.capacity * (1.0 - t.memory.margin);
  if (s.cluster.host.given()) {
    report.host_capacity = s.cluster.host.memory / static_cast<double>(s.cluster.gpus_per_node);
    for (const StageMemory& st : report.stages)
      if (st.host > report.host_capacity) report.fits = false;
  }
  return report;
}

double zero2_deepspeed_bucket(const TrainingSpec& t) { return t.grad_bucket_params.value_or(5e8); }

bool deepspeed_bf16_optimizer(const Scenario& s) {
  return s.parallelism.pipeline_engine == PipelineEngine::deepspeed &&
         s.training.precision == Precision::bf16 && s.parallelism.zero_stage < 2;
}

}  // namespace orrery
