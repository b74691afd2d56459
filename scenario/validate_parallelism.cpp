// resolve()'s parallelism section: dp from the GPU count, the pipeline layout, the schedule
// and the ZeRO stage completed, and the split checked against the cluster and the model.
#include "scenario/validate_parts.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scenario/pipeline_layout.h"

namespace orrery::validate_detail {
namespace {

// parallelism.global_batch present; dp derived from the GPU count when not written, and
// tp*pp*dp*cp equal to that count; global_batch a multiple of microbatch*dp.
void complete_degrees(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  const int gpus = s.cluster.gpus();
  require(s, "parallelism.global_batch", "sequences (or images) per optimizer step");

  // Degrees are each at most 2^20 (load_sections.h): their products are taken in 64 bits. Once
  // tp*pp*dp*cp equals the GPU count (at most 2^30), products of some of them fit an int.
  const std::int64_t model_ranks = std::int64_t{p.tp} * p.pp * p.cp;
  if (!is_set(s, "parallelism.dp")) {
    if (gpus % model_ranks != 0) {
      reject(s, "parallelism.tp", std::to_string(p.tp),
             fmt::format("tp*pp*cp = {} does not divide the cluster's {} GPUs", model_ranks, gpus));
    }
    p.dp = static_cast<int>(gpus / model_ranks);
  }
  if (model_ranks * p.dp != gpus) {
    reject(s, "parallelism.dp", std::to_string(p.dp),
           fmt::format("tp*pp*dp*cp = {}*{}*{}*{} = {} but the cluster has {} GPUs ({} nodes x {})",
                       p.tp, p.pp, p.dp, p.cp, model_ranks * p.dp, gpus,
                       s.cluster.nodes, s.cluster.gpus_per_node));
  }
  if (p.global_batch % (std::int64_t{p.microbatch} * p.dp) != 0) {
    reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
           fmt::format("must be a multiple of microbatch*dp = {}*{} = {}", p.microbatch, p.dp,
                       std::int64_t{p.microbatch} * p.dp));
  }
}

// parallelism.pipeline_layout: well-formed text whose stage count is a multiple of pp
// (Megatron-LM megatron/training/arguments.py at d98e8a64 derives the virtual stages per
// rank from it); the virtual_pipeline_stages it gives is filled in, or must agree.
void complete_pipeline_layout(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  if (!is_set(s, "parallelism.pipeline_layout")) return;
  const std::string key = "parallelism.pipeline_layout";
  const std::string& text = p.pipeline_layout;
  if (!s.model.is_transformer()) reject(s, key, text, "pipeline layouts place transformer layers");
  const LayoutParse parsed = parse_pipeline_layout(text);
  if (!parsed.error.empty()) {
    reject(s, key, text,
           fmt::format("at position {} ('{}' from there): {}", parsed.position + 1,
                       text.substr(parsed.position, 12), parsed.error));
  }
  const auto stages = static_cast<std::int64_t>(parsed.stages.size());
  if (stages % p.pp != 0) {
    reject(s, key, text,
           fmt::format("has {} stages ('|' separates them), which must be a multiple of pp = {} "
                       "(the multiple is the virtual stages per rank)",
                       stages, p.pp));
  }
  const int vp = static_cast<int>(stages / p.pp);
  if (is_set(s, "parallelism.virtual_pipeline_stages") && p.virtual_pipeline_stages != vp) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(p.virtual_pipeline_stages),
           fmt::format("the pipeline_layout's {} stages over pp = {} give {} virtual stages per "
                       "rank; remove virtual_pipeline_stages or make it {}",
                       stages, p.pp, vp, vp));
  }
  p.virtual_pipeline_stages = vp;
}

