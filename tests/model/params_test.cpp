// Parameter counts against hand derivations and published sizes.
#include <gtest/gtest.h>

#include <algorithm>

#include "model/analysis.h"
#include "model/memory.h"
#include "model/pipeline.h"
#include "model/workload.h"
#include "scenario/load.h"
#include "tests/test_util.h"

namespace orrery {
namespace {

using testing::preset_scenario;

double params_of(const std::string& preset) {
  return analyse_step(preset_scenario(preset, "tp: 1, pp: 1, global_batch: 8")).params_total;
}

TEST(Params, Gpt3Is174_6B) {
  // Narayanan et al. 2021, section 5.1: P = 12*l*h^2*(1 + 13/(12h) + (V + s)/(12*l*h)),
  // plus the final LayerNorm (2h) the formula leaves out. l = 96, h = 12288,
  // V = 51200, s = 2048:
  //   12*96*12288^2 = 173,946,175,488;  13*l*h = 15,335,424;
  //   (V + s)*h = 654,311,424;  2h = 24,576  ->  174,615,846,912.
  EXPECT_DOUBLE_EQ(params_of("gpt3-175b"), 174615846912.0);
  EXPECT_NEAR(params_of("gpt3-175b") / 174.6e9, 1.0, 0.0005);  // "174.6 B" (Table 1 row)
}

TEST(Params, NarayananTable1WithinOnePercentOfPrintedSizes) {
  const std::pair<const char*, double> rows[] = {
      {"narayanan-1.7b", 1.7e9},     {"narayanan-3.6b", 3.6e9},
      {"narayanan-7.5b", 7.5e9},     {"narayanan-18.4b", 18.4e9},
      {"narayanan-39.1b", 39.1e9},   {"narayanan-76.1b", 76.1e9},
      {"narayanan-145.6b", 145.6e9}, {"narayanan-310.1b", 310.1e9},
      {"narayanan-529.6b", 529.6e9}, {"narayanan-1008b", 1008.0e9}};
  // The table prints sizes to one decimal (three figures at 1008B): a printed "1.7" is
  // any count in [1.65, 1.75) B. So the bar is 1 % or half a printed unit (0.05 B),
  // whichever is wider; it is the rounding that decides for 1.7B (1.652 B here, the
  // paper's own formula gives the same) and 3.6B (3.562 B).
  for (const auto& [preset, printed] : rows) {
    const double tolerance = std::max(0.01 * printed, 0.05e9);
    EXPECT_NEAR(params_of(preset), printed, tolerance) << preset;
  }
}

TEST(Params, Llama3SizesFromTheirShapes) {
  // Per layer: q and o h^2 each, k and v h*kv*d each (kv = 8, d = 128), SwiGLU 3*h*f,
  // two RMSNorms h each; untied embeddings 2*V*h (V = 128256); final norm h.
  // 8B:   32 * 218,112,000 + 1,050,673,152 + 4,096        =   8,030,261,248
  // 70B:  80 * 855,654,400 + 2,101,346,304 + 8,192        =  70,553,706,496
  // 405B: 126 * 3,187,703,808 + 4,202,692,608 + 16,384    = 405,853,388,800
  EXPECT_DOUBLE_EQ(params_of("llama3-8b"), 8030261248.0);
  EXPECT_DOUBLE_EQ(params_of("llama3-70b"), 70553706496.0);
  EXPECT_DOUBLE_EQ(params_of("llama3-405b"), 405853388800.0);
  // The quoted sizes 8.03 / 70.6 / 405.8 B are rounded (70.55 -> 70.6) or cut
  // (405.85 -> 405.8) to one decimal, so the bar is 0.1 %.
  EXPECT_NEAR(params_of("llama3-8b") / 8.03e9, 1.0, 0.001);
  EXPECT_NEAR(params_of("llama3-70b") / 70.6e9, 1.0, 0.001);
  EXPECT_NEAR(params_of("llama3-405b") / 405.8e9, 1.0, 0.001);
}

TEST(Params, Llama2_7B) {
  // 32 * (4*4096^2 + 3*4096*11008 + 2*4096) + 2*32000*4096 + 4096 = 6,738,415,616,
  // the 6.74 B of the released checkpoint.
  EXPECT_DOUBLE_EQ(params_of("llama2-7b"), 6738415616.0);
}

TEST(Params, MixtralAndDeepSeekMoE) {
  // Mixtral 8x7B: per layer attention 41,943,040, 8 experts of 3*4096*14336,
  // router 8*4096, norms 8192 -> 1,451,270,144; x32 + 2*32000*4096 + 4096
  // = 46,702,792,704 (the "46.7 B" of Jiang et al. 2024).
  EXPECT_DOUBLE_EQ(params_of("mixtral-8x7b"), 46702792704.0);
  // DeepSeek-V3: 3 dense layers of 583,483,392 (MLA 187,107,328 + norms 14,336 +
  // SwiGLU 3*7168*18432) and 58 MoE layers of 11,507,271,424 (MLA + norms + 256
  // experts and 1 shared of 3*7168*2048 + router 256*7168), + 2*129280*7168 + 7168
  // = 671,026,404,352. The released config counts 671,026,419,200: the difference is
  // the 58*256 routing-bias terms, which hold no weights of consequence.
  EXPECT_DOUBLE_EQ(params_of("deepseek-v3"), 671026404352.0);
  const StepFigures f =
      analyse_step(preset_scenario("deepseek-v3", "tp: 1, pp: 1, global_batch: 8"));
  // Active per token: the report's 37 B. 8 of 256 routed experts per MoE layer.
  EXPECT_NEAR(f.params_active / 37e9, 1.0, 0.02);
}

TEST(Params, BertLargeFromItsShape) {
  // Embeddings 30522*1024 + 512*1024 + 2*1024 + LN 2048 = 31,782,912
  // Layers 24 * (4*(1024^2 + 1024) + 2*(1024*4096) + 4096 + 1024 + 2*2048) = 302,309,376
  // Pooler 1,049,600 + MLM transform 1,049,600 + LN 2,048 + output bias 30,522
  // (output weights tied) -> 336,224,058.
  EXPECT_DOUBLE_EQ(params_of("bert-large"), 336224058.0);
}

TEST(Params, BertLargeSequenceClassifier) {
  // model.head classifier (Hugging Face BertForSequenceClassification): the embeddings and
  // layers above, the pooler 1024^2 + 1024 = 1,049,600 and a classifier of 2 labels
  // 1024*2 + 2 = 2,050; no masked-LM transform, norm or output bias:
  // 31,782,912 + 302,309,376 + 1,049,600 + 2,050 = 335,143,938 (what transformers'
  // num_parameters() gives for bert-large-uncased with num_labels 2).
  const Scenario s = preset_scenario("bert-large", "tp: 1, pp: 1, global_batch: 8", 1,
                                     "precision: fp32");
  Scenario c = load_scenario_text(
      "cluster: {preset: dgx-a100}\nmodel: {preset: bert-large, head: classifier}\n"
      "parallelism: {tp: 1, pp: 1, global_batch: 8}\n",
      "cls.yaml");
  EXPECT_DOUBLE_EQ(analyse_step(c).params_total, 335143938.0);
  EXPECT_FALSE(c.model.tied_embeddings);  // nothing to tie: no vocabulary projection
  // Five labels: 3 more outputs, 3 * 1025 parameters more.
  c = load_scenario_text(
      "cluster: {preset: dgx-a100}\nmodel: {preset: bert-large, head: classifier, labels: 5}\n"
      "parallelism: {tp: 1, pp: 1, global_batch: 8}\n",
      "cls.yaml");
  EXPECT_DOUBLE_EQ(analyse_step(c).params_total, 335143938.0 + 3 * 1025.0);
  // The masked-LM preset is unchanged by the key's default.
  EXPECT_DOUBLE_EQ(analyse_step(s).params_total, 336224058.0);
}

TEST(Params, ResNet50FromItsLayerTable) {
  const Scenario s = preset_scenario("resnet50", "global_batch: 256");
  const StepFigures f = analyse_step(s);
  // He et al. 2016 / torchvision resnet50: 25,557,032 parameters.
  EXPECT_DOUBLE_EQ(f.params_total, 25557032.0);
  // 4.09 G multiply-adds per 224x224 image (v1.5), so model FLOPs per image are
  // 3 (forward + backward) * 2 * 4,089,184,256.
  EXPECT_DOUBLE_EQ(f.model_flops.value() / 256, 3.0 * 2.0 * 4089184256.0);
  EXPECT_NEAR(4089184256.0 / 4.1e9, 1.0, 0.01);
}

}  // namespace
}  // namespace orrery

