// Megatron-LM's command-line arguments for a scenario's split (sweep.h,
// megatron_arguments): what `orrery sweep` prints beside its best candidate, with the
// settings no Megatron-LM flag expresses named after them.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "sweep/sweep.h"

namespace orrery {

std::string megatron_arguments(const Scenario& s) {
  const ParallelismSpec& p = s.parallelism;
  std::vector<std::string> missing;  // settings no Megatron-LM flag expresses
  std::string out = fmt::format("--tensor-model-parallel-size {} --pipeline-model-parallel-size {}",
                                p.tp, p.pp);
  if (p.rank_order == ParallelismSpec::RankOrder::tp_cp_pp_dp) out += " --use-tp-pp-dp-mapping";
  // The layout as Megatron-LM's arguments spell it (megatron/training/arguments.py at
  // d98e8a64): a layout string alone; uneven first/last stages need the virtual stages
  // per rank rather than the layers per virtual stage.
  const bool uneven = p.first_stage_layers || p.last_stage_layers;
  if (!p.pipeline_layout.empty()) {
    out += fmt::format(" --pipeline-model-parallel-layout \"{}\"", p.pipeline_layout);
  } else {
    if (p.first_stage_layers)
      out += fmt::format(" --decoder-first-pipeline-num-layers {}", *p.first_stage_layers);
    if (p.last_stage_layers)
      out += fmt::format(" --decoder-last-pipeline-num-layers {}", *p.last_stage_layers);
    if (p.account_for_embedding) out += " --account-for-embedding-in-pipeline-split";
    if (p.account_for_loss) out += " --account-for-loss-in-pipeline-split";
    if (p.virtual_pipeline_stages > 1 && uneven) {
      out += fmt::format(" --num-virtual-stages-per-pipeline-rank {}", p.virtual_pipeline_stages);
    } else if (p.virtual_pipeline_stages > 1) {
      const int accounted = (p.account_for_embedding ? 1 : 0) + (p.account_for_loss ? 1 : 0);
      out += fmt::format(" --num-layers-per-virtual-pipeline-stage {}",
                         (s.model.layers + accounted) / (p.pp * p.virtual_pipeline_stages));
    }
  }
  // Under flexible groups with fewer micro-batches than pp, the group is all of them, which
  // Megatron-LM's flag would refuse (the note below says so).
  const bool flexible = p.one_short_group();
  if (p.virtual_pipeline_stages > 1 && p.microbatch_group_size != p.pp && !flexible) {
    out += fmt::format(" --microbatch-group-size-per-virtual-pipeline-stage {}",
                       p.microbatch_group_size);
  }
  if (p.cp > 1) out += fmt::format(" --context-parallel-size {}", p.cp);
  // --cp-comm-type (arguments.py at d98e8a64, default p2p, Transformer Engine's ring). The
  // value goes to Transformer Engine as written, which knows "all_gather" (its
  // context_parallel.py; transformer_config.py's cp_comm_type names the same), not the
  // "allgather" of arguments.py's help text.
  if (p.cp > 1 && p.cp_comm == ParallelismSpec::CpComm::all_gather)
    out += " --cp-comm-type all_gather";
  if (p.ep > 1) out += fmt::format(" --expert-model-parallel-size {}", p.ep);
  if (p.experts_split_tokens()) out += fmt::format(" --expert-tensor-parallel-size {}", p.etp());
  if (p.moe_a2a_overlap) out += " --overlap-moe-expert-parallel-comm";
  // MoE routing and exchange, as megatron/core/transformer/moe/README.md at d98e8a64 names
  // them: the naive exchange is the alltoall dispatcher, the deduplicated one the flex
  // dispatcher with DeepEP. A node limit is router groups of one node each, which needs
  // the group's node count; it is left to the user.
  if (s.model.moe) {
    const MoeSpec& moe = *s.model.moe;
    // Megatron-Core's default dispatcher, allgather, is neither exchange (and refuses the
    // shared-expert overlap), so one is always named; under auto (the faster of the two,
    // picked per exchange) the all-to-all dispatcher.
    const bool flex = p.ep > 1 && p.ep_alltoall == ParallelismSpec::Alltoall::hierarchical;
    // The MoE kernels orrery times (model/transformer.cpp): grouped experts, fused
    // permutation and router; Megatron-Core's defaults leave each off.
    out += " --moe-grouped-gemm --moe-permute-fusion --moe-router-fusion";
    if (!flex) out += " --moe-token-dispatcher-type alltoall";
    if (p.ep > 1 && p.ep_alltoall == ParallelismSpec::Alltoall::automatic)
      missing.emplace_back("ep_alltoall auto's exchange picked per collective (alltoall given)");
    if (flex)
      out += fmt::format(" --moe-token-dispatcher-type flex --moe-flex-dispatcher-backend {}",
                         to_string(p.ep_backend));
    if (moe.router_groups > 0)
      out += fmt::format(" --moe-router-num-groups {} --moe-router-group-topk {}",
                         moe.router_groups, moe.router_group_topk);
    if (moe.capacity_factor)
      out += fmt::format(" --moe-expert-capacity-factor {}", *moe.capacity_factor);
    // The flex dispatcher's deepep backend refuses the padding (transformer_config.py).
    if (moe.pad_to_capacity && flex && p.ep_backend == ParallelismSpec::EpBackend::deepep) {
      missing.emplace_back("capacity padding under DeepEP (Megatron-Core refuses it)");
    } else if (moe.pad_to_capacity) {
      out += " --moe-pad-expert-input-to-capacity";
    }
    if (moe.shared_expert_overlap) out += " --moe-shared-expert-overlap";
    if (moe.node_limit > 0)
      missing.emplace_back(fmt::format("the node limit of {} (router groups of one node each)",
                                       moe.node_limit));
    // Aux-loss-free balancing: no aux loss, the expert bias instead (README's table of
    // load-balancing strategies).
    // The auxiliary loss runs only with a coefficient above 0 (router.py
    // is_aux_loss_enabled; the default is 0.0): arguments.py's help recommends 1e-2 to start.
    // The expert bias needs sigmoid (or sqrtsoftplus) scores (transformer_config.py).
    if (!moe.aux_loss) {
      out += " --moe-router-load-balancing-type none --moe-router-enable-expert-bias "
             "--moe-router-score-function sigmoid";
    } else {
      out += " --moe-router-load-balancing-type aux_loss --moe-aux-loss-coeff 1e-2";
    }
  }
  // Megatron-LM pads the vocabulary to a multiple of --make-vocab-size-divisible-by (128)
  // x tp (megatron/core/tokenizers/utils/build_tokenizer.py at d98e8a64); orrery times the
  // scenario's vocabulary as it is, so the divisor that keeps it unpadded is given.
  if (s.model.is_transformer() && s.model.vocab > 0 && s.model.vocab % (128 * p.tp) != 0) {
    int divisor = 64;
    while (divisor > 1 && s.model.vocab % (divisor * p.tp) != 0) divisor /= 2;
    if (s.model.vocab % (divisor * p.tp) == 0) {
      out += fmt::format(" --make-vocab-size-divisible-by {}", divisor);
    } else {
      missing.emplace_back(fmt::format("the vocabulary of {} unpadded (Megatron-LM pads it to a "
                                       "multiple of tp {})",
                                       s.model.vocab, p.tp));
    }
  }
  if (p.sequence_parallel) out += " --sequence-parallel";
  // Megatron-LM runs 1F1B, or the interleaved schedule with virtual stages; GPipe, ZB-H1 and
  // DualPipe have no flag there (arguments.py at d98e8a64).
  if (p.pp > 1 && p.schedule != PipelineSchedule::one_f_one_b &&
      p.schedule != PipelineSchedule::interleaved_1f1b) {
    missing.emplace_back(fmt::format("the {} schedule", to_string(p.schedule)));
  }
  // Interleaving without the transfer overlap needs pp above 2 (arguments.py lines
  // 1000-1009 at d98e8a64: no two sends and receives between the same two ranks a batch).
  if (p.schedule == PipelineSchedule::interleaved_1f1b && !s.training.overlap_p2p) {
    if (p.pp > 2) {
      out += " --no-overlap-p2p-communication";
    } else {
      missing.emplace_back("interleaving without the pipeline-transfer overlap at pp 2 "
                           "(Megatron-LM asks for pp above 2 for it)");
    }
  }
  out += fmt::format(" --micro-batch-size {} --global-batch-size {}", p.microbatch,
                     p.global_batch);
  switch (s.training.recompute) {
    case Recompute::none: break;
    case Recompute::selective:
      out += " --recompute-granularity selective";
      if (s.training.recompute_modules != kRecomputeCoreAttn) {
        // Megatron-LM takes the modules space-separated.
        const std::string listed = describe_recompute_modules(s.training.recompute_modules);
        std::string names;
        for (std::size_t k = 0; k < listed.size(); ++k) {
          if (listed.compare(k, 2, ", ") == 0) {
            names += ' ';
            ++k;
          } else {
            names += listed[k];
          }
        }
        out += " --recompute-modules " + names;
      }
      break;
    case Recompute::full:
      // Every layer recomputed from its input (the "uniform, 1 layer" form of full).
      out += " --recompute-granularity full --recompute-method uniform --recompute-num-layers 1";
      break;
  }
  if (s.training.cross_entropy_fusion) out += " --cross-entropy-loss-fusion";
  // validate_args refuses the fusion with --cross-entropy-fusion-impl te (arguments.py lines
  // 1697-1702 at d98e8a64, "disabled due to stability issues"): the native one is given.
  if (s.training.te_cross_entropy()) {
    missing.emplace_back(
        "Transformer Engine's fused cross-entropy (Megatron-LM refuses it; the native fusion "
        "given)");
  }
  // The attention kernel (--attention-backend, AttnBackend at d98e8a64; auto, the default,
  // leaves it to Transformer Engine, which runs cuDNN's where the GPU preset measured it and
  // FlashAttention-2 elsewhere: scenario/validate_stack.cpp): unfused for no fused kernel,
  // flash for FlashAttention-2 where auto would run cuDNN's.
  if (s.model.is_transformer()) {
    const auto kernel = s.training.stack.attention;
    if (!s.training.flash_attention) {
      out += " --attention-backend unfused";
    } else if (kernel == StackSpec::AttentionKernel::flash2 &&
               s.cluster.gpu.cudnn_attention_efficiency) {
      out += " --attention-backend flash";
    } else if (kernel == StackSpec::AttentionKernel::flash1) {
      missing.emplace_back("the first FlashAttention (no Megatron-LM backend runs it)");
    }
  }
  // Another stack's kernels (element-wise chains, optimizer, buckets) than Megatron-Core's.
  if (s.training.stack.preset != StackSpec::Preset::megatron_core &&
      s.training.stack.preset != StackSpec::Preset::nemo) {
    missing.emplace_back(fmt::format("the {} training stack's kernels (Megatron-LM runs "
                                     "Megatron-Core's)",
                                     to_string(s.training.stack.preset)));
  }
  // training.stack's unfused kernels as Megatron-LM's switches (megatron/training/
  // arguments.py at NVIDIA/Megatron-LM d98e8a64: --no-rope-fusion, --no-bias-swiglu-fusion,
  // --no-bias-gelu-fusion).
  if (s.model.is_transformer() && s.model.position_embedding == PositionEmbedding::rope &&
      s.training.stack.rope != StackSpec::Rope::fused) {
    out += " --no-rope-fusion";
    // Megatron-Core's unfused RoPE rotates by _rotate_half (rope_utils.py).
    if (s.training.stack.rope != StackSpec::Rope::rotate_half) {
      missing.emplace_back(fmt::format("RoPE as {} (Megatron-Core's unfused form is rotate_half)",
                                       to_string(s.training.stack.rope)));
    }
  }
  if (s.model.is_transformer() && !s.training.stack.activation_fusion)
    out += s.model.activation == Activation::swiglu ? " --no-bias-swiglu-fusion"
                                                    : " --no-bias-gelu-fusion";
  // --no-gradient-accumulation-fusion (store_false, arguments.py at d98e8a64); autograd
  // accumulation is 2021 Megatron-LM's, which no current flag reproduces.
  // FSDP2 asks for it too (arguments.py asserts gradient_accumulation_fusion off).
  const bool fsdp2_line = p.zero_stage == 3 && p.torch_fsdp() && p.pp == 1 && p.ep == 1 &&
                          p.sharding != ParallelismSpec::Sharding::hybrid &&
                          s.training.precision != Precision::fp16 && !s.model.tied_embeddings;
  if (s.training.stack.gradient_accumulation == StackSpec::GradAccumulation::hook || fsdp2_line)
    out += " --no-gradient-accumulation-fusion";
  // Data-parallel sharding, checked against NVIDIA/Megatron-LM d98e8a64
  // (megatron/training/arguments.py; docs/user-guide/features/megatron_fsdp.md):
  //  ZeRO-1  --use-distributed-optimizer shards the optimizer state only; the gradient
  //          buffer stays whole (arguments.py:3156).
  //  ZeRO-2  no distributed-optimizer flag shards gradients; Megatron-FSDP's
  //          --data-parallel-sharding-strategy optim_grads does (arguments.py:3190,
  //          megatron_fsdp.md "ZeRO-2: optimizer state and gradients are sharded").
  //  ZeRO-3  optim_grads_params (megatron_fsdp.md "FSDP / ZeRO-3"); hybrid sharding as
  //          HSDP with --num-distributed-optimizer-instances = the replicas (its "DP-Outer
  //          size", megatron_fsdp.md table "Hybrid Data Parallelism Size").
  //  PyTorch FSDP  --use-torch-fsdp2, which arguments.py:1031-1047 refuses with pp > 1,
  //          ep > 1, fp16 or tied embeddings and which has no hybrid form there;
  //          --torch-fsdp2-no-reshard-after-forward keeps gathered weights (arguments.py:3218).
  // What none of these expresses is named on the line instead of a flag (`missing`).
  // Megatron-FSDP asserts its own checkpoint format (arguments.py at d98e8a64).
  auto megatron_fsdp = [&](const char* strategy) {
    out += fmt::format(
        " --use-megatron-fsdp --data-parallel-sharding-strategy {} --ckpt-format fsdp_dtensor",
        strategy);
  };
  if (p.zero_stage == 1) {
    out += " --use-distributed-optimizer";
  } else if (p.zero_stage == 2) {
    megatron_fsdp("optim_grads");
  } else if (p.zero_stage == 3) {
    // The implementation decides the flag: PyTorch FSDP (fsdp1/fsdp2) maps to Megatron-LM's
    // --use-torch-fsdp2 where it accepts the split, Megatron-FSDP to its own flags, and
    // DeepSpeed ZeRO-3, which Megatron-LM does not run, to Megatron-FSDP with a note.
    using Impl = ParallelismSpec::FsdpImpl;
    const bool hybrid = p.sharding == ParallelismSpec::Sharding::hybrid;
    if (fsdp2_line) {
      out += " --use-torch-fsdp2";
      if (p.fsdp_impl == Impl::fsdp1) {
        missing.emplace_back("FSDP1's flat parameters (Megatron-LM runs FSDP2)");
      }
      if (!p.reshard_after_forward) out += " --torch-fsdp2-no-reshard-after-forward";
      // One switch for every unit: an output unit kept otherwise (torchtitan's default,
      // reshard_output_after_forward) has no flag.
      if (p.reshard_output_after_forward != p.reshard_after_forward) {
        missing.emplace_back(fmt::format("reshard_output_after_forward {} beside "
                                         "reshard_after_forward {}",
                                         p.reshard_output_after_forward,
                                         p.reshard_after_forward));
      }
    } else {
      megatron_fsdp("optim_grads_params");
      if (hybrid) {
        out += fmt::format(" --num-distributed-optimizer-instances {}",
                           p.shard_group() / p.zero3_group(s.cluster.gpus_per_node));
      }
      if (p.torch_fsdp()) {
        missing.emplace_back(
            "PyTorch FSDP (Megatron-LM's --use-torch-fsdp2 refuses pp > 1, ep > 1, fp16, tied "
            "embeddings and hybrid sharding; Megatron-FSDP given instead)");
      } else if (p.fsdp_impl == Impl::deepspeed) {
        missing.emplace_back("DeepSpeed ZeRO-3 (Megatron-FSDP given instead)");
      }
      if (!p.reshard_after_forward) {
        missing.emplace_back("reshard_after_forward false under Megatron-FSDP");
      }
    }
  }
  // The overlaps orrery times, each off by default in Megatron-LM (arguments.py at d98e8a64:
  // --overlap-grad-reduce, --overlap-param-gather store_true; --tp-comm-overlap from
  // ModelParallelConfig, which needs --sequence-parallel). Under Megatron-FSDP (ZeRO-2/3)
  // its own DDP overlaps both; PyTorch FSDP has no such flags.
  const TrainingSpec& t = s.training;
  if (p.zero_stage <= 1) {
    if (t.overlap_grad_reduce) out += " --overlap-grad-reduce";
    // Asserted with the distributed optimizer and --overlap-grad-reduce (arguments.py lines
    // 1024-1028).
    const bool param_gather = t.overlap_param_gather && p.zero_stage == 1;
    if (param_gather && t.overlap_grad_reduce) {
      out += " --overlap-param-gather";
      // Asserted with --overlap-param-gather, interleaving and no distributed checkpoint
      // (use_dist_ckpt: any --ckpt-format but torch; lines 1066-1074).
      if (t.overlap_param_gather_with_optimizer_step)
        out += " --overlap-param-gather-with-optimizer-step --ckpt-format torch";
    } else if (param_gather) {
      missing.emplace_back(
          "the parameter gather overlapped without the gradient reduction overlapped "
          "(Megatron-LM asks for --overlap-grad-reduce with --overlap-param-gather)");
    }
    if (t.grad_bucket_params)
      out += fmt::format(" --ddp-bucket-size {:.0f}", *t.grad_bucket_params);
  } else if (!fsdp2_line) {
    // Megatron-FSDP overlaps sharded gradients' reduce-scatters always and, with the
    // parameters sharded too, their gathers (MegatronFSDP.__init__, megatron/core/
    // distributed/fsdp/src/megatron_fsdp/megatron_fsdp.py lines 327-337 at d98e8a64); under
    // optim_grads the gather overlap is its flag, which asks for the other (arguments.py
    // lines 1024-1028).
    if (!t.overlap_grad_reduce) {
      missing.emplace_back("the gradient reduction not overlapped under Megatron-FSDP (it "
                           "overlaps sharded gradients always)");
    }
    if (p.zero_stage == 2 && t.overlap_param_gather) {
      out += " --overlap-grad-reduce --overlap-param-gather";
    } else if (p.zero_stage == 3 && !t.overlap_param_gather) {
      missing.emplace_back("the parameter gather not overlapped under Megatron-FSDP (it "
                           "overlaps sharded parameters always)");
    }
  }
  // --tp-comm-overlap asserts --sequence-parallel (arguments.py line 1441).
  if (t.tp_comm_overlap && p.tp > 1 && p.sequence_parallel) {
    out += " --tp-comm-overlap";
  } else if (t.tp_comm_overlap && p.tp > 1) {
    missing.emplace_back(
        "tensor-parallel overlap without sequence parallelism (Megatron-LM's --tp-comm-overlap "
        "asks for --sequence-parallel)");
  }
  if (p.zero_hpz) missing.emplace_back("ZeRO++ hpZ (DeepSpeed)");
  // Megatron-Core asks for at least pp micro-batches (validate_parallelism.cpp).
  if (flexible) {
    missing.emplace_back(fmt::format(
        "{} micro-batches at pp {} (the Llama 3 paper's flexible groups; Megatron-Core asks "
        "for at least pp)",
        p.microbatches(), p.pp));
  }
  if (p.pipeline_engine == PipelineEngine::deepspeed) {
    missing.emplace_back("the DeepSpeed pipeline engine (Megatron-DeepSpeed)");
  }
  if (s.training.compression.scheme != CompressionSpec::Scheme::none) {
    missing.emplace_back(
        fmt::format("gradient compression {}", to_string(s.training.compression.scheme)));
  }
  // --first-last-layers-bf16: Megatron-Core asks each count to be at most num_layers // pp
  // (transformer_config.py lines 1532-1556 at d98e8a64).
  auto bf16_edge_layers = [&](int first, int last) {
    if (first + last == 0) return;
    const int per_stage = s.model.layers / p.pp;
    if (first > per_stage || last > per_stage) {
      missing.emplace_back(fmt::format(
          "bf16 edge layers {} and {} (Megatron-Core allows at most num_layers // pp = {} each)",
          first, last, per_stage));
      return;
    }
    out += fmt::format(
        " --first-last-layers-bf16 --num-layers-at-start-in-bf16 {} --num-layers-at-end-in-bf16 {}",
        first, last);
  };
  switch (s.training.precision) {
    case Precision::fp16: out += " --fp16"; break;
    case Precision::bf16: out += " --bf16"; break;
    case Precision::fp8:
      if (!s.training.fp8) {
        out += " --bf16 --fp8-format hybrid";
        missing.emplace_back("fp8 without a recipe (training.fp8 absent; --fp8-recipe delayed "
                             "given, Transformer Engine's default)");
      } else if (s.training.fp8->rowwise()) {
        // torchao's row-wise recipes have no Megatron-LM counterpart (--fp8-recipe).
        out += " --bf16";
        missing.emplace_back(
            fmt::format("fp8 scaling {} (torchao)", to_string(s.training.fp8->scaling)));
      } else {
        // Megatron-LM's Transformer Engine flags for the recipe (megatron/training/
        // arguments.py: --fp8-recipe tensorwise|delayed|mxfp8|blockwise).
        const Fp8Spec& f = *s.training.fp8;
        const char* recipe = f.scaling == Fp8Spec::Scaling::current  ? "tensorwise"
                             : f.scaling == Fp8Spec::Scaling::block  ? "blockwise"
                             : f.scaling == Fp8Spec::Scaling::mxfp8  ? "mxfp8"
                                                                     : "delayed";
        out += fmt::format(" --bf16 --fp8-format {} --fp8-recipe {}", to_string(f.format), recipe);
        if (f.scaling == Fp8Spec::Scaling::delayed) {
          out += fmt::format(" --fp8-amax-history-len {}", f.amax_history);
        }
        // transformer_config.py at d98e8a64 refuses bf16 edge layers under delayed scaling
        // ("Delayed scaling does not support first / last layer in BF16").
        if (f.bf16_first + f.bf16_last > 0 && f.scaling == Fp8Spec::Scaling::delayed) {
          missing.emplace_back("bf16 edge layers under delayed scaling (Megatron-Core refuses "
                               "--first-last-layers-bf16 with it)");
        } else {
          bf16_edge_layers(f.bf16_first, f.bf16_last);
        }
        // Under --use-torch-fsdp2 validate_args turns --fp8-param-gather off (Transformer
        // Engine 2.0 and newer, arguments.py lines 1051-1056 at d98e8a64): bf16 gathers.
        const bool fp8_gather =
            f.param_allgather_fp8 || (f.fp8_weights && f.scaling == Fp8Spec::Scaling::mxfp8);
        if (fp8_gather && fsdp2_line) {
          missing.emplace_back("fp8 parameter gathers under --use-torch-fsdp2 (Megatron-LM "
                               "turns --fp8-param-gather off there)");
        } else if (fp8_gather) {
          out += " --fp8-param-gather";
        }
        // MXFP8 weights kept in fp8: the gather bf16 through the gradient buffer (the reuse
        // flag Megatron-Bridge sets with it).
        if (f.fp8_weights && f.scaling == Fp8Spec::Scaling::mxfp8 && !fsdp2_line) {
          out += " --reuse-grad-buf-for-mxfp8-param-ag";
        }
        // Layers outside Transformer Engine's modules (the LM head, the router) have no
        // Megatron-Core fp8 switch, nor does a subset of the layers inside them.
        if ((f.gemms & (kFp8Head | kFp8Router)) != 0) {
          missing.emplace_back("the LM head or the router in fp8 (training.fp8.gemms)");
        }
        if ((f.gemms & ~(kFp8Head | kFp8Router)) != kFp8TeLayers) {
          missing.emplace_back("fp8 in some of Transformer Engine's layers only "
                               "(training.fp8.gemms)");
        }
        if (f.tp_allgather_fp8) {
          missing.emplace_back("the sequence-parallel all-gathers in fp8 "
                               "(training.fp8.communication.tp_allgather)");
        }
        // Transformer Engine keeps a step's fp8 weights unless ZeRO-3 frees them
        // (scenario/validate.cpp, the weight_cache default).
        if (f.weight_cache && *f.weight_cache != (p.zero_stage < 3) && !f.rowwise()) {
          missing.emplace_back(fmt::format("training.fp8.weight_cache {}", *f.weight_cache));
        }
      }
      break;
    case Precision::fp4: {
      // Megatron-Core --fp4-format e2m1 --fp4-recipe nvfp4 (transformer_config.py: fp4,
      // fp4_recipe nvfp4|custom) with the same bf16 layers (megatron/core/fp4_utils.py at
      // NVIDIA/Megatron-LM d98e8a64); MXFP4 has no recipe there.
      const Fp4Spec& f = *s.training.fp4;
      out += " --bf16";
      if (f.format == Fp4Spec::Format::nvfp4) {
        out += " --fp4-format e2m1 --fp4-recipe nvfp4";
        bf16_edge_layers(f.bf16_first, f.bf16_last);
      } else {
        missing.emplace_back("fp4 format mxfp4 (no Megatron-Core recipe)");
      }
      break;
    }
    case Precision::fp32: break;
    case Precision::tf32:
      missing.emplace_back("tf32 matrix multiplies (no Megatron-LM flag; its fp32 runs them in "
                           "fp32)");
      break;
  }
  // The gradient buffer's type (arguments.py lines 1195-1216 at d98e8a64): fp32 under --bf16
  // unless --grad-reduce-in-bf16; under --fp16 the parameters' fp16 unless
  // --accumulate-allreduce-grads-in-fp32; fp32 without either.
  const bool fp16_params = s.training.precision == Precision::fp16;
  const bool sixteen_bit_params =
      fp16_params || s.training.precision == Precision::bf16 ||
      s.training.precision == Precision::fp8 || s.training.precision == Precision::fp4;
  // Under --use-torch-fsdp2 fully_shard runs with no mixed-precision policy (d98e8a64):
  // gradients reduce in the parameters' type, and these flags change nothing.
  const bool params_dtype_grads =
      (s.training.precision == Precision::fp16 && t.gradient_dtype == Dtype::fp16) ||
      (sixteen_bit_params && !fp16_params && t.gradient_dtype == Dtype::bf16);
  if (fsdp2_line) {
    if (!params_dtype_grads) {
      missing.emplace_back(fmt::format("{} gradient reduce-scatters under --use-torch-fsdp2 "
                                       "(Megatron-LM reduces in the parameters' type there)",
                                       to_string(t.gradient_dtype)));
    }
  } else if (fp16_params && t.gradient_dtype == Dtype::fp32) {
    out += " --accumulate-allreduce-grads-in-fp32";
  } else if (sixteen_bit_params && !fp16_params && t.gradient_dtype == Dtype::bf16) {
    out += " --grad-reduce-in-bf16";
  } else if (t.gradient_dtype != Dtype::fp32 &&
             !(fp16_params && t.gradient_dtype == Dtype::fp16)) {
    missing.emplace_back(fmt::format("{} gradients under {} training", to_string(t.gradient_dtype),
                                     to_string(s.training.precision)));
  }
  // Megatron-LM takes adam or sgd (--optimizer, arguments.py at d98e8a64; adam is AdamW,
  // Transformer Engine's FusedAdam with decoupled weight decay).
  if (t.optimizer == Optimizer::sgd) {
    out += " --optimizer sgd";
  } else if (t.optimizer != Optimizer::adam && t.optimizer != Optimizer::adamw) {
    missing.emplace_back(fmt::format("the {} optimizer (Megatron-LM takes adam or sgd)",
                                     to_string(t.optimizer)));
  }
  // Optimizer-state precision: Megatron-Core's precision-aware optimizer (arguments.py
  // --use-precision-aware-optimizer, --exp-avg-dtype, --exp-avg-sq-dtype, --main-params-dtype
  // fp32|fp16), which megatron/core/optimizer/__init__.py refuses without the distributed
  // optimizer. 8-bit states and no master copy have no flag there.
  const bool bf16_moments = t.optimizer_state_dtype == StateDtype::bf16;
  const bool fp16_master = t.main_params_dtype == MainParams::fp16;
  // CPU offload needs the precision-aware optimizer too (arguments.py asserts it).
  // Under --use-torch-fsdp2 there is no distributed optimizer (arguments.py line 1038), which
  // the precision-aware optimizer needs (megatron/core/optimizer/__init__.py line 1057).
  const bool precision_aware = bf16_moments || fp16_master || t.optimizer_offload;
  if (precision_aware && fsdp2_line) {
    missing.emplace_back(
        "optimizer states or master weights below fp32, or optimizer offload, under "
        "--use-torch-fsdp2 (Megatron-LM's precision-aware optimizer needs its distributed "
        "optimizer)");
  } else if (precision_aware) {
    out += " --use-precision-aware-optimizer";
    if (bf16_moments) out += " --exp-avg-dtype bf16 --exp-avg-sq-dtype bf16";
    // Megatron-FSDP keeps its own master buffer, whose dtype --megatron-fsdp-main-params-dtype
    // sets ("Replaces --main-params-dtype", arguments.py line 3687 at d98e8a64).
    if (fp16_master && p.zero_stage >= 2) {
      out += " --megatron-fsdp-main-params-dtype fp16";
    } else if (fp16_master) {
      out += " --main-params-dtype fp16";
    }
    if (p.zero_stage == 0) {
      missing.emplace_back("the precision-aware optimizer without the distributed optimizer");
    }
  }
  if (t.optimizer_offload && !fsdp2_line) {
    out += fmt::format(" --optimizer-cpu-offload --optimizer-offload-fraction {:g}",
                       t.optimizer_offload->fraction);
    if (t.optimizer_offload->overlap) out += " --overlap-cpu-optimizer-d2h-h2d";
  }
  if (t.activation_offload) {
    // arguments.py has no --cpu-offloading: a layer count above 0 turns it on.
    out += fmt::format(" --cpu-offloading-num-layers {}", t.activation_offload->layers);
  }
  if (t.optimizer_state_dtype == StateDtype::int8) {
    missing.emplace_back("8-bit optimizer states (bitsandbytes)");
  }
  if (t.main_params_dtype == MainParams::none) missing.emplace_back("no master weights");
  for (std::size_t i = 0; i < missing.size(); ++i) {
    out += (i == 0 ? "; no Megatron-LM flag for " : ", ") + missing[i];
  }
  return out;
}

}  // namespace orrery