// The schedule defaults from virtual_pipeline_stages (interleaved-1f1b when above 1),
// and the two must agree with each other, with pp and with the micro-batch count.
void complete_schedule(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  const int vp = p.virtual_pipeline_stages;
  if (!is_set(s, "parallelism.schedule")) {
    p.schedule = vp > 1 ? PipelineSchedule::interleaved_1f1b : PipelineSchedule::one_f_one_b;
  }
  if (p.schedule == PipelineSchedule::interleaved_1f1b && vp < 2) {
    reject(s, "parallelism.schedule", to_string(p.schedule),
           "needs virtual_pipeline_stages >= 2 (model chunks per pipeline rank)");
  }
  if (p.schedule != PipelineSchedule::interleaved_1f1b && vp > 1) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(vp),
           fmt::format("virtual stages need schedule {}, not {}",
                       to_string(PipelineSchedule::interleaved_1f1b), to_string(p.schedule)));
  }
  // Megatron-Core's interleaved schedule (megatron/core/pipeline_parallel/schedules.py at
  // d98e8a64, forward_backward_pipelining_with_interleaving): micro-batches go through
  // the chunks in groups of G = microbatch_group_size (default pp) with pp <= G <= the
  // micro-batch count M, and a last, smaller group M % G, if any, at least pp.
  const bool group_set = is_set(s, "parallelism.microbatch_group_size");
  if (group_set && p.schedule != PipelineSchedule::interleaved_1f1b) {
    reject(s, "parallelism.microbatch_group_size", std::to_string(p.microbatch_group_size),
           "groups micro-batches of the interleaved-1f1b schedule only");
  }
  if (p.flexible_groups && p.schedule != PipelineSchedule::interleaved_1f1b) {
    reject(s, "parallelism.flexible_groups", "true",
           "relaxes the interleaved-1f1b schedule's groups only (set virtual_pipeline_stages)");
  }
  if (!group_set) p.microbatch_group_size = p.pp;
  if (p.one_short_group()) {
    // Fewer micro-batches than pp, the Llama 3 paper's first use of its flexible N: one
    // group of all M. Megatron-Core's order then never waits on itself (checked for pp 2-8,
    // vp 2-4, tests/simulator/step_test.cpp). Groups below pp over several groups, and a
    // last group below pp, make that order wait on itself (a rank's backward needs a
    // forward it runs later), which is why Megatron-Core refuses them; the paper's reordering
    // for those is not public, so they keep Megatron-Core's rule below.
    const int m = p.microbatches();
    if (group_set && p.microbatch_group_size != m) {
      reject(s, "parallelism.microbatch_group_size", std::to_string(p.microbatch_group_size),
             fmt::format("with fewer micro-batches than pp = {} (flexible_groups), the "
                         "schedule runs one group of all {}",
                         p.pp, m));
    }
    p.microbatch_group_size = m;
  } else if (p.schedule == PipelineSchedule::interleaved_1f1b) {
    const int g = p.microbatch_group_size, m = p.microbatches();
    if (group_set && (g < p.pp || g > m)) {
      reject(s, "parallelism.microbatch_group_size", std::to_string(g),
             fmt::format("must lie between pp = {} and the {} micro-batches per replica "
                         "(Megatron-Core's interleaved order waits on itself with smaller "
                         "groups)",
                         p.pp, m));
    }
    if (m < p.pp || (m % g != 0 && m % g < p.pp)) {
      reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
             fmt::format("interleaved-1f1b runs micro-batches in groups of {} ({}): the {} "
                         "micro-batches per replica (global_batch / (microbatch*dp)) must be "
                         "at least pp = {} and leave a last group of 0 or at least pp (here "
                         "{}); {}",
                         g, group_set ? "microbatch_group_size" : "pp", m, p.pp, m % g,
                         m < p.pp ? "set flexible_groups to run them as one group (the Llama 3 "
                                    "paper's schedule)"
                                  : "set microbatch_group_size to a count that does"));
    }
  }
  if (vp > 1 && p.pp < 2) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(vp),
           "interleaving needs pp >= 2");
  }
}

