// The training: section of an imported scenario (scenario/import_common.h): the stack's
// mechanisms the arguments switch, precision and the fp8/fp4 recipes, recompute, the
// precision-aware optimizer, offload and the overlaps, with Megatron-LM's defaults and
// checks at NVIDIA/Megatron-LM d98e8a64 (megatron/training/arguments.py,
// megatron/core/transformer/transformer_config.py).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>

#include "scenario/import_common.h"
#include "scenario/spec.h"

namespace orrery::detail {

namespace {

// training.fp8 from Megatron-Core's recipe arguments (TransformerConfig in
// megatron/core/transformer/transformer_config.py at NVIDIA/Megatron-LM d98e8a64: fp8_recipe
// "delayed" by default, fp8_amax_history_len 1, first_last_layers_bf16 with
// num_layers_at_start/end_in_bf16 1; DistributedDataParallelConfig.fp8_param_gather), as a
// "fp8: {...}  # sources" line. --fp8-param-gather is Megatron's one switch for fp8 weights
// and their gather: per-tensor recipes gather them in fp8 (communication.param_allgather);
// MXFP8 keeps them as MXFP8 tensors and gathers bf16 through the gradient buffer (weights:
// fp8); arguments.py allows it only with the distributed optimizer or an FSDP.
std::string fp8_section(const ImportSettings& a) {
  std::vector<std::string> keys = {"format: " + a.text("--fp8-format")};
  std::vector<std::string> from = {a.source("--fp8-format", "--fp8-format")};
  const std::string recipe = a.has("--fp8-recipe") ? a.text("--fp8-recipe") : "delayed";
  static const std::map<std::string, std::string> kScaling = {{"delayed", "delayed"},
                                                              {"tensorwise", "current"},
                                                              {"mxfp8", "mxfp8"},
                                                              {"blockwise", "block"}};
  const auto scaling = kScaling.find(recipe);
  if (scaling == kScaling.end()) {
    a.refuse("--fp8-recipe",
             "orrery models delayed, tensorwise, mxfp8 and blockwise (a custom "
             "quantizer has no form here)");
  }
  keys.push_back("scaling: " + scaling->second);
  from.push_back(a.has("--fp8-recipe") ? a.source("--fp8-recipe", "--fp8-recipe " + recipe)
                                       : a.absent("--fp8-recipe", "default fp8_recipe delayed"));
  if (recipe == "delayed") {
    keys.push_back(fmt::format("amax_history: {}", a.whole("--fp8-amax-history-len", 1)));
    from.push_back(a.has("--fp8-amax-history-len")
                       ? a.source("--fp8-amax-history-len", "--fp8-amax-history-len")
                       : "default fp8_amax_history_len 1");
  }
  if (a.flag("--first-last-layers-bf16") && recipe == "delayed") {
    // transformer_config.py at d98e8a64: "Delayed scaling does not support first / last
    // layer in BF16".
    a.refuse("--first-last-layers-bf16",
             "Megatron-Core keeps no bf16 layers under delayed scaling (give --fp8-recipe)");
  }
  if (a.flag("--first-last-layers-bf16")) {
    keys.push_back(fmt::format("bf16_layers: {{first: {}, last: {}}}",
                               a.whole("--num-layers-at-start-in-bf16", 1),
                               a.whole("--num-layers-at-end-in-bf16", 1)));
    std::string layers = a.label("--first-last-layers-bf16");
    for (const char* n : {"--num-layers-at-start-in-bf16", "--num-layers-at-end-in-bf16"})
      if (a.has(n)) layers += " " + a.label(n);
    from.push_back(layers);
  }
  if (a.flag("--fp8-param-gather")) {
    const bool megatron_fsdp = a.flag("--use-megatron-fsdp");
    if (!a.flag("--use-distributed-optimizer") && !megatron_fsdp) {
      a.refuse("--fp8-param-gather",
               "Megatron-LM takes it only with the distributed optimizer or an FSDP "
               "(--use-distributed-optimizer or --use-megatron-fsdp here)");
    }
    // Megatron-FSDP turns the reuse off (arguments.py at d98e8a64), and orrery keeps MXFP8
    // weights in fp8 through Megatron-Core's own gradient buffer only.
    if (recipe == "mxfp8" && megatron_fsdp) {
      a.refuse("--fp8-param-gather",
               "orrery keeps MXFP8 weights in fp8 under the distributed optimizer only "
               "(Megatron-FSDP turns --reuse-grad-buf-for-mxfp8-param-ag off)");
    }
    // Megatron-Bridge sets the reuse with MXFP8 parameter gathers, the layout orrery models;
    // without it Megatron-Core keeps another buffer (optimizer_config.py at d98e8a64 warns of
    // "significant amount additional GPU memory").
    if (recipe == "mxfp8" && !a.flag("--reuse-grad-buf-for-mxfp8-param-ag")) {
      a.refuse("--fp8-param-gather",
               "orrery models MXFP8 parameter gathers through the gradient buffer: give "
               "--reuse-grad-buf-for-mxfp8-param-ag with it");
    }
    if (recipe == "blockwise") {
      a.refuse("--fp8-param-gather",
               "orrery has no form for blockwise fp8 weights (write training.fp8 by hand, "
               "without it)");
    }
    keys.push_back(recipe == "mxfp8" ? "weights: fp8" : "communication: {param_allgather: fp8}");
    from.push_back(recipe == "mxfp8" && a.flag("--reuse-grad-buf-for-mxfp8-param-ag")
                       ? a.label("--fp8-param-gather") + " with " +
                             a.label("--reuse-grad-buf-for-mxfp8-param-ag")
                       : a.label("--fp8-param-gather"));
  }
  if (a.flag("--reuse-grad-buf-for-mxfp8-param-ag") && !a.flag("--fp8-param-gather")) {
    // distributed_data_parallel_config.py at d98e8a64 asserts fp8_param_gather with it.
    a.refuse("--reuse-grad-buf-for-mxfp8-param-ag",
             "Megatron-Core takes it only with --fp8-param-gather");
  }
  return flow_line("fp8", keys, from) + "\n";
}

}  // namespace

std::string write_training_section(const ImportSettings& a, const ImportSource& source,
                                   const ImportedModel& model) {
  std::string t;
  // Precision, recompute and overlaps.
  // Megatron-Core's --attention-backend (AttnBackend, megatron/core/transformer/enums.py at
  // d98e8a64; auto, the default, leaves the choice to Transformer Engine, as orrery's
  // default does): flash and fused force TE's FlashAttention or cuDNN backend, unfused and
  // local the unfused softmax path.
  // training.stack's mechanisms the arguments set, over the megatron-core preset.
  std::vector<std::string> stack, stack_from;
  std::string stack_argument;  // the first argument that set one
  auto mechanism = [&](const char* argument, std::string entry, std::string from) {
    if (stack_argument.empty()) stack_argument = argument;
    stack.push_back(std::move(entry));
    stack_from.push_back(std::move(from));
  };
  if (a.has("--attention-backend")) {
    // A log's arguments header prints the enum ("AttnBackend.auto").
    std::string b = a.text("--attention-backend");
    if (b.rfind("AttnBackend.", 0) == 0) b = b.substr(std::string("AttnBackend.").size());
    const std::string from = a.source("--attention-backend", "--attention-backend " + b);
    if (b == "flash" || b == "fused") {
      mechanism("--attention-backend", b == "flash" ? "attention: flash2" : "attention: cudnn",
                from);
    } else if (b == "unfused" || b == "local") {
      t += scenario_line("flash_attention", "false", from);
    } else if (b != "auto") {
      a.refuse("--attention-backend", "Megatron-LM takes flash, fused, unfused, local or auto");
    }
  }
  // The fusions Megatron-LM turns off by name (arguments.py at d98e8a64). Unfused RoPE is
  // Megatron-Core's _apply_rotary_pos_emb_bshd, which rotates by _rotate_half
  // (megatron/core/models/common/embeddings/rope_utils.py); each switch counts only where
  // its op runs.
  if (a.flag("--no-rope-fusion") && model.rope) {
    mechanism("--no-rope-fusion", "rope: rotate_half", a.label("--no-rope-fusion"));
  }
  // A GeLU without bias is one kernel fused or not, and validate_args clears
  // bias_gelu_fusion for it (arguments.py at d98e8a64), so a log's False says nothing.
  const char* activation_switch =
      model.swiglu ? "--no-bias-swiglu-fusion" : "--no-bias-gelu-fusion";
  if (a.flag(activation_switch) && (model.swiglu || model.bias)) {
    mechanism(activation_switch, "activation_fusion: false", a.label(activation_switch));
  }
  // Without the fused wgrad-into-main_grad GEMM the weight gradient is added to main_grad
  // by the parameter's hook (megatron/core/distributed/distributed_data_parallel.py).
  // FSDP2 asks for the switch and accumulates its gradients itself.
  if (a.flag("--no-gradient-accumulation-fusion") && !a.flag("--use-torch-fsdp2")) {
    mechanism("--no-gradient-accumulation-fusion", "gradient_accumulation: hook",
              a.label("--no-gradient-accumulation-fusion"));
  }
  if (!source.stack.empty() && !stack.empty())
    a.refuse(stack_argument, "not with a stack preset named by the source");
  if (!source.stack.empty()) t += "  stack: " + source.stack + "\n";
  if (!stack.empty()) t += "  " + flow_line("stack", stack, stack_from) + "\n";
  if (!source.grad_buckets.empty()) t += "  grad_buckets: " + source.grad_buckets + "\n";
  if (a.flag("--bf16") && a.flag("--fp16")) a.refuse("--fp16", "given with --bf16");
  std::string precision = "fp32",
              precision_source = a.absent("--bf16", "neither --bf16 nor --fp16");
  if (a.flag("--bf16")) precision = "bf16", precision_source = a.label("--bf16");
  if (a.flag("--fp16")) precision = "fp16", precision_source = a.label("--fp16");
  // The 16-bit type under fp8 and fp4: Megatron-LM's parameters take --bf16 or --fp16 and
  // stay fp32 without either (params_dtype, arguments.py at d98e8a64), which orrery's fp8
  // and fp4 precisions (16-bit weights) do not model.
  const std::string sixteen = precision;
  auto needs_sixteen_bits = [&](const char* argument) {
    if (source.megatron_defaults && sixteen == "fp32") {
      a.refuse(argument,
               "given without --bf16 or --fp16: Megatron-LM keeps fp32 parameters then, and "
               "orrery's low-precision training keeps 16-bit ones");
    }
  };
  std::string fp8;
  if (a.has("--fp8-format")) {
    const std::string& f = a.text("--fp8-format");
    if (f != "hybrid" && f != "e4m3") a.refuse("--fp8-format", "Megatron-LM takes e4m3 or hybrid");
    needs_sixteen_bits("--fp8-format");
    precision = "fp8", precision_source = a.source("--fp8-format", "--fp8-format " + f);
    fp8 = fp8_section(a);
  }
  std::string fp4;
  if (a.has("--fp4-format")) {
    // Megatron-Core's FP4 (transformer_config.py at d98e8a64: fp4 e2m1 behind
    // --fp4-format, fp4_recipe nvfp4 by default, the bf16 layers as under fp8).
    if (!fp8.empty()) a.refuse("--fp4-format", "given with --fp8-format: Megatron-Core runs one");
    if (a.text("--fp4-format") != "e2m1") a.refuse("--fp4-format", "Megatron-LM takes e2m1");
    needs_sixteen_bits("--fp4-format");
    const std::string recipe = a.has("--fp4-recipe") ? a.text("--fp4-recipe") : "nvfp4";
    if (recipe != "nvfp4") {
      a.refuse("--fp4-recipe", "orrery models the nvfp4 recipe (a custom one has no form here)");
    }
    precision = "fp4", precision_source = a.source("--fp4-format", "--fp4-format e2m1");
    std::vector<std::string> keys = {"format: nvfp4"};
    std::vector<std::string> from = {
        given_or(a, "--fp4-recipe", "default of " + a.label("--fp4-recipe") + " nvfp4")};
    if (a.flag("--first-last-layers-bf16")) {
      keys.push_back(fmt::format("bf16_layers: {{first: {}, last: {}}}",
                                 a.whole("--num-layers-at-start-in-bf16", 1),
                                 a.whole("--num-layers-at-end-in-bf16", 1)));
      from.push_back(a.label("--first-last-layers-bf16"));
    }
    fp4 = flow_line("fp4", keys, from) + "\n";
  }
  t += scenario_line("precision", precision, precision_source);
  if (!fp8.empty()) t += "  " + fp8;
  if (!fp4.empty()) t += "  " + fp4;
  // The gradient buffer's type (arguments.py at d98e8a64, lines 1195-1216): under --bf16
  // fp32 (accumulate_allreduce_grads_in_fp32 is set for it) unless --grad-reduce-in-bf16;
  // under --fp16 the parameters' fp16 unless --accumulate-allreduce-grads-in-fp32
  // (param_and_grad_buffer.py takes the parameter's dtype). fp32, orrery's default, is not
  // written.
  // Under --use-torch-fsdp2 Megatron-LM calls fully_shard with no mixed-precision policy
  // (TorchFullyShardedDataParallel at d98e8a64 passes the mesh and reshard_after_forward
  // only), so gradients are reduce-scattered in the parameters' 16-bit type whatever the
  // flags say.
  if (a.flag("--use-torch-fsdp2") && (sixteen == "bf16" || sixteen == "fp16")) {
    t += scenario_line("gradient_dtype", sixteen,
                       a.label("--use-torch-fsdp2") + ": fully_shard without a mixed-precision "
                                                      "policy reduces in the parameters' type");
  } else if (sixteen == "bf16" && a.flag("--grad-reduce-in-bf16")) {
    t += scenario_line("gradient_dtype", "bf16", a.label("--grad-reduce-in-bf16"));
  } else if (source.megatron_defaults && sixteen == "fp16" &&
             !a.flag("--accumulate-allreduce-grads-in-fp32")) {
    t += scenario_line("gradient_dtype", "fp16",
                       a.label("--fp16") + ", " +
                           a.absent("--accumulate-allreduce-grads-in-fp32",
                                    "no " + a.label("--accumulate-allreduce-grads-in-fp32")));
  }
  std::string recompute = "none", recompute_source = "no " + a.label("--recompute-granularity");
  if (a.flag("--recompute-activations")) {
    // arguments.py at d98e8a64 (lines 607-608): it sets recompute_granularity to selective,
    // over any --recompute-granularity given with it.
    recompute = "selective", recompute_source = a.label("--recompute-activations");
  } else if (a.has("--recompute-granularity")) {
    const std::string& g = a.text("--recompute-granularity");
    const std::string from = a.source("--recompute-granularity", "--recompute-granularity " + g);
    if (g == "selective") {
      recompute = "selective", recompute_source = from;
    } else if (g == "full") {
      // TransformerConfig at d98e8a64 (transformer_config.py, __post_init__) raises for full
      // recompute without a method or a layer count.
      if (source.megatron_defaults) {
        for (const char* needed : {"--recompute-method", "--recompute-num-layers"}) {
          if (!a.has(needed)) {
            a.refuse("--recompute-granularity",
                     fmt::format("full without {}: Megatron-Core raises for it (orrery's full "
                                 "recompute is --recompute-method uniform "
                                 "--recompute-num-layers 1)",
                                 a.label(needed)));
          }
        }
      }
      if (a.has("--recompute-method") && a.text("--recompute-method") != "uniform") {
        a.refuse("--recompute-method", "orrery's full recompute is every layer (uniform, 1 layer)");
      }
      if (a.whole("--recompute-num-layers", 1) != 1) {
        a.refuse("--recompute-num-layers",
                 "orrery's full recompute is every layer (uniform, 1 layer)");
      }
      recompute = "full", recompute_source = from;
    } else {
      a.refuse("--recompute-granularity", "Megatron-LM takes full or selective");
    }
  }
  // arguments.py at d98e8a64 (lines 1425-1428) asserts no method with selective recompute.
  if (source.megatron_defaults && recompute == "selective" && a.has("--recompute-method")) {
    a.refuse("--recompute-method", "given with selective recompute: Megatron-LM asserts none");
  }
  t += scenario_line("recompute", recompute, recompute_source);
  // The modules selective recompute reruns (transformer_config.py at d98e8a64: default
  // ["core_attn"]; read only under selective).
  if (recompute == "selective" && a.has("--recompute-modules")) {
    const std::vector<std::string> modules = words_of(a.text("--recompute-modules"));
    std::vector<std::string> names;
    for (const RecomputeModule r : kRecomputeModuleOrder)
      names.emplace_back(recompute_module_name(r));
    for (const std::string& name : modules) {
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        a.refuse("--recompute-modules", fmt::format("orrery models the modules {} ({} is not one)",
                                                    fmt::join(names, ", "), name));
      }
      // transformer_config.py at d98e8a64 (lines 1964-1967) raises for it without grouped
      // GEMM experts.
      if (name == "moe_act" && !a.flag("--moe-grouped-gemm")) {
        a.refuse("--recompute-modules",
                 "Megatron-Core recomputes moe_act only with " + a.label("--moe-grouped-gemm"));
      }
    }
    t += scenario_line("recompute_modules", fmt::format("[{}]", fmt::join(modules, ", ")),
                       a.label("--recompute-modules"));
  }
  // Megatron-Core's precision-aware optimizer (--use-precision-aware-optimizer with
  // --exp-avg-dtype, --exp-avg-sq-dtype, --main-params-dtype, read only with it; arguments.py
  // at d98e8a64, default fp32 each): bf16 moments are training.optimizer_state_dtype bf16,
  // fp16 main parameters training.main_params_dtype fp16. A log header prints the dtypes
  // as torch types.
  auto dtype = [&](const char* name) {
    std::string d = a.has(name) ? a.text(name) : "fp32";
    static const std::map<std::string, std::string> kTorch = {{"torch.float32", "fp32"},
                                                              {"torch.bfloat16", "bf16"},
                                                              {"torch.float16", "fp16"},
                                                              {"torch.uint8", "fp8"}};
    if (const auto it = kTorch.find(d); it != kTorch.end()) d = it->second;
    return d;
  };
  const std::string m1 = dtype("--exp-avg-dtype"), m2 = dtype("--exp-avg-sq-dtype"),
                    main = dtype("--main-params-dtype");
  if (!a.flag("--use-precision-aware-optimizer")) {
    for (const char* name : {"--exp-avg-dtype", "--exp-avg-sq-dtype", "--main-params-dtype"}) {
      if (dtype(name) != "fp32") {
        a.refuse(name, "Megatron-LM reads it only with --use-precision-aware-optimizer");
      }
    }
  } else {
    if (m1 != m2 || (m1 != "fp32" && m1 != "bf16")) {
      a.refuse(m1 != "fp32" && m1 != "bf16" ? "--exp-avg-dtype" : "--exp-avg-sq-dtype",
               "orrery keeps both Adam moments in one dtype, fp32 or bf16");
    }
    if (main != "fp32" && main != "fp16") {
      a.refuse("--main-params-dtype", "Megatron-LM takes fp32 or fp16");
    }
    if (m1 == "bf16") {
      t += scenario_line("optimizer_state_dtype", "bf16",
                         a.label("--use-precision-aware-optimizer") + ", " +
                             a.label("--exp-avg-dtype") + ", " + a.label("--exp-avg-sq-dtype"));
    }
    if (main == "fp16") {
      t += scenario_line(
          "main_params_dtype", "fp16",
          a.label("--use-precision-aware-optimizer") + ", " + a.label("--main-params-dtype"));
    }
  }
  // Offload (arguments.py at d98e8a64): the hybrid device optimizer's share and overlap,
  // and the activations of the first layers (--cpu-offloading-num-layers above 0 turns
  // cpu_offloading on).
  if (a.flag("--optimizer-cpu-offload")) {
    if (!a.flag("--use-precision-aware-optimizer")) {
      // arguments.py at d98e8a64 asserts it: the hybrid device optimizer reuses its path.
      a.refuse("--optimizer-cpu-offload",
               "Megatron-LM takes it only with --use-precision-aware-optimizer");
    }
    std::vector<std::string> keys = {
        fmt::format("fraction: {:g}", a.number("--optimizer-offload-fraction", 1.0))};
    std::vector<std::string> from = {
        a.label("--optimizer-cpu-offload") + " " +
        given_or(a, "--optimizer-offload-fraction",
                 "(default " + a.label("--optimizer-offload-fraction") + " 1.0)")};
    if (a.flag("--overlap-cpu-optimizer-d2h-h2d")) {
      keys.emplace_back("overlap: true");
      from.push_back(a.label("--overlap-cpu-optimizer-d2h-h2d"));
    }
    t += "  " + flow_line("optimizer_offload", keys, from) + "\n";
  }
  if (const std::int64_t n = a.count("--cpu-offloading-num-layers", 0); n > 0) {
    t += "  " +
         flow_line("activation_offload", {fmt::format("layers: {}", n)},
                   {a.label("--cpu-offloading-num-layers")}) +
         "\n";
  }
  // --overlap-grad-reduce and --overlap-param-gather are off in Megatron-LM unless given
  // (store_true, arguments.py at d98e8a64; NeMo's defaults: import_nemo.cpp) and on in
  // orrery's defaults, so an absent one is written false, where Megatron-LM reads it: its
  // DDP and distributed optimizer, not PyTorch FSDP2 (which overlaps on its own) nor
  // Megatron-FSDP's sharded gradients, whose reduce-scatter it overlaps always and, with the
  // parameters sharded too, their gathers (MegatronFSDP.__init__, megatron/core/distributed/
  // fsdp/src/megatron_fsdp/megatron_fsdp.py at d98e8a64).
  const std::string strategy = megatron_fsdp_strategy(a);
  const bool megatron_fsdp = a.flag("--use-megatron-fsdp");
  const bool fsdp_reduces = a.flag("--use-torch-fsdp2") ||
                            (megatron_fsdp && (strategy == "optim_grads" ||
                                               strategy == "optim_grads_params"));
  const bool fsdp_gathers = a.flag("--use-torch-fsdp2") ||
                            (megatron_fsdp && strategy == "optim_grads_params");
  // arguments.py at d98e8a64 (line 1442) asserts sequence parallelism with
  // --tp-comm-overlap, and clears sequence parallelism at tp 1 (line 1433).
  if (source.megatron_defaults && a.flag("--tp-comm-overlap") &&
      (!a.flag("--sequence-parallel") || model.tp == 1)) {
    a.refuse("--tp-comm-overlap",
             "needs --sequence-parallel at tp above 1: Megatron-LM asserts sequence "
             "parallelism with it");
  }
  // Each switch, its key, and whether an absent one is written false (the source's default
  // is off where orrery's is on).
  const struct {
    const char* argument;
    const char* key;
    bool off_when_absent;
  } overlaps[] = {
      {"--overlap-grad-reduce", "overlap_grad_reduce",
       source.grad_reduce_off_by_default && !fsdp_reduces},
      {"--overlap-param-gather", "overlap_param_gather",
       source.param_gather_off_by_default && !fsdp_gathers},
      {"--overlap-param-gather-with-optimizer-step", "overlap_param_gather_with_optimizer_step",
       false},
      {"--tp-comm-overlap", "tp_comm_overlap", false},
      {"--overlap-p2p-communication", "overlap_p2p", source.p2p_overlap_off_by_default},
      {"--cross-entropy-loss-fusion", "cross_entropy_fusion",
       source.cross_entropy_fusion_off_by_default},
  };
  for (const auto& o : overlaps) {
    if (a.flag(o.argument)) {
      t += scenario_line(o.key, "true", a.label(o.argument));
    } else if (o.off_when_absent) {
      t += scenario_line(o.key, "false", a.absent(o.argument, "no " + a.label(o.argument)));
    }
  }
  // Megatron-Core's DDP bucket (--ddp-bucket-size, parameters a bucket) and the optimizer
  // (--optimizer adam, the default, or sgd; arguments.py at d98e8a64).
  if (a.has("--ddp-bucket-size")) {
    t += scenario_line("grad_bucket_params", std::to_string(a.whole("--ddp-bucket-size")),
                       a.label("--ddp-bucket-size"));
  }
  if (a.has("--optimizer")) {
    const std::string& o = a.text("--optimizer");
    if (o == "sgd") {
      t += scenario_line("optimizer", "sgd", a.label("--optimizer"));
    } else if (o != "adam") {
      a.refuse("--optimizer", "orrery models Megatron-LM's adam and sgd");
    }
  }
  // --no-overlap-p2p-communication (overlap_p2p_comm False): the interleaved schedule's
  // transfers hold the sender's compute.
  if (a.flag("--no-overlap-p2p-communication")) {
    if (a.flag("--overlap-p2p-communication")) {
      a.refuse("--no-overlap-p2p-communication", "given with --overlap-p2p-communication");
    }
    t += scenario_line("overlap_p2p", "false", a.label("--no-overlap-p2p-communication"));
  }
  return t;
}

}  // namespace orrery::detail