namespace orrery {
namespace {

// model.mtp_layers: a two-layer SwiGLU decoder (h 64, 4 heads of 16, ffn 256, vocab 1024,
// 128 tokens a sequence). One multi-token-prediction layer adds its transformer layer,
// 4h^2 + 3 h ffn + 2h = 16,384 + 49,152 + 128 = 65,664 weights, the projection 2h x h =
// 8,192 and its embedding, hidden and final norms 3h = 192: 74,048 (the embedding and the
// output head are shared). Its forward adds, for the 128 tokens, the projection
// 2 x 128 x 128 x 64 = 2,097,152 FLOPs, the layer's QKV 2 x 128 x 64 x 192 = 3,145,728,
// attention 4 x 128^2 x 64 = 4,194,304, output projection 1,048,576, fc1 2 x 128 x 64 x 512 =
// 8,388,608 and fc2 4,194,304, and the output head again, 2 x 128 x 64 x 1024 = 16,777,216:
// 39,845,888.
Scenario mtp_model(int layers, const std::string& par = "pp: 1, dp: 8") {
  return load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 1}
model: {family: decoder, layers: 2, hidden: 64, heads: 4, ffn: 256, vocab: 1024, seq_len: 128,
        activation: swiglu, norm: rmsnorm, position_embedding: rope, tied_embeddings: false,
        bias: false, dropout: false, mtp_layers: )" + std::to_string(layers) + R"(}
parallelism: {tp: 1, )" + par + R"(, microbatch: 1, global_batch: 8}
training: {precision: bf16, recompute: none}
)",
                            "mtp.yaml");
}