// fsdp: true means ZeRO stage 3; a zero_stage written beside it must say 3.
void complete_zero_stage(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  if (p.fsdp) {
    if (is_set(s, "parallelism.zero_stage") && p.zero_stage != 3) {
      reject(s, "parallelism.zero_stage", std::to_string(p.zero_stage),
             "fsdp: true shards parameters, gradients and optimizer state (stage 3); "
             "remove zero_stage or set it to 3");
    }
    p.zero_stage = 3;
  }
  // DeepSpeed's engine runs bf16 without ZeRO through its BF16_Optimizer (bf16 weights with
  // fp32 gradient accumulation, its default without ZeRO: get_data_types and
  // _do_optimizer_sanity_check in deepspeed/runtime/engine.py at microsoft/DeepSpeed
  // 38327e07), which partitions the fp32 weights and the optimizer state over the
  // data-parallel group and all-gathers the updated weights in step() (BF16_Optimizer in
  // bf16_optimizer.py): ZeRO-1's sharding at its stage 0. (fp16 without ZeRO is its
  // FP16_Optimizer, unsharded.)
  if (p.pipeline_engine == PipelineEngine::deepspeed && s.training.precision == Precision::bf16 &&
      p.zero_stage == 0)
    p.zero_stage = 1;
  // The implementation: `fsdp` (true or a mapping) is PyTorch FSDP1 unless the mapping
  // names another; `zero_stage: 3` alone is DeepSpeed ZeRO-3. Its gather unit: DeepSpeed
  // fetches per submodule (partitioned_param_coordinator.py, fetch_sub_module), PyTorch
  // FSDP per wrapped block (llm-foundry and torchtitan wrap each transformer block).
  if (p.zero_stage >= 3 && !p.fsdp && !is_set(s, "parallelism.fsdp.implementation"))
    p.fsdp_impl = ParallelismSpec::FsdpImpl::deepspeed;
  // A stack named in the file runs its own ZeRO-3 / FSDP: DeepSpeed ZeRO-3, PyTorch FSDP1
  // or FSDP2, and for Megatron-Core and NeMo Megatron-FSDP (args.use_megatron_fsdp,
  // megatron/training/arguments.py at d98e8a64).
  if (p.zero_stage >= 3 && !is_set(s, "parallelism.fsdp.implementation") &&
      is_set(s, "training.stack")) {
    using I = ParallelismSpec::FsdpImpl;
    switch (s.training.stack.preset) {
      case StackSpec::Preset::deepspeed: p.fsdp_impl = I::deepspeed; break;
      case StackSpec::Preset::fsdp1: p.fsdp_impl = I::fsdp1; break;
      case StackSpec::Preset::fsdp2: p.fsdp_impl = I::fsdp2; break;
      default: p.fsdp_impl = I::megatron_fsdp; break;
    }
  }
  if (!is_set(s, "parallelism.fsdp.unit")) {
    p.fsdp_unit = p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed
                      ? ParallelismSpec::FsdpUnit::module
                      : ParallelismSpec::FsdpUnit::layer;
  }
  // The output unit's reshard (FSDP2): torchtitan's default policy keeps its [norm,
  // output] unit gathered from the forward to the backward (apply_fsdp_to_decoder,
  // torchtitan/distributed/fsdp.py at pytorch/torchtitan b5bcd76c); elsewhere every unit
  // follows reshard_after_forward.
  if (!is_set(s, "parallelism.reshard_output_after_forward")) {
    p.reshard_output_after_forward =
        p.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp2 &&
                s.training.stack.preset == StackSpec::Preset::fsdp2
            ? false
            : p.reshard_after_forward;
  }
  // DeepSpeed ZeRO-3 keeps and reduce-scatters gradients in the model's own 16-bit type:
  // under ZeRO its gradient-accumulation dtype is the model dtype unless grad_accum_dtype
  // is set (get_data_types), its communication dtype fp16 or bf16 with the precision
  // (communication_data_type, deepspeed/runtime/engine.py lines 939-1025 at
  // microsoft/DeepSpeed 38327e07), and stage 3 averages and reduce-scatters the parameters'
  // own .grad in it (__avg_scatter_grads, deepspeed/runtime/zero/stage3.py).
  if (p.zero_stage >= 3 && p.fsdp_impl == ParallelismSpec::FsdpImpl::deepspeed &&
      !is_set(s, "training.gradient_dtype")) {
    switch (s.training.precision) {
      case Precision::fp16: s.training.gradient_dtype = Dtype::fp16; break;
      case Precision::bf16:
      case Precision::fp8:
      case Precision::fp4: s.training.gradient_dtype = Dtype::bf16; break;
      case Precision::fp32:
      case Precision::tf32: break;
    }
  }
}

// The DeepSpeed engine runs 1f1b only. zb-h1 and dualpipe are modelled with ZeRO stages
// 0-2 only; dualpipe also needs an even pp and at least 2*pp micro-batches, an even
// count. Runs after complete_zero_stage.
void check_schedule_preconditions(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  // DeepSpeed's PipelineEngine runs only its TrainSchedule, a 1F1B order
  // (deepspeed/runtime/pipe/schedule.py, microsoft/DeepSpeed 56c522386878).
  if (p.pipeline_engine == PipelineEngine::deepspeed &&
      p.schedule != PipelineSchedule::one_f_one_b) {
    // Name the key the file wrote: virtual stages alone imply the interleaved schedule.
    if (!is_set(s, "parallelism.schedule") && p.virtual_pipeline_stages > 1) {
      reject(s, "parallelism.virtual_pipeline_stages", std::to_string(p.virtual_pipeline_stages),
             "DeepSpeed's pipeline engine (pipeline_engine: deepspeed) runs only its "
             "TrainSchedule, a 1F1B order without virtual stages: remove "
             "virtual_pipeline_stages");
    }
    reject(s, "parallelism.schedule", to_string(p.schedule),
           "DeepSpeed's pipeline engine (pipeline_engine: deepspeed) runs only its "
           "TrainSchedule, a 1F1B order: schedule must be 1f1b");
  }
  // Its constructor refuses ZeRO stages 2 and 3 (deepspeed/runtime/pipe/engine.py,
  // PipelineEngine.__init__, at microsoft/DeepSpeed 38327e07): they reduce gradients inside
  // the backward, which the engine schedules itself.
  if (p.pipeline_engine == PipelineEngine::deepspeed && p.pp > 1 && p.zero_stage >= 2) {
    reject(s, "parallelism.zero_stage", std::to_string(p.zero_stage),
           "DeepSpeed's pipeline engine (pipeline_engine: deepspeed with pp > 1) refuses ZeRO "
           "stages 2 and 3, which reduce gradients inside the backward it schedules itself: "
           "zero_stage must be 0 or 1");
  }
  // Its bf16 path across stages is BF16_Optimizer's fp32 gradients reduced by
  // _bf16_reduce_grads, whose all-reduce asserts the model has no MoE layers (engine.py
  // buffered_allreduce_fallback with given gradients, "attempting to reduce grads in
  // unsupported way w.r.t. MoE", at microsoft/DeepSpeed 56c522386878). At pp 1 DeepSpeed's
  // plain engine reduces the parameters' gradients, which handles them.
  if (p.pipeline_engine == PipelineEngine::deepspeed && p.pp > 1 && s.model.moe &&
      s.training.precision == Precision::bf16) {
    reject(s, "parallelism.pipeline_engine", "deepspeed",
           "DeepSpeed's pipeline engine (pp > 1) reduces bf16 gradients through "
           "BF16_Optimizer's fp32 buffer, an all-reduce that refuses mixture-of-experts "
           "layers: use fp16, pipeline_engine megatron, or pp 1");
  }
  // torch.distributed.pipelining's multi-stage runtime keeps at most three of a rank's
  // stages gathered and reshards the others mid-step (_add_unshard_reshard,
  // max_active_stages=3, torch/distributed/pipelining/schedules.py at pytorch/pytorch
  // 00722e64); orrery keeps every unit gathered from its first use (fsdp_pipeline_deferred).
  if (fsdp_pipeline_deferred(p, s.training) && p.virtual_pipeline_stages > 3) {
    reject(s, "parallelism.virtual_pipeline_stages", std::to_string(p.virtual_pipeline_stages),
           "torchtitan's FSDP2 under a pipeline (training.stack fsdp2) keeps at most 3 stages "
           "of a rank gathered and reshards the others mid-step, which is not modelled: use "
           "at most 3 virtual stages");
  }
  if (p.schedule == PipelineSchedule::zero_bubble_h1 && p.zero_stage >= 3) {
    reject(s, "parallelism.schedule", to_string(p.schedule),
           "zb-h1 is modelled with ZeRO stages 0-2 (FSDP units keep whole backward passes)");
  }
  if (p.schedule == PipelineSchedule::dualpipe) {
    // The reference implementation's preconditions (deepseek-ai/DualPipe, DualPipe.step).
    if (p.pp < 2 || p.pp % 2 != 0) {
      reject(s, "parallelism.pp", std::to_string(p.pp),
             "dualpipe pairs rank r with rank pp-1-r: pp must be even and at least 2");
    }
    if (p.microbatches() % 2 != 0 || p.microbatches() < 2 * p.pp) {
      reject(s, "parallelism.global_batch", std::to_string(p.global_batch),
             fmt::format("dualpipe sends half of the micro-batches each way and needs at least "
                         "2*pp of them: the {} micro-batches per replica (global_batch / "
                         "(microbatch*dp)) must be even and at least {}",
                         p.microbatches(), 2 * p.pp));
    }
    if (p.zero_stage >= 3) {
      reject(s, "parallelism.schedule", to_string(p.schedule),
             "dualpipe is modelled with ZeRO stages 0-2 (FSDP units keep whole backward passes)");
    }
  }
}

