// run --explain's op-by-op table (simulator/op_times.h): times derived by hand from the
// DGX H100 preset (scenario/presets/gpus.yaml: bf16 989.4 TFLOP/s x gemm_efficiency 0.698,
// the GEMM ramp's 796 us point at 0.933; HBM 3.35 TB/s x memory_efficiency 0.87).
#include "simulator/op_times.h"

#include <gtest/gtest.h>

#include <string>

#include "model/workload.h"
#include "report/run_report.h"
#include "scenario/load.h"

namespace orrery {
namespace {

Scenario decoder(int layers, const std::string& training, const std::string& moe = "") {
  return load_scenario_text(
      "cluster: {preset: dgx-h100, gpus_per_node: 1}\n"
      "model: {family: decoder, layers: " + std::to_string(layers) +
          ", hidden: 4096, heads: 32, ffn: 16384, vocab: 32768, seq_len: 4096, "
          "activation: gelu, norm: layernorm, position_embedding: rope, "
          "tied_embeddings: false, bias: false, dropout: false" + moe + "}\n"
          "parallelism: {tp: 1, pp: 1, dp: 1, microbatch: 1, global_batch: 4}\n"
          "training: {recompute: none, " + training + "}\n",
      "ops.yaml");
}

const OpPassTimes& find(const LayerGroupTimes& g, const std::string& name) {
  for (const OpPassTimes& t : g.ops)
    if (t.name == name) return t;
  throw std::runtime_error("no op " + name);
}

TEST(OpTimes, HandDerivedGemmAndResidualAndGroups) {
  const Scenario s = decoder(2, "precision: bf16");
  const OpTimes t = op_times(s, *make_compute_model(s));
  // embedding, the two alike transformer layers, the head.
  ASSERT_EQ(t.groups.size(), 3u);
  const LayerGroupTimes& layers = t.groups[1];
  EXPECT_EQ(layers.first, "layer.0");
  EXPECT_EQ(layers.last, "layer.1");
  EXPECT_EQ(layers.count, 2);
  // fc2: 2 x 4096 tokens x 16384 x 4096 = 549.76 GFLOP; at 690.60 TFLOP/s 796.05 us, on
  // the ramp at 0.933 (its 796 us point): 853.2 us. Backward: two such GEMMs.
  const OpPassTimes& fc2 = find(layers, "mlp.fc2");
  EXPECT_NEAR(fc2.fwd_flops.value(), 549.755813888e9, 1e3);
  EXPECT_NEAR(fc2.fwd.value(), 853.2e-6, 0.001 * 853.2e-6);
  EXPECT_NEAR(fc2.bwd.value(), 2 * 853.2e-6, 0.001 * 2 * 853.2e-6);
  EXPECT_EQ(fc2.fwd_kernels, 1);
  EXPECT_EQ(fc2.bwd_kernels, 2);  // data and weight gradients
  // The residual add reads two 4096 x 4096 bf16 tensors and writes one: 100,663,296 B at
  // 2.9145 TB/s, 34.54 us.
  const OpPassTimes& res = find(layers, "attn.residual");
  EXPECT_NEAR(res.fwd_bytes.value(), 100663296.0, 1.0);
  EXPECT_NEAR(res.fwd.value(), 34.54e-6, 0.001 * 34.54e-6);
  // The model's sums: every group's layer times its count.
  double fwd = 0;
  for (const LayerGroupTimes& g : t.groups) fwd += g.fwd.value() * g.count;
  EXPECT_NEAR(t.fwd.value(), fwd, 1e-12);
  EXPECT_NEAR(layers.fwd.value() * 2, fwd - t.groups[0].fwd.value() - t.groups[2].fwd.value(),
              1e-12);
}

TEST(OpTimes, LayersKeptInBf16AreAGroupOfTheirOwn) {
  // Three layers under fp8, the first kept in bf16 (training.fp8.bf16_layers): its GEMMs
  // run at the bf16 rate, so it does not group with the two fp8 layers after it.
  const OpTimes t = [] {
    const Scenario s = decoder(3, "precision: fp8, fp8: {bf16_layers: {first: 1}}");
    return op_times(s, *make_compute_model(s));
  }();
  ASSERT_EQ(t.groups.size(), 4u);
  EXPECT_EQ(t.groups[1].first, "layer.0");
  EXPECT_EQ(t.groups[1].count, 1);
  EXPECT_EQ(t.groups[2].first, "layer.1");
  EXPECT_EQ(t.groups[2].last, "layer.2");
  EXPECT_EQ(t.groups[2].count, 2);
  EXPECT_GT(find(t.groups[1], "mlp.fc2").fwd.value(), find(t.groups[2], "mlp.fc2").fwd.value());
}

TEST(OpTimes, ExpertOpsAtTheBusiestRanksLoad) {
  // Dropless routing with load_imbalance 1.5: the busiest rank computes 1.5x the mean's
  // rows (model/moe_routing.h), so its expert GEMMs take 1.5x the op's time; the router
  // (not an expert op) is unscaled.
  const Scenario s = decoder(1, "precision: bf16",
                             ", moe: {experts: 8, top_k: 2, expert_ffn: 4096, "
                             "load_imbalance: 1.5}");
  const auto model = make_compute_model(s);
  const OpTimes t = op_times(s, *model);
  const Workload w = build_workload(s.model, s.training, shard_of(s.parallelism));
  int experts = 0;
  for (const Layer& l : w.layers) {
    for (const Op& op : l.ops) {
      if (!op.expert) continue;
      ++experts;
      const LayerGroupTimes& g = t.groups[1];
      EXPECT_NEAR(find(g, op.name).fwd.value(), 1.5 * model->op_time(op, Pass::forward).value(),
                  1e-15)
          << op.name;
      // Its work is the busiest rank's too, so the rate shown is the kernel's own.
      EXPECT_DOUBLE_EQ(find(g, op.name).fwd_flops.value(),
                       1.5 * op.fwd_flops.value() * op.computed_share)
          << op.name;
      EXPECT_DOUBLE_EQ(find(g, op.name).fwd_bytes.value(),
                       1.5 * (op.fwd_read + op.fwd_written + op.aux_fwd_bytes).value())
          << op.name;
    }
  }
  EXPECT_GE(experts, 2);
}

TEST(OpTimes, MultiTokenPredictionAttentionIsTheFusedKernel) {
  // The MTP layer's ops carry the prefix "mtp." (model/transformer.cpp, add_mtp); its core
  // attention is the same fused kernel over the same shape as the decoder layer's, so it
  // takes the same time: the flash rate over the tiles the causal mask leaves, backward 2.5x
  // forward (kFlashBwdOverFwd, calibrate/compute_model.cpp). Timed by name before 2026-12-05, it fell to the
  // attention-GEMM path instead (the full product at the bf16 GEMM rate, backward 2x).
  const Scenario s = decoder(1, "precision: bf16", ", mtp_layers: 1");
  const OpTimes t = op_times(s, *make_compute_model(s));
  const OpPassTimes& core = find(t.groups[1], "attn.core");
  const OpPassTimes& mtp = find(t.groups.back(), "mtp.attn.core");
  EXPECT_DOUBLE_EQ(mtp.fwd.value(), core.fwd.value());
  EXPECT_DOUBLE_EQ(mtp.bwd.value(), core.bwd.value());
  EXPECT_NEAR(mtp.bwd.value(), 2.5 * mtp.fwd.value(), 1e-12);
  // The name rule: the decoder op, or its copy in an MTP layer ("mtp." or "mtpK.").
  EXPECT_TRUE(is_op("attn.core", "attn.core"));
  EXPECT_TRUE(is_op("mtp.attn.core", "attn.core"));
  EXPECT_TRUE(is_op("mtp1.attn.core", "attn.core"));
  EXPECT_FALSE(is_op("mtp.xattn.core", "attn.core"));
  EXPECT_FALSE(is_op("vision.attn.core", "attn.core"));
  EXPECT_FALSE(is_op("attn.core2", "attn.core"));
}

TEST(OpTimes, RenderedTableNamesGroupsAndRates) {
  const Scenario s = decoder(2, "precision: bf16");
  const std::string o = render_op_explanation(s, *make_compute_model(s));
  EXPECT_NE(o.find("  layer.0 .. layer.1 (2 alike)\n"), std::string::npos) << o;
  // 549.76 GFLOP in 853.2 us: 644.3 TFLOP/s; 96 MiB in 34.54 us: 2.91 TB/s.
  EXPECT_NE(o.find("    mlp.fc2                     853."), std::string::npos) << o;
  EXPECT_NE(o.find("1 / 2  549.76 GFLOP at 644."), std::string::npos) << o;
  EXPECT_NE(o.find("96.00 MiB at 2.91 TB/s"), std::string::npos) << o;
  EXPECT_NE(o.find("4 micro-batches a pipeline a step"), std::string::npos) << o;
}

TEST(OpTimes, AOneOpLayerIsOneLine) {
  // A CNN's rows are layers of one op each, named as the op: one line, no group header.
  const Scenario s = load_scenario_text(
      "cluster: {preset: dgx-a100}\nmodel: {preset: resnet50}\n"
      "parallelism: {dp: 8, microbatch: 32, global_batch: 256}\n"
      "training: {precision: fp16, optimizer: sgd}\n",
      "cnn.yaml");
  const std::string o = render_op_explanation(s, *make_compute_model(s));
  EXPECT_NE(o.find("\n  conv1                     "), std::string::npos) << o;
  EXPECT_EQ(o.find("\n  conv1\n"), std::string::npos) << o;
  EXPECT_EQ(o.find("    conv1 "), std::string::npos) << o;
}

}  // namespace
}  // namespace orrery