TEST(MultiTokenPrediction, OneLayerByHand) {
  const Scenario off = mtp_model(0), on = mtp_model(1);
  EXPECT_DOUBLE_EQ(analyse_step(on).params_total - analyse_step(off).params_total, 74048.0);
  const Workload a = build_workload(off.model, off.training, shard_of(off.parallelism));
  const Workload b = build_workload(on.model, on.training, shard_of(on.parallelism));
  EXPECT_DOUBLE_EQ(b.fwd_flops().value() - a.fwd_flops().value(), 39845888.0);
  // On the loss stage: with pp 2 the second stage holds them.
  const Scenario piped = mtp_model(1, "pp: 2, dp: 4, pipeline_layout: \"Et|tmL\"");
  EXPECT_NO_THROW(analyse_step(piped));
}

TEST(MultiTokenPrediction, StandaloneStageByHand) {
  // pp 4 over 8 GPUs: "Et|t|m|L" is Megatron-Core's mtp_standalone (m in rank 2's last
  // virtual stage, before L's), "Et|t||mL" the same ranks with MTP and the loss together.
  const Scenario apart = mtp_model(1, "pp: 4, dp: 2, pipeline_layout: \"Et|t|m|L\"");
  const Scenario together = mtp_model(1, "pp: 4, dp: 2, pipeline_layout: \"Et|t||mL\"");
  EXPECT_TRUE(shard_of(apart.parallelism).mtp_standalone);
  EXPECT_FALSE(shard_of(together.parallelism).mtp_standalone);
  EXPECT_EQ(pipeline_layout(apart.model, apart.parallelism).mtp_stage, 2);
  EXPECT_EQ(pipeline_layout(together.model, together.parallelism).mtp_stage, -1);
  // The model is the same: the same parameters and FLOPs, counted once.
  EXPECT_DOUBLE_EQ(analyse_step(apart).params_total, analyse_step(together).params_total);
  const Workload a = build_workload(apart.model, apart.training, shard_of(apart.parallelism));
  const Workload t =
      build_workload(together.model, together.training, shard_of(together.parallelism));
  EXPECT_DOUBLE_EQ(a.fwd_flops().value(), t.fwd_flops().value());
  // The MTP layer holds the 74,048 weights of OneLayerByHand (the output head's copy has
  // none) and every op up to its final norm; the head keeps the output GEMM and the loss.
  ASSERT_EQ(a.layers.size(), 5u);
  EXPECT_EQ(a.layers[3].kind, LayerKind::mtp);
  EXPECT_DOUBLE_EQ(a.layers[3].params(), 74048.0);
  EXPECT_EQ(a.layers[3].ops.back().name, "mtp.final_norm");
  EXPECT_DOUBLE_EQ(a.layers[4].params(), t.layers[3].params() - 74048.0);
  EXPECT_EQ(a.layers[4].ops.size() + a.layers[3].ops.size(), t.layers[3].ops.size());
  // Memory: the rank that runs the MTP layer holds it and its own copy of the word
  // embedding, 1024 x 64 = 65,536 (Megatron-Core's LanguageModelEmbedding on every chunk with
  // MTP layers): rank 2 in the one layout, rank 3 in the other.
  EXPECT_EQ(mtp_embedding_copy_rank(apart.model, apart.parallelism), 2);
  EXPECT_EQ(mtp_embedding_copy_rank(together.model, together.parallelism), 3);
  const MemoryReport ma = estimate_memory(apart), mt = estimate_memory(together);
  EXPECT_DOUBLE_EQ(ma.stages.at(2).params - mt.stages.at(2).params, 74048.0 + 65536.0);
  EXPECT_DOUBLE_EQ(mt.stages.at(3).params - ma.stages.at(3).params, 74048.0 + 65536.0);
  // One pipeline rank holds it all: no copy.
  const Scenario one = mtp_model(1);
  EXPECT_EQ(mtp_embedding_copy_rank(one.model, one.parallelism), -1);
  // Tied, with the loss: the MTP table is the shared weight and the output layer keeps its
  // own beside it (allocated off the first stage), so the last rank holds two tables, as
  // untied (output weights and the MTP table); on a stage of its own the MTP rank holds one
  // and the last rank the tied copy in place of untied output weights: tied or not, every
  // rank holds the same count.
  Scenario tied = together;
  tied.model.tied_embeddings = true;
  EXPECT_EQ(mtp_embedding_copy_rank(tied.model, tied.parallelism), 3);
  const MemoryReport tt = estimate_memory(tied);
  for (int st = 0; st < 4; ++st) EXPECT_DOUBLE_EQ(tt.stages.at(st).params, mt.stages.at(st).params);
  EXPECT_DOUBLE_EQ(tt.stages.at(3).params, 74048.0 + 2 * 65536.0 + 64.0);  // + the final norm
  tied = apart;
  tied.model.tied_embeddings = true;
  EXPECT_EQ(mtp_embedding_copy_rank(tied.model, tied.parallelism), 2);
  const MemoryReport ta = estimate_memory(tied);
  for (int st = 0; st < 4; ++st) EXPECT_DOUBLE_EQ(ta.stages.at(st).params, ma.stages.at(st).params);
  EXPECT_EQ(ma.stages.at(2).layers, 0);  // transformer layers only
}