// The ZeRO-3/FSDP options (sharding, reshard_after_forward, fsdp_prefetch, zero_hpz) only
// with stage 3, and hybrid sharding and hpZ only where the data-parallel ranks of a node
// tile the data-parallel group.
void check_sharding(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  if (p.zero_stage < 3) {
    auto flag = [](bool b) { return std::string(b ? "true" : "false"); };
    const std::pair<const char*, std::string> keys[] = {
        {"parallelism.sharding", to_string(p.sharding)},
        {"parallelism.reshard_after_forward", flag(p.reshard_after_forward)},
        {"parallelism.reshard_output_after_forward", flag(p.reshard_output_after_forward)},
        {"parallelism.fsdp_prefetch", std::to_string(p.fsdp_prefetch)},
        {"parallelism.zero_hpz", flag(p.zero_hpz)}};
    for (const auto& [key, value] : keys) {
      if (is_set(s, key))
        reject(s, key, value, "applies to ZeRO-3 / FSDP only (zero_stage: 3 or fsdp: true)");
    }
  }
  // PyTorch FSDP1 keeps the output layer in its root's flat parameter, which its
  // post-forward never frees; Megatron-FSDP gathers it once a step; DeepSpeed frees modules
  // by its own rules: the switch is FSDP2's (fully_shard of the output layer's unit).
  if (p.zero_stage >= 3 && is_set(s, "parallelism.reshard_output_after_forward") &&
      p.fsdp_impl != ParallelismSpec::FsdpImpl::fsdp2) {
    reject(s, "parallelism.reshard_output_after_forward",
           p.reshard_output_after_forward ? "true" : "false",
           fmt::format("applies to FSDP2 only (parallelism.fsdp.implementation: fsdp2); this "
                       "scenario's ZeRO-3 implementation is {}",
                       to_string(p.fsdp_impl)));
  }
  if (p.zero_hpz && p.sharding == ParallelismSpec::Sharding::hybrid) {
    reject(s, "parallelism.zero_hpz", "true",
           "hybrid sharding already gathers inside the node; hpZ applies to full sharding");
  }
  // With expert parallelism ZeRO-3 shards the experts over the ranks holding the same experts
  // (simulator/gradient_passes.cpp, fsdp_pass); their in-node share under hybrid sharding or
  // hpZ (torchtitan's dp_replicate x dp_shard_mod_ep mesh, ZeRO++'s secondary copy) is not
  // modelled.
  if (p.zero_stage >= 3 && p.ep > 1 && p.sharding == ParallelismSpec::Sharding::hybrid) {
    reject(s, "parallelism.sharding", to_string(p.sharding),
           "hybrid sharding with expert parallelism (ep > 1) is not modelled: the experts' "
           "shard group inside a node; use sharding: full");
  }
  if (p.zero_hpz && p.ep > 1) {
    reject(s, "parallelism.zero_hpz", "true",
           "hpZ with expert parallelism (ep > 1) is not modelled: the experts' secondary copy "
           "inside a node");
  }
  if (p.zero_hpz && !p.reshard_after_forward) {
    reject(s, "parallelism.zero_hpz", "true",
           "with reshard_after_forward: false the backward pass gathers nothing, so there is "
           "nothing for hpZ to keep inside the node");
  }
  if (p.sharding == ParallelismSpec::Sharding::hybrid) {
    const int local = s.cluster.gpus_per_node / (p.tp * p.cp);
    if (local < 1 || s.cluster.gpus_per_node % (p.tp * p.cp) != 0 || p.dp % local != 0) {
      reject(s, "parallelism.sharding", to_string(p.sharding),
             fmt::format("hybrid sharding shards over the {} data-parallel ranks of a node; "
                         "tp*cp must divide gpus_per_node and that count must divide dp ({})",
                         std::max(local, 0), p.dp));
    }
    if (p.zero3_group(s.cluster.gpus_per_node) == 1 && p.shard_group() > 1) {
      // tp*cp fills the node: the in-node shard group is this one GPU, so every GPU keeps
      // whole parameters, gradients and optimizer state, replicated over all of dp.
      reject(s, "parallelism.sharding", to_string(p.sharding),
             fmt::format("shards nothing here: hybrid sharding shards over the data-parallel "
                         "ranks of one node, and tp*cp = {} fills the {}-GPU node, so its shard "
                         "group has 1 GPU and every GPU keeps full copies of the parameters, "
                         "gradients and optimizer state; use sharding: full, or a smaller tp*cp",
                         p.tp * p.cp, s.cluster.gpus_per_node));
    }
  }
  if (p.zero_hpz) {
    // The secondary copy is sharded over the data-parallel ranks of a node, which must
    // tile the data-parallel group.
    const int local = p.node_dp(s.cluster.gpus_per_node);
    if (p.dp % local != 0) {
      reject(s, "parallelism.zero_hpz", "true",
             fmt::format("hpZ shards its copy over the {} data-parallel ranks of a node, "
                         "which must divide dp ({})",
                         local, p.dp));
    }
  }
}

