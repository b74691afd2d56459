// The parallelism: section of an imported scenario (scenario/import_common.h): the split,
// the pipeline layout, the expert dispatcher, the batch and the data-parallel sharding, with
// Megatron-LM's defaults and checks at NVIDIA/Megatron-LM d98e8a64
// (megatron/training/arguments.py, megatron/core/transformer/transformer_config.py).
#include <fmt/format.h>

#include <algorithm>

#include "scenario/import_common.h"

namespace orrery::detail {

namespace {

// Data-parallel sharding (arguments.py at NVIDIA/Megatron-LM d98e8a64):
// --use-distributed-optimizer is ZeRO-1; Megatron-FSDP (--use-megatron-fsdp) shards by
// --data-parallel-sharding-strategy (default optim_grads_params: optim is ZeRO-1,
// optim_grads ZeRO-2, optim_grads_params ZeRO-3 in Megatron-FSDP's units; megatron_fsdp.md),
// with --num-distributed-optimizer-instances replicas of the shard (HSDP); PyTorch FSDP2
// (--use-torch-fsdp2) with the checks arguments.py asserts, keeping gathered weights under
// --torch-fsdp2-no-reshard-after-forward. `model_parallel` is tp x pp x cp.
std::string sharding_lines(const ImportSettings& a, const ImportSource& source,
                           std::int64_t model_parallel, std::int64_t ep) {
  const bool megatron_fsdp = a.flag("--use-megatron-fsdp");
  const bool fsdp2 = a.flag("--use-torch-fsdp2");
  std::string p;
  if (megatron_fsdp && fsdp2) {
    a.refuse("--use-torch-fsdp2", "given with " + a.label("--use-megatron-fsdp"));
  }
  if (fsdp2) {
    if (a.flag("--use-distributed-optimizer")) {
      a.refuse("--use-torch-fsdp2", "Megatron-LM refuses it with the distributed optimizer");
    }
    if (a.whole("--pipeline-model-parallel-size", 1) > 1 || ep > 1) {
      a.refuse("--use-torch-fsdp2", "Megatron-LM refuses it with pipeline or expert parallelism");
    }
    if (a.flag("--fp16")) a.refuse("--use-torch-fsdp2", "Megatron-LM refuses it with fp16");
    if (!a.flag("--untie-embeddings-and-output-weights")) {
      a.refuse("--use-torch-fsdp2",
               "Megatron-LM needs --untie-embeddings-and-output-weights with it");
    }
    if (!a.flag("--no-gradient-accumulation-fusion")) {
      a.refuse("--use-torch-fsdp2", "Megatron-LM needs --no-gradient-accumulation-fusion with it");
    }
    if (a.whole("--num-distributed-optimizer-instances", 1) > 1) {
      a.refuse("--num-distributed-optimizer-instances",
               "orrery's hybrid sharding under Megatron-LM is Megatron-FSDP's");
    }
    p += scenario_line("fsdp", "{implementation: fsdp2}", a.label("--use-torch-fsdp2"));
    if (a.flag("--torch-fsdp2-no-reshard-after-forward")) {
      p += scenario_line("reshard_after_forward", "false",
                         a.label("--torch-fsdp2-no-reshard-after-forward"));
    }
    return p;
  }
  if (!megatron_fsdp) {
    if (a.whole("--num-distributed-optimizer-instances", 1) > 1) {
      a.refuse("--num-distributed-optimizer-instances",
               "orrery shards hybrid (parallelism.sharding: hybrid) under ZeRO-3 only; the "
               "distributed optimizer's partial instances have no form here");
    }
    if (a.flag("--use-distributed-optimizer")) {
      p += scenario_line("zero_stage", "1", a.label("--use-distributed-optimizer"));
    }
    return p;
  }
  // arguments.py at d98e8a64 asserts Megatron-FSDP's checkpoint format (the argument is
  // read for this check only).
  if (!a.has("--ckpt-format") || a.text("--ckpt-format") != "fsdp_dtensor") {
    a.refuse(a.has("--ckpt-format") ? "--ckpt-format" : "--use-megatron-fsdp",
             "Megatron-LM runs Megatron-FSDP only with --ckpt-format fsdp_dtensor");
  }
  const char* kStrategy = "--data-parallel-sharding-strategy";
  const std::string strategy = megatron_fsdp_strategy(a);
  const std::string from =
      a.label("--use-megatron-fsdp") + " " +
      (a.has(kStrategy) ? a.label(kStrategy) + " " + strategy
                        : "(default " + a.label(kStrategy) + " " + strategy + ")");
  const std::int64_t instances = a.whole("--num-distributed-optimizer-instances", 1);
  if (instances > 1 && strategy != "optim_grads_params") {
    a.refuse("--num-distributed-optimizer-instances",
             "orrery shards hybrid (HSDP) only parameters, gradients and optimizer state "
             "together (" +
                 std::string(kStrategy) + " optim_grads_params)");
  }
  if (strategy == "optim") {
    p += scenario_line("zero_stage", "1", from);
  } else if (strategy == "optim_grads") {
    p += scenario_line("zero_stage", "2", from);
  } else if (strategy == "optim_grads_params") {
    p += scenario_line("fsdp", "{implementation: megatron_fsdp}", from);
  } else if (strategy == "no_shard") {
    a.refuse(kStrategy,
             "orrery has no Megatron-FSDP form without sharding (plain data parallelism is the "
             "launch without --use-megatron-fsdp)");
  } else {
    a.refuse(kStrategy, "Megatron-LM takes no_shard, optim, optim_grads or optim_grads_params");
  }
  if (instances > 1) {
    // orrery's hybrid sharding shards over one node's data-parallel ranks (with their cp
    // peers) and replicates across nodes (ParallelismSpec::zero3_group).
    const std::int64_t per_node = system_gpus_per_node(source.cluster);
    const std::int64_t gpus = per_node * source.nodes;
    const std::int64_t cp = a.whole("--context-parallel-size", 1);
    const std::int64_t tp = a.whole("--tensor-model-parallel-size", 1);
    const std::int64_t dp = gpus % model_parallel == 0 ? gpus / model_parallel : 0;
    const std::int64_t node_dp = std::max<std::int64_t>(1, std::min(dp, per_node / (tp * cp)));
    if (dp == 0 || dp % node_dp != 0 || dp / node_dp != instances) {
      a.refuse("--num-distributed-optimizer-instances",
               fmt::format("orrery's hybrid sharding shards over one node's {} data-parallel "
                           "ranks, which makes {} instances on these {} GPUs",
                           node_dp, dp > 0 ? dp / node_dp : 0, gpus));
    }
    p += scenario_line("sharding", "hybrid", a.label("--num-distributed-optimizer-instances"));
  }
  return p;
}

}  // namespace

std::string write_parallelism_section(const ImportSettings& a, const ImportSource& source,
                                      const ImportedModel& model) {
  std::string p;
  const std::int64_t layers = model.layers, tp = model.tp;
  // Parallel layout and batch; dp follows from the GPUs.
  p += scenario_line("tp", std::to_string(tp),
                     given_or(a, "--tensor-model-parallel-size", "default 1"));
  const std::int64_t pp = a.whole("--pipeline-model-parallel-size", 1);
  p += scenario_line("pp", std::to_string(pp),
                     given_or(a, "--pipeline-model-parallel-size", "default 1"));
  if (a.has("--context-parallel-size")) {
    p += scenario_line("cp", std::to_string(a.whole("--context-parallel-size")),
                       a.label("--context-parallel-size"));
  }
  // Context parallelism's exchange (--cp-comm-type, default p2p: arguments.py at d98e8a64):
  // p2p is Transformer Engine's ring, all_gather the keys and values gathered before
  // attention (Transformer Engine's and transformer_config.py's spelling; arguments.py's help
  // text writes allgather, read as the same); the same for every layer. a2a (Ulysses) and
  // a2a+p2p have no form here.
  if (a.whole("--context-parallel-size", 1) > 1 && a.has("--cp-comm-type")) {
    const std::vector<std::string> types = words_of(a.text("--cp-comm-type"));
    const bool uniform = std::all_of(types.begin(), types.end(),
                                     [&](const std::string& w) { return w == types[0]; });
    if (types.empty() || !uniform ||
        (types[0] != "p2p" && types[0] != "all_gather" && types[0] != "allgather")) {
      a.refuse("--cp-comm-type",
               "orrery models p2p (the ring) and all_gather, the same for every layer");
    }
    p += scenario_line("cp_comm", types[0] == "p2p" ? "ring" : "all-gather",
                       a.label("--cp-comm-type"));
  }
  if (a.has("--expert-model-parallel-size")) {
    // arguments.py at d98e8a64 (lines 1655-1658) asserts experts with ep > 1.
    if (a.whole("--expert-model-parallel-size") > 1 && !a.has("--num-experts")) {
      a.refuse("--expert-model-parallel-size",
               "above 1 without --num-experts: Megatron-LM asserts experts for it");
    }
    p += scenario_line("ep", std::to_string(a.whole("--expert-model-parallel-size")),
                       a.label("--expert-model-parallel-size"));
  }
  // Megatron-LM's default is tp, orrery's too: written only where it differs.
  if (a.has("--expert-tensor-parallel-size") && a.whole("--expert-tensor-parallel-size") != tp) {
    p += scenario_line("expert_tp", std::to_string(a.whole("--expert-tensor-parallel-size")),
                       a.label("--expert-tensor-parallel-size"));
  }
  if (a.flag("--sequence-parallel")) {
    p += scenario_line("sequence_parallel", "true", a.label("--sequence-parallel"));
  }
  if (a.flag("--use-tp-pp-dp-mapping")) {
    p += scenario_line("rank_order", "tp-cp-pp-dp", a.label("--use-tp-pp-dp-mapping"));
  }
  const std::int64_t ep = a.whole("--expert-model-parallel-size", 1);
  if (a.has("--num-experts") && ep > 1) {
    // The token dispatcher: alltoall is orrery's direct exchange, flex its hierarchical one.
    const char* kType = "--moe-token-dispatcher-type";
    const char* kBackend = "--moe-flex-dispatcher-backend";
    const std::string type = moe_dispatcher(a);
    if (a.flag("--moe-enable-deepep") && type != "flex") {
      a.refuse("--moe-enable-deepep",
               "Megatron-Core takes it only with " + a.label(kType) + " flex");
    }
    if (type == "alltoall") {
      p +=
          scenario_line("ep_alltoall", "direct", a.source(kType, std::string(kType) + " alltoall"));
    } else if (type == "flex") {
      const bool deepep = a.flag("--moe-enable-deepep");
      const std::string backend = flex_backend(a);
      if (deepep && a.has(kBackend) && a.text(kBackend) == "hybridep") {
        a.refuse("--moe-enable-deepep",
                 "given with " + a.label(kBackend) + " hybridep: Megatron-Core runs one backend");
      }
      if (backend != "deepep" && backend != "hybridep") {
        a.refuse(kBackend, "orrery models the deepep and hybridep backends");
      }
      p += scenario_line("ep_alltoall", "hierarchical",
                         a.source(kType, std::string(kType) + " flex"));
      p += scenario_line(
          "ep_backend", backend,
          deepep ? a.label("--moe-enable-deepep")
                 : given_or(a, kBackend, "default of " + a.label(kBackend) + " deepep"));
    } else if (type == "allgather") {
      a.refuse(kType,
               "orrery models the alltoall and flex dispatchers; the allgather dispatcher "
               "(Megatron-Core's default, every token gathered over the expert-parallel "
               "group) has no form here: give alltoall or flex");
    } else {
      a.refuse(kType, "Megatron-Core takes allgather, alltoall or flex");
    }
  }
  if (a.flag("--overlap-moe-expert-parallel-comm")) {
    p += scenario_line("moe_a2a_overlap", "true", a.label("--overlap-moe-expert-parallel-comm"));
  }
  if (a.has("--pipeline-model-parallel-layout")) {
    // arguments.py at d98e8a64 takes a layout or one of the interleaving arguments; the
    // layout places every layer itself, so uneven stages and counted embedding or loss
    // are spelled in it.
    for (const char* other :
         {"--num-layers-per-virtual-pipeline-stage", "--num-virtual-stages-per-pipeline-rank",
          "--decoder-first-pipeline-num-layers", "--decoder-last-pipeline-num-layers",
          "--account-for-embedding-in-pipeline-split", "--account-for-loss-in-pipeline-split"}) {
      if (a.has(other) || a.flag(other)) {
        a.refuse(other, "given with " + a.label("--pipeline-model-parallel-layout") +
                            ", which places every layer itself");
      }
    }
    const std::string& layout = a.text("--pipeline-model-parallel-layout");
    if (layout.find_first_of("\"\\") != std::string::npos) {
      a.refuse("--pipeline-model-parallel-layout", "a layout has no quotes or backslashes");
    }
    p += scenario_line("pipeline_layout", "\"" + layout + "\"",
                       a.label("--pipeline-model-parallel-layout"));
  }
  if (a.has("--microbatch-group-size-per-virtual-pipeline-stage")) {
    p +=
        scenario_line("microbatch_group_size",
                      std::to_string(a.whole("--microbatch-group-size-per-virtual-pipeline-stage")),
                      a.label("--microbatch-group-size-per-virtual-pipeline-stage"));
  }
  if (a.has("--num-layers-per-virtual-pipeline-stage")) {
    const std::int64_t per = a.whole("--num-layers-per-virtual-pipeline-stage");
    const std::int64_t accounted = (a.flag("--account-for-embedding-in-pipeline-split") ? 1 : 0) +
                                   (a.flag("--account-for-loss-in-pipeline-split") ? 1 : 0);
    if ((layers + accounted) % (pp * per) != 0) {
      a.refuse("--num-layers-per-virtual-pipeline-stage",
               fmt::format("does not divide the {} layers over {} pipeline ranks",
                           layers + accounted, pp));
    }
    p += scenario_line("virtual_pipeline_stages", std::to_string((layers + accounted) / (pp * per)),
                       a.source("--num-layers-per-virtual-pipeline-stage",
                                "--num-layers / (pp x --num-layers-per-virtual-pipeline-stage)"));
  }
  if (a.has("--num-virtual-stages-per-pipeline-rank") &&
      !a.has("--num-layers-per-virtual-pipeline-stage")) {
    // The model chunks a pipeline rank holds, orrery's virtual_pipeline_stages as it is
    // (arguments.py at d98e8a64 takes it or --num-layers-per-virtual-pipeline-stage).
    p += scenario_line("virtual_pipeline_stages",
                       std::to_string(a.whole("--num-virtual-stages-per-pipeline-rank")),
                       a.label("--num-virtual-stages-per-pipeline-rank"));
  }
  if (a.has("--decoder-first-pipeline-num-layers")) {
    p += scenario_line("first_stage_layers", a.text("--decoder-first-pipeline-num-layers"),
                       a.label("--decoder-first-pipeline-num-layers"));
  }
  if (a.has("--decoder-last-pipeline-num-layers")) {
    p += scenario_line("last_stage_layers", a.text("--decoder-last-pipeline-num-layers"),
                       a.label("--decoder-last-pipeline-num-layers"));
  }
  if (a.flag("--account-for-embedding-in-pipeline-split")) {
    p += scenario_line("account_for_embedding", "true",
                       a.label("--account-for-embedding-in-pipeline-split"));
  }
  if (a.flag("--account-for-loss-in-pipeline-split")) {
    p += scenario_line("account_for_loss", "true", a.label("--account-for-loss-in-pipeline-split"));
  }
  const std::int64_t microbatch = a.whole("--micro-batch-size", 1);
  p += scenario_line("microbatch", std::to_string(microbatch),
                     given_or(a, "--micro-batch-size",
                              "no " + a.label("--micro-batch-size") +
                                  " (Megatron-LM requires it): 1 assumed"));
  if (a.has("--global-batch-size")) {
    p += scenario_line("global_batch", std::to_string(a.whole("--global-batch-size")),
                       a.label("--global-batch-size"));
  } else {
    // Megatron-LM without --global-batch-size: one micro-batch a data-parallel rank
    // (arguments.py at d98e8a64, lines 702-703), dp = GPUs / (tp x pp x cp).
    const std::int64_t gpus = system_gpus_per_node(source.cluster) * source.nodes;
    const std::int64_t model_parallel = tp * pp * a.whole("--context-parallel-size", 1);
    if (!source.megatron_defaults || gpus % model_parallel != 0) {
      a.refuse("--global-batch-size",
               fmt::format("missing {}: the scenario needs the global batch", a.missing_word()));
    }
    p += scenario_line("global_batch", std::to_string(microbatch * (gpus / model_parallel)),
                       fmt::format("no {}: {} x data-parallel size {} (Megatron-LM's default)",
                                   a.label("--global-batch-size"), a.label("--micro-batch-size"),
                                   gpus / model_parallel));
  }
  p += sharding_lines(a, source, tp * pp * a.whole("--context-parallel-size", 1), ep);
  return p;
}

}  // namespace orrery::detail