TEST(MultiTokenPrediction, PlacedWithTheLossOrOnAStageOfItsOwn) {
  // As many m as mtp_layers, after every t; in L's stage right before L, elsewhere at the
  // end of a rank's last virtual stage, not on the first rank.
  EXPECT_THROW(mtp_model(1, "pp: 2, dp: 4, pipeline_layout: \"Et|tL\""), InputError);
  EXPECT_THROW(mtp_model(0, "pp: 2, dp: 4, pipeline_layout: \"Et|tmL\""), InputError);
  EXPECT_THROW(mtp_model(1, "pp: 2, dp: 4, pipeline_layout: \"Etm|tL\""), InputError);
  EXPECT_THROW(mtp_model(1, "pp: 2, dp: 4, pipeline_layout: \"Ettm|L\""), InputError);
  EXPECT_NO_THROW(mtp_model(1, "pp: 4, dp: 2, pipeline_layout: \"Et|tm||L\""));
  // Only decoders predict the next tokens.
  EXPECT_THROW(load_scenario_text(R"(
cluster: {preset: dgx-h100, nodes: 1}
model: {preset: bert-large, mtp_layers: 1}
parallelism: {tp: 1, pp: 1, dp: 8, global_batch: 8}
)",
                                  "bert.yaml"),
               InputError);
}

}  // namespace
}  // namespace orrery