// tp divides the attention heads, the key/value heads (without MLA), ffn and expert_ffn.
void check_tensor_split(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  if (m.heads % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the attention heads ({})", m.heads));
  }
  if (!m.mla && m.kv_heads % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the key/value heads ({}) as Megatron requires", m.kv_heads));
  }
  if (m.ffn % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the feed-forward width ffn ({})", m.ffn));
  }
  if (m.moe && m.moe->expert_ffn % p.tp != 0) {
    reject(s, "parallelism.tp", std::to_string(p.tp),
           fmt::format("must divide the expert width expert_ffn ({})", m.moe->expert_ffn));
  }
}

// The layers divide over the pipeline as Megatron-Core accepts them
// (megatron/core/transformer/transformer_config.py and transformer_block.py
// get_num_layers_to_build at d98e8a64): a pipeline_layout with one embedding first, one
// loss last and every transformer layer; or first_stage_layers / last_stage_layers with
// the rest even over the other ranks and each rank's count even over its chunks; or
// layers (+1 for each accounted embedding or loss) even over pp*virtual_pipeline_stages.
// A virtual stage may hold nothing, as Megatron-Core's layouts allow ("E|t|t*2|t||(t|)*2,t*2,L"
// in tests/unit_tests/transformer/test_pipeline_parallel_layer_layout.py at d98e8a64): its
// chunk builds no layer and passes what it receives on (TransformerBlock.forward with no
// layers), so the schedule's transfers through it stay and its blocks take no time.
void check_pipeline_layout_text(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const std::string key = "parallelism.pipeline_layout";
  const std::string& text = p.pipeline_layout;
  for (const char* other : {"parallelism.first_stage_layers", "parallelism.last_stage_layers",
                            "parallelism.account_for_embedding", "parallelism.account_for_loss"}) {
    if (is_set(s, other)) {
      reject(s, key, text,
             fmt::format("spells out every stage; remove {} (Megatron refuses the two together)",
                         other));
    }
  }
  const LayoutParse parsed = parse_pipeline_layout(text);
  std::string flat;
  for (const std::string& st : parsed.stages) flat += st;
  auto count = [&](char c) { return std::count(flat.begin(), flat.end(), c); };
  if (count('E') != 1 || flat.front() != 'E') {
    reject(s, key, text, "needs exactly one E (embedding), before every other layer");
  }
  if (count('L') != 1 || flat.back() != 'L') {
    reject(s, key, text, "needs exactly one L (output layer and loss), after every other layer");
  }
  // Megatron-Core requires as many m as --mtp-num-layers, after every t, in one virtual stage,
  // that stage a rank's last (pipeline_parallel_layer_layout.py validate_layer_layout at
  // d98e8a64). In the loss's stage orrery times them with the loss, so they sit right before
  // L. Elsewhere the stage is Megatron-Core's MTP stage of its own (mtp_standalone), with
  // only empty stages between it and L's (TransformerBlock passes through them); orrery
  // models it on any rank but the first (model/pipeline.h).
  if (count('m') != s.model.mtp_layers) {
    reject(s, key, text,
           fmt::format("places {} multi-token-prediction layers (m); model.mtp_layers is {}",
                       count('m'), s.model.mtp_layers));
  }
  if (count('m') > 0 && flat.find('t', flat.find('m')) != std::string::npos) {
    reject(s, key, text,
           "places a transformer layer (t) after a multi-token-prediction layer (m); "
           "Megatron-Core requires every t before the m");
  }
  if (count('m') > 0) {
    std::size_t ms = 0;
    while (parsed.stages[ms].find('m') == std::string::npos) ++ms;
    const std::string& st = parsed.stages[ms];
    const std::string ms_tail(static_cast<std::size_t>(count('m')), 'm');
    const std::string tail = ms == parsed.stages.size() - 1 ? ms_tail + "L" : ms_tail;
    if (st.size() < tail.size() || st.compare(st.size() - tail.size(), tail.size(), tail) != 0) {
      reject(s, key, text,
             ms == parsed.stages.size() - 1
                 ? "orrery times the multi-token-prediction layers with the loss in its stage: "
                   "write every m right before L"
                 : "write every multi-token-prediction layer (m) in one stage, after its "
                   "transformer layers, as Megatron-Core requires");
    }
    const std::size_t pp = static_cast<std::size_t>(p.pp);
    if (ms != parsed.stages.size() - 1) {
      if (ms / pp != parsed.stages.size() / pp - 1) {
        reject(s, key, text,
               fmt::format("stage {} holds the multi-token-prediction layers; Megatron-Core "
                           "places them only in a rank's last virtual stage",
                           ms));
      }
      if (ms % pp == 0) {
        reject(s, key, text,
               "the multi-token-prediction layers on the first rank, beside the embedding, are "
               "not modelled: place them on another rank's last virtual stage or before L");
      }
      // Stages between it and L's hold nothing: a t there would follow an m, and E, L and
      // every m have their places.
      if (p.pipeline_engine != PipelineEngine::megatron ||
          (p.schedule != PipelineSchedule::one_f_one_b &&
           p.schedule != PipelineSchedule::interleaved_1f1b)) {
        reject(s, key, text,
               fmt::format("a stage of multi-token-prediction layers of its own is "
                           "Megatron-Core's (mtp_standalone), modelled under its 1f1b and "
                           "interleaved-1f1b schedules only, not {}",
                           p.pipeline_engine != PipelineEngine::megatron
                               ? std::string("DeepSpeed's pipeline engine")
                               : fmt::format("schedule {}", to_string(p.schedule))));
      }
    }
  }
  if (count('t') != s.model.layers) {
    reject(s, key, text,
           fmt::format("places {} transformer layers (t); the model has {}", count('t'),
                       s.model.layers));
  }
  // Megatron-Core builds the embedding on the first virtual stage and the output layer on
  // the last (pre_process, post_process: is_pipeline_first_stage / is_pipeline_last_stage);
  // empty stages before E or after L would move them.
  if (parsed.stages.front().find('E') == std::string::npos) {
    reject(s, key, text, "the first stage (rank 0, virtual stage 0) must hold the E");
  }
  if (parsed.stages.back().find('L') == std::string::npos) {
    reject(s, key, text,
           fmt::format("the last stage (rank {}, virtual stage {}) must hold the L", p.pp - 1,
                       parsed.stages.size() / static_cast<std::size_t>(p.pp) - 1));
  }
  const bool megatron_schedule = p.pipeline_engine == PipelineEngine::megatron &&
                                 p.schedule != PipelineSchedule::dualpipe;
  for (std::size_t i = 0; i < parsed.stages.size() && !megatron_schedule; ++i) {
    if (parsed.stages[i].empty()) {
      reject(s, key, text,
             fmt::format("stage {} (rank {}, virtual stage {}) is empty; orrery runs an empty "
                         "stage as Megatron-Core's schedules do, not under {}",
                         i, i % static_cast<std::size_t>(p.pp), i / static_cast<std::size_t>(p.pp),
                         p.schedule == PipelineSchedule::dualpipe
                             ? "the dualpipe schedule"
                             : "DeepSpeed's pipeline engine"));
    }
  }
}

void check_pipeline_split(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  const int vp = p.virtual_pipeline_stages;
  const bool accounted = p.account_for_embedding || p.account_for_loss;
  if (!p.pipeline_layout.empty()) {
    check_pipeline_layout_text(s);
  } else if (p.first_stage_layers || p.last_stage_layers) {
    const char* key = p.first_stage_layers ? "parallelism.first_stage_layers"
                                           : "parallelism.last_stage_layers";
    const std::string value = std::to_string(p.first_stage_layers ? *p.first_stage_layers
                                                                   : *p.last_stage_layers);
    if (accounted) {
      reject(s, key, value,
             "uneven first/last stages cannot be combined with account_for_embedding or "
             "account_for_loss (Megatron refuses it); use a pipeline_layout");
    }
    const int edges = (p.first_stage_layers ? 1 : 0) + (p.last_stage_layers ? 1 : 0);
    if (p.pp <= edges) {
      reject(s, key, value,
             fmt::format("needs pp > {} so that some stage takes the remaining layers", edges));
    }
    const int rest = m.layers - p.first_stage_layers.value_or(0) - p.last_stage_layers.value_or(0);
    if (rest <= 0 || rest % (p.pp - edges) != 0) {
      reject(s, key, value,
             fmt::format("the remaining {} of {} layers must divide evenly over the other {} "
                         "stages",
                         rest, m.layers, p.pp - edges));
    }
    if (vp > 1) {
      for (const auto& [k, n] : {std::pair{"parallelism.first_stage_layers", p.first_stage_layers},
                                 std::pair{"parallelism.last_stage_layers", p.last_stage_layers}}) {
        if (n && (*n == 0 || *n % vp != 0)) {
          reject(s, k, std::to_string(*n),
                 fmt::format("with interleaving each rank's layers split evenly over its "
                             "virtual_pipeline_stages = {} chunks: must be a positive multiple "
                             "of {}",
                             vp, vp));
        }
      }
      const int middle = rest / (p.pp - edges);
      if (middle % vp != 0) {
        reject(s, key, value,
               fmt::format("leaves {} layers on each other stage, which must divide evenly over "
                           "virtual_pipeline_stages = {} chunks",
                           middle, vp));
      }
    }
  } else {
    const std::int64_t total =
        m.layers + (p.account_for_embedding ? 1 : 0) + (p.account_for_loss ? 1 : 0);
    if (total % (std::int64_t{p.pp} * vp) != 0) {
      // A hint that names a split that is accepted: the first and last stage one layer
      // lighter (or heavier) when the rest divides.
      std::string hint;
      if (!accounted && p.pp > 2) {
        for (int delta : {0, -1, 1, -2, 2}) {
          const std::int64_t edge = m.layers / p.pp + delta;
          const std::int64_t rest = m.layers - 2 * edge;
          if (edge > 0 && edge % vp == 0 && rest > 0 && rest % (p.pp - 2) == 0 &&
              (rest / (p.pp - 2)) % vp == 0) {
            hint = fmt::format(
                "; or set first_stage_layers: {} and last_stage_layers: {} (the "
                "other {} stages take {} each)",
                edge, edge, p.pp - 2, rest / (p.pp - 2));
            break;
          }
        }
        if (hint.empty() && (m.layers + 2) % (std::int64_t{p.pp} * vp) == 0) {
          hint = "; or set account_for_embedding and account_for_loss (layers + 2 then divide)";
        }
      }
      reject(s, "parallelism.pp", std::to_string(p.pp),
             fmt::format("layers ({}{}) must divide evenly into pp*virtual_pipeline_stages = "
                         "{}*{} model chunks{}",
                         m.layers, accounted ? " + the accounted embedding/loss" : "", p.pp, vp,
                         hint));
    }
    if (p.account_for_embedding && total / (std::int64_t{p.pp} * vp) < 1) {
      reject(s, "parallelism.account_for_embedding", "true", "no layers left in the first stage");
    }
  }
}

// cp splits seq_len in 2*cp load-balanced chunks; ep needs an MoE model and divides both
// the experts and dp*cp, the ranks expert-parallel groups are carved from.
void check_context_and_expert_split(Scenario& s) {
  ParallelismSpec& p = s.parallelism;
  const ModelSpec& m = s.model;
  if (p.cp > 1 && m.seq_len % (2 * p.cp) != 0) {
    reject(s, "parallelism.cp", std::to_string(p.cp),
           fmt::format("seq_len ({}) must be a multiple of 2*cp for the load-balanced causal "
                       "split",
                       m.seq_len));
  }
  // Expert tensor parallelism: Megatron-Core's --expert-tensor-parallel-size, tp where unset
  // (megatron/training/arguments.py and megatron/core/parallel_state.py at
  // NVIDIA/Megatron-LM d98e8a64). orrery times 1 (each rank dispatches its own
  // sequence-parallel tokens) and tp; Megatron-Core's MoE layer refuses tensor parallelism
  // without sequence parallelism in training (moe_layer.py there).
  if (is_set(s, "parallelism.expert_tp")) {
    const std::string v = std::to_string(p.expert_tp);
    if (!m.moe) reject(s, "parallelism.expert_tp", v, "expert tensor parallelism needs an MoE model");
    if (p.expert_tp != 1 && p.expert_tp != p.tp) {
      reject(s, "parallelism.expert_tp", v,
             fmt::format("orrery times expert tensor parallelism 1 or tp ({})", p.tp));
    }
    if (p.expert_tp < p.tp && !p.sequence_parallel) {
      reject(s, "parallelism.expert_tp", v,
             fmt::format("below tp ({}) each rank dispatches its sequence-parallel share of the "
                         "tokens: set sequence_parallel (Megatron-Core's MoE layer requires it "
                         "under tensor parallelism)",
                         p.tp));
    }
  } else {
    p.expert_tp = p.tp;
  }
  if (p.moe_a2a_overlap) {
    // Megatron-Core's conditions (TransformerConfig.__post_init__, transformer_config.py at
    // NVIDIA/Megatron-LM d98e8a64): expert parallelism, an interleaved schedule when pp > 1,
    // no full recompute and no recomputed moe module, no shared-expert overlap.
    const auto refuse = [&](const std::string& why) {
      reject(s, "parallelism.moe_a2a_overlap", "true", why);
    };
    if (!m.moe || p.ep < 2) refuse("overlapping the MoE all-to-all needs expert parallelism (ep > 1)");
    if (p.pp > 1 && p.schedule != PipelineSchedule::interleaved_1f1b) {
      refuse("with pp > 1 Megatron-Core runs it only under the interleaved schedule "
             "(virtual_pipeline_stages > 1)");
    }
    if (p.pp == 1 && p.schedule != PipelineSchedule::one_f_one_b) {
      refuse("with pp 1 it is Megatron-Core's combined 1F1B over the micro-batches (schedule 1f1b)");
    }
    if (s.training.recompute == Recompute::full) refuse("Megatron-Core refuses it with full recompute");
    if (s.training.recompute == Recompute::selective &&
        (s.training.recompute_modules & kRecomputeMoe) != 0) {
      refuse("Megatron-Core refuses it with the moe module recomputed");
    }
    if (m.moe->shared_expert_overlap) refuse("Megatron-Core refuses it with shared_expert_overlap");
    if (s.training.precision == Precision::fp32 || s.training.precision == Precision::tf32)
      refuse("Megatron-Core runs it with a bf16 or fp16 model only");
    if (m.mtp_layers > 1) refuse("Megatron-Core runs it with at most one MTP layer");
  }
  if (p.ep > 1) {
    if (!m.moe) {
      reject(s, "parallelism.ep", std::to_string(p.ep), "expert parallelism needs an MoE model");
    }
    if (m.moe->experts % p.ep != 0) {
      reject(s, "parallelism.ep", std::to_string(p.ep),
             fmt::format("must divide the number of experts ({})", m.moe->experts));
    }
    if (!p.experts_split_tokens() && (p.dp * p.cp) % p.ep != 0) {
      reject(s, "parallelism.ep", std::to_string(p.ep),
             fmt::format("must divide dp*cp = {}: expert-parallel ranks are carved out of the "
                         "data-parallel ranks",
                         p.dp * p.cp));
    }
    if (p.experts_split_tokens() && (p.tp * p.dp * p.cp) % p.ep != 0) {
      reject(s, "parallelism.ep", std::to_string(p.ep),
             fmt::format("must divide tp*dp*cp = {}: with expert_tp 1 the expert-parallel ranks "
                         "are carved out of the tensor- and data-parallel ranks",
                         p.tp * p.dp * p.cp));
    }
  }
}

}  // namespace

// parallelism.rank_order tp-cp-pp-dp is modelled for dense layers under Megatron's own
// data parallelism: the expert groups (Megatron's tp-cp-ep-pp-dp expert order), ZeRO-3 /
// FSDP's in-node groups and DualPipe's mirrored stages keep the default numbering.
void check_rank_order(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  if (p.rank_order != ParallelismSpec::RankOrder::tp_cp_pp_dp) return;
  const char* why = p.ep > 1                                         ? "expert parallelism (ep > 1)"
                    : p.zero_stage >= 3                              ? "ZeRO-3 / FSDP"
                    : p.schedule == PipelineSchedule::dualpipe       ? "the dualpipe schedule"
                    : p.pipeline_engine == PipelineEngine::deepspeed ? "pipeline_engine deepspeed"
                                                                     : nullptr;
  if (why) {
    reject(s, "parallelism.rank_order", to_string(p.rank_order),
           fmt::format("is modelled for Megatron's dense layers with zero_stage 0-2 and its "
                       "own pipeline schedules; not with {}",
                       why));
  }
}

// Fills in the parallelism defaults (dp, schedule, ZeRO stage) and checks the split against
// the cluster and, for transformers, the model. The checks run in this order, so the first
// error a bad file reports does not change.
void complete_parallelism(Scenario& s) {
  complete_degrees(s);
  complete_pipeline_layout(s);
  complete_schedule(s);
  complete_zero_stage(s);
  check_schedule_preconditions(s);
  check_sharding(s);
  check_rank_order(s);
  if (!s.model.is_transformer()) return;
  check_tensor_split(s);
  check_pipeline_split(s);
  check_context_and_expert_split(s);
}

}  // namespace orrery::validate_detail
