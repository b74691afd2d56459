// Parameter counts of models imported from Hugging Face config.json files
// (tests/scenario/data/hf, each written from the checkpoint's public config; sources in
// that folder's README.md) against hand derivations and published totals.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "model/analysis.h"
#include "model/workload.h"
#include "scenario/hf_config.h"
#include "scenario/load.h"

namespace orrery {
namespace {

const std::string kData = std::string(ORRERY_SOURCE_DIR) + "/tests/scenario/data/hf/";

Scenario imported(const std::string& config, const std::string& extra = "") {
  const std::string yaml = "cluster: {preset: dgx-h100}\nmodel: {hf_config: " + config + extra +
                           "}\nparallelism: {tp: 1, pp: 1, global_batch: 8}\n";
  // Named as a file in the fixtures' folder, so that hf_config is relative to it.
  return load_scenario_text(yaml, kData + "scenario.yaml");
}

double params_of(const std::string& config) { return analyse_step(imported(config)).params_total; }

TEST(HfParams, Llama3_8BIs8_03B) {
  // The shape of the llama3-8b preset, so its count (params_test.cpp, Llama3Sizes):
  // 32 * 218,112,000 + 2*128256*4096 + 4096 = 8,030,261,248, the published "8.03 B".
  EXPECT_DOUBLE_EQ(params_of("llama3-8b.json"), 8030261248.0);
  EXPECT_NEAR(params_of("llama3-8b.json") / 8.03e9, 1.0, 0.001);
}

TEST(HfParams, Llama3_8BIsTheShapeOfItsPreset) {
  // The llama3-8b preset (scenario/presets/models.yaml) was written from the Llama 3
  // paper; the config gives the same model, field by field, seq_len 8192 included.
  const ModelSpec a = imported("llama3-8b.json").model;
  const ModelSpec b = load_scenario_text(
                          "cluster: {preset: dgx-h100}\nmodel: {preset: llama3-8b}\n"
                          "parallelism: {tp: 1, pp: 1, global_batch: 8}\n",
                          "p.yaml")
                          .model;
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.hidden, b.hidden);
  EXPECT_EQ(a.heads, b.heads);
  EXPECT_EQ(a.kv_heads, b.kv_heads);
  EXPECT_EQ(a.ffn, b.ffn);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.seq_len, b.seq_len);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_EQ(a.norm, b.norm);
  EXPECT_EQ(a.position_embedding, b.position_embedding);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.dropout, b.dropout);
  EXPECT_EQ(a.attention_mask, b.attention_mask);
}

TEST(HfParams, Llama2_7B) {
  // 32 * (4*4096^2 + 3*4096*11008 + 2*4096) + 2*32000*4096 + 4096 = 6,738,415,616.
  EXPECT_DOUBLE_EQ(params_of("llama2-7b.json"), 6738415616.0);
}

TEST(HfParams, Mistral7B) {
  // A Llama-3-8B layer (218,112,000) x 32 + 2*32000*4096 + 4096 = 7,241,732,096, the
  // "7.24 B" of the model card.
  EXPECT_DOUBLE_EQ(params_of("mistral-7b-v0.1.json"), 7241732096.0);
}

TEST(HfParams, Mixtral8x7BIs46_7B) {
  // Per layer: attention 41,943,040, 8 experts of 3*4096*14336, router 8*4096, norms
  // 8192 -> 1,451,270,144; x32 + 2*32000*4096 + 4096 = 46,702,792,704 ("46.7 B",
  // Jiang et al. 2024). Active per token: 2 of 8 experts.
  const StepFigures f = analyse_step(imported("mixtral-8x7b.json"));
  EXPECT_DOUBLE_EQ(f.params_total, 46702792704.0);
  // 46,702,792,704 - 32 * 6 * 3*4096*14336 = 12,879,925,248 ("12.9 B active").
  EXPECT_DOUBLE_EQ(f.params_active, 12879925248.0);
}

TEST(HfParams, Qwen2_5_7B) {
  // Per layer: q and o 3584^2 each, k and v 3584*512 each (4 KV heads of 128), SwiGLU
  // 3*3584*18944, norms 2*3584 -> 233,053,184; x28 + 2*152064*3584 + 3584
  // = 7,615,487,488: the model card's 7.61 B. (The checkpoint's 129,024 q/k/v biases,
  // 28 * (3584 + 2*512), are left out: orrery's bias is all or none.)
  EXPECT_DOUBLE_EQ(params_of("qwen2.5-7b.json"), 7615487488.0);
  EXPECT_NEAR(params_of("qwen2.5-7b.json") / 7.61e9, 1.0, 0.001);
}

TEST(HfParams, Qwen3_8B) {
  // head_dim 128 = 4096 / 32. Per layer: q and o 4096^2 each, k and v 4096*1024 each,
  // SwiGLU 3*4096*12288, norms 2*4096, q/k norms (model.qk_norm) 2*128 -> 192,946,432;
  // x36 + 2*151936*4096 + 4096 = 8,190,735,360, the model card's "8.2 B".
  EXPECT_DOUBLE_EQ(params_of("qwen3-8b.json"), 8190735360.0);
}

TEST(HfParams, Phi3Mini) {
  // 32 * (4*3072^2 + 3*3072*8192 + 2*3072) + 2*32064*3072 + 3072 = 3,624,075,264
  // + 197,001,216 + 3,072 = 3,821,079,552: the model card's "3.8 B". Its 2047-token
  // sliding window is shorter than the 4096-token sequence.
  const Scenario s = imported("phi-3-mini-4k.json");
  EXPECT_DOUBLE_EQ(analyse_step(s).params_total, 3821079552.0);
  EXPECT_EQ(s.model.attention_mask, AttentionMask::sliding_window);
  EXPECT_EQ(s.model.attention_window, 2047);
}

TEST(HfParams, Gpt2Is124M) {
  // 50257*768 + 1024*768 (learned positions) + 12 * (12*768^2 + 13*768) + 2*768
  // = 38,597,376 + 786,432 + 85,054,464 + 1,536 = 124,439,808, the checkpoint's count.
  EXPECT_DOUBLE_EQ(params_of("gpt2.json"), 124439808.0);
}

TEST(HfParams, GptNeoX20B) {
  // 44 * (12*6144^2 + 13*6144) + 2*50432*6144 + 2*6144 = 19,934,846,976 + 619,708,416
  // + 12,288 = 20,554,567,680: the total of Black et al. 2022 (GPT-NeoX-20B), Table 1.
  EXPECT_DOUBLE_EQ(params_of("gpt-neox-20b.json"), 20554567680.0);
}

// DeepSeek's "activated parameters" leave out the input embedding table (a lookup, no
// multiply): V3, V2 and V2-Lite all fall within rounding of their published figures
// that way, and V2-Lite does not with it (2.66 B against "2.4 B"). The papers print two
// significant figures; half a unit of the last one is up to 2.4 % (of "21 B").
constexpr double kTwoFigures = 0.025;

TEST(HfParams, DeepSeekV3Is671B) {
  // MLA per layer: q_down 7168*1536 + q_norm 1536 + q_up 1536*128*192 + kv_down
  // 7168*(512+64) + kv_norm 512 + kv_up 512*128*(128+128) + o 128*128*7168 = 187,107,328;
  // with 2 norms 187,121,664. Dense FFN 3*7168*18432 = 396,361,728 (3 layers); MoE layer
  // 257 experts of 3*7168*2048 + router 256*7168 = 11,320,164,352 (58 layers).
  // 61*187,121,664 + 3*396,361,728 + 58*11,320,164,352 + 2*129280*7168 + 7168
  // = 671,026,404,352: the report's 671 B (arXiv:2412.19437, section 1), less its
  // 14,848 routing-bias terms (docs/model.md). The hub's 685 B adds the
  // multi-token-prediction module (num_nextn_predict_layers 1), which orrery leaves out.
  const Scenario s = imported("deepseek-v3.json");
  const StepFigures f = analyse_step(s);
  EXPECT_DOUBLE_EQ(f.params_total, 671026404352.0);
  // Active: less 58 * 256 * 3*7168*2048 routed weights, plus 8/256 of them:
  // 671,026,404,352 - 653,908,770,816 * 31/32 = 37,552,282,624.
  EXPECT_DOUBLE_EQ(f.params_active, 37552282624.0);
  EXPECT_NEAR((f.params_active - 129280.0 * 7168) / 37e9, 1.0, kTwoFigures);
  ASSERT_TRUE(s.model.moe && s.model.mla);
  EXPECT_EQ(s.model.moe->router_groups, 8);      // n_group
  EXPECT_EQ(s.model.moe->router_group_topk, 4);  // topk_group
  EXPECT_FALSE(s.model.moe->aux_loss);           // topk_method noaux_tc
  EXPECT_EQ(s.model.mla->q_lora_rank, 1536);
}

TEST(HfParams, DeepSeekV2Is236B) {
  // MLA per layer as V3's at h = 5120: 5120*1536 + 1536 + 1536*128*192 + 5120*576 + 512
  // + 512*128*256 + 128*128*5120 = 149,227,520, with norms 149,237,760. Dense FFN
  // 3*5120*12288 = 188,743,680 (1 layer); MoE 162 experts of 3*5120*1536 + router
  // 160*5120 = 3,822,878,720 (59 layers). 60*149,237,760 + 188,743,680
  // + 59*3,822,878,720 + 2*102400*5120 + 5120 = 235,741,434,880: the "236 B" of
  // arXiv:2405.04434 (section 1).
  const Scenario s = imported("deepseek-v2.json");
  const StepFigures f = analyse_step(s);
  EXPECT_DOUBLE_EQ(f.params_total, 235741434880.0);
  EXPECT_NEAR(f.params_total / 236e9, 1.0, kTwoFigures);
  // Less 59 * 160 * 3*5120*1536 = 222,717,542,400 routed weights, plus 6/160 of them.
  EXPECT_DOUBLE_EQ(f.params_active, 21375800320.0);
  EXPECT_NEAR((f.params_active - 102400.0 * 5120) / 21e9, 1.0, kTwoFigures);
  EXPECT_EQ(s.model.moe->router_groups, 8);  // group_limited_greedy
  EXPECT_EQ(s.model.moe->router_group_topk, 3);
  EXPECT_TRUE(s.model.moe->aux_loss);  // aux_loss_alpha 0.001
  EXPECT_EQ(s.model.moe->shared_experts, 2);
}

TEST(HfParams, DeepSeekV2LiteIs15_7B) {
  // q_lora_rank null: queries projected directly, 2048*16*192. MLA per layer 6,291,456
  // + 2048*576 + 512 + 512*16*256 + 16*128*2048 = 13,763,072, with norms 13,767,168.
  // Dense FFN 3*2048*10944 = 67,239,936 (1 layer); MoE 66 experts of 3*2048*1408 +
  // router 64*2048 = 571,080,704 (26 layers). 27*13,767,168 + 67,239,936
  // + 26*571,080,704 + 2*102400*2048 + 2048 = 15,706,484,224: the "15.7 B" of
  // arXiv:2405.04434 (appendix B).
  const Scenario s = imported("deepseek-v2-lite.json");
  const StepFigures f = analyse_step(s);
  EXPECT_DOUBLE_EQ(f.params_total, 15706484224.0);
  EXPECT_NEAR(f.params_total / 15.7e9, 1.0, 0.001);
  // Less 26 * 64 * 3*2048*1408 = 14,394,851,328 routed weights, plus 6/64 of them.
  EXPECT_DOUBLE_EQ(f.params_active, 2661150208.0);
  EXPECT_NEAR((f.params_active - 102400.0 * 2048) / 2.4e9, 1.0, kTwoFigures);
  EXPECT_EQ(s.model.mla->q_lora_rank, 0);
  EXPECT_EQ(s.model.moe->router_groups, 0);  // topk_method greedy
}

TEST(HfParams, Qwen3_4BHeadsAreWiderThanHiddenOverHeads) {
  // head_dim 128 while hidden / heads = 2560 / 32 = 80: model.head_dim. Per layer: q and
  // o 2560*32*128 each, k and v 2560*8*128 each, SwiGLU 3*2560*9728, norms 2*2560, q/k
  // norms 2*128 -> 100,930,816; x36 + 151936*2560 (tied) + 2560 = 4,022,468,096, the
  // model card's "4.0 B".
  const Scenario s = imported("qwen3-4b.json");
  EXPECT_EQ(s.model.head_dim(), 128);
  EXPECT_TRUE(s.model.qk_norm);
  EXPECT_DOUBLE_EQ(analyse_step(s).params_total, 4022468096.0);
}

TEST(HfParams, HeadDimSizesTheAttention) {
  // Qwen3-4B at 4096 tokens, one sample: the q/k/v projection is 2560 x (32 + 2*8)*128
  // = 2560 x 6144, the output projection 4096 x 2560, and the core attention
  // 4*b*s*S*a*d = 4 * 4096 * 4096 * 32 * 128 = 274,877,906,944 FLOPs forward (Q K^T and
  // P V over the whole grid; the causal mask's share is applied when it is timed). With
  // hidden / heads = 80 these would be 2560 x 3840, 2560 x 2560 and 171,798,691,840.
  const Scenario s = imported("qwen3-4b.json", ", seq_len: 4096");
  const Workload w = build_workload(s.model, s.training, Shard{});
  const Layer& layer = w.layers.at(1);
  double qkv = 0, proj = 0, core = 0;
  for (const Op& op : layer.ops) {
    if (op.name == "attn.qkv") qkv = op.fwd_flops_useful.value();
    if (op.name == "attn.proj") proj = op.fwd_flops_useful.value();
    if (op.name == "attn.core") core = op.fwd_flops_useful.value();
  }
  EXPECT_DOUBLE_EQ(qkv, 2.0 * 4096 * 2560 * 6144);
  EXPECT_DOUBLE_EQ(proj, 2.0 * 4096 * 4096 * 2560);
  EXPECT_DOUBLE_EQ(core, 274877906944.0);
}

TEST(HfParams, Qwen1_5MoeA2_7B) {
  // Per layer: attention 4*2048^2 = 16,777,216; 60 experts of 3*2048*1408; the shared
  // expert of 5632 = 4 x 1408 (orrery's 4 shared experts); router 60*2048; norms 2*2048
  // -> 570,552,320. x24 + 2*151936*2048 + 2048 = 14,315,587,584: the model card's
  // "14.3 B" (Qwen/Qwen1.5-MoE-A2.7B). Left out: the q/k/v biases, 24 * 3*2048, and the
  // shared expert's gate, 24 * 2048.
  const Scenario s = imported("qwen1.5-moe-a2.7b.json");
  const StepFigures f = analyse_step(s);
  EXPECT_DOUBLE_EQ(f.params_total, 14315587584.0);
  EXPECT_NEAR(f.params_total / 14.3e9, 1.0, 0.05 / 14.3);  // the print's rounding
  // Active: less 24 * 60 * 3*2048*1408 = 12,457,082,880 routed weights, plus 4/60 of
  // them: 2,688,976,896, the card's "2.7 B activated".
  EXPECT_DOUBLE_EQ(f.params_active, 2688976896.0);
  EXPECT_NEAR(f.params_active / 2.7e9, 1.0, kTwoFigures);
  EXPECT_EQ(s.model.moe->shared_experts, 4);
  EXPECT_EQ(s.model.moe->expert_ffn, 1408);
  EXPECT_EQ(s.model.moe->first_dense_layers, 0);
}

TEST(HfParams, Qwen3_30B_A3B) {
  // head_dim 128 (hidden / heads = 64). Per layer: q and o 2048*32*128 each, k and v
  // 2048*4*128 each -> 18,874,368; 128 experts of 3*2048*768; router 128*2048; norms
  // 2*2048; q/k norms 2*128 -> 623,120,640. x48 + 2*151936*2048 + 2048 = 30,532,122,624:
  // "30.5 B" (model card, Qwen/Qwen3-30B-A3B). Active: less 48 * 128 * 3*2048*768 =
  // 28,991,029,248, plus 8/128 of them: 3,353,032,704, the card's "3.3 B".
  const Scenario s = imported("qwen3-30b-a3b.json");
  const StepFigures f = analyse_step(s);
  EXPECT_EQ(s.model.head_dim(), 128);
  EXPECT_TRUE(s.model.qk_norm);
  EXPECT_DOUBLE_EQ(f.params_total, 30532122624.0);
  EXPECT_NEAR(f.params_total / 30.5e9, 1.0, 0.002);
  EXPECT_DOUBLE_EQ(f.params_active, 3353032704.0);
  EXPECT_NEAR(f.params_active / 3.3e9, 1.0, kTwoFigures);
  EXPECT_EQ(s.model.moe->shared_experts, 0);
}

TEST(HfParams, Qwen3_235B_A22B) {
  // head_dim 128 (= 4096 / 64, so no model.head_dim). Per layer: q and o 4096*8192 each,
  // k and v 4096*512 each -> 71,303,168; 128 experts of 3*4096*1536; router 128*4096;
  // norms 2*4096, q/k norms 2*128 -> 2,487,755,008. x94 + 2*151936*4096 + 4096
  // = 235,093,634,560: "235 B". Active: less 94 * 128 * 3*4096*1536 = 227,096,395,776,
  // plus 8/128: 22,190,763,520, the card's "22 B".
  const StepFigures f = analyse_step(imported("qwen3-235b-a22b.json"));
  EXPECT_DOUBLE_EQ(f.params_total, 235093634560.0);
  EXPECT_NEAR(f.params_total / 235e9, 1.0, kTwoFigures);
  EXPECT_DOUBLE_EQ(f.params_active, 22190763520.0);
  EXPECT_NEAR(f.params_active / 22e9, 1.0, kTwoFigures);
}

TEST(HfParams, Gemma2_9B) {
  // head_dim 256 (hidden / heads = 224): q and o 3584*16*256 each, k and v 3584*8*256
  // each; a GeLU-gated MLP 3*3584*14336; 2 norms 2*3584 -> 198,188,032 a layer. x42
  // + 256000*3584 (tied) + 3584 = 9,241,404,928: the model card's "9.24 B" (Gemma 2's
  // pre/post-feed-forward norms, 42 * 2*3584 = 301,056 weights, left out). Its 4096-token
  // window covers a 4096-token sequence: every layer causal.
  const Scenario s = imported("gemma-2-9b.json", ", seq_len: 4096");
  EXPECT_DOUBLE_EQ(analyse_step(s).params_total, 9241404928.0);
  EXPECT_NEAR(analyse_step(s).params_total / 9.24e9, 1.0, 0.001);
  EXPECT_EQ(s.model.head_dim(), 256);
  EXPECT_EQ(s.model.activation, Activation::swiglu);  // the gated MLP
  EXPECT_TRUE(s.model.tied_embeddings);
  EXPECT_EQ(s.model.attention_mask, AttentionMask::causal);
}

TEST(HfParams, Gemma2_27B) {
  // head_dim 128 (hidden / heads = 144): q and o 4608*32*128 each, k and v 4608*16*128
  // each, MLP 3*4608*36864, norms 2*4608 -> 566,240,256; x46 + 256000*4608 + 4608
  // = 27,226,704,384: the model card's "27.2 B".
  const double n = analyse_step(imported("gemma-2-27b.json", ", seq_len: 2048")).params_total;
  EXPECT_DOUBLE_EQ(n, 27226704384.0);
  EXPECT_NEAR(n / 27.2e9, 1.0, 0.002);
}

TEST(HfParams, Gemma3_27BTextModel) {
  // The language model of Gemma3ForConditionalGeneration (text_config; the SigLIP vision
  // tower left out), vocab_size at Gemma3TextConfig's 262,208. q and o 5376*32*128 each,
  // k and v 5376*16*128 each, MLP 3*5376*21504, norms 2*5376, q/k norms 2*128
  // (model.qk_norm) -> 412,887,808; x62 + 262208*5376 + 5376 = 27,008,679,680: the "27 B"
  // of the model card.
  const Scenario s = imported("gemma-3-27b.json", ", seq_len: 1024");
  EXPECT_TRUE(s.model.qk_norm);
  EXPECT_DOUBLE_EQ(analyse_step(s).params_total, 27008679680.0);
  EXPECT_NEAR(analyse_step(s).params_total / 27e9, 1.0, kTwoFigures);
  EXPECT_EQ(s.model.seq_len, 1024);
}

TEST(HfParams, GemmaWindowShorterThanTheSequenceIsRefused) {
  // Gemma 2 at its 8192 positions: half its layers see 4096 keys, half all 8192, which one
  // mask for every layer cannot say.
  try {
    imported("gemma-2-9b.json");
    FAIL() << "expected the alternating window to be refused";
  } catch (const InputError& e) {
    EXPECT_EQ(e.key(), "sliding_window");
    EXPECT_NE(std::string(e.what()).find("1 of every 2 layers"), std::string::npos) << e.what();
  }
  // Gemma 3: 5 of every 6 layers through a 1024-token window (sliding_window_pattern 6).
  try {
    imported("gemma-3-27b.json", ", seq_len: 4096");
    FAIL() << "expected the alternating window to be refused";
  } catch (const InputError& e) {
    EXPECT_EQ(e.key(), "sliding_window");
    EXPECT_NE(std::string(e.what()).find("5 of every 6 layers"), std::string::npos) << e.what();
  }
}

TEST(HfParams, Llama3_1RopeScalingChangesNoCost) {
  // Llama 3.1's rope_scaling (rope_type llama3) rescales the rotary frequencies: the same
  // elementwise rotation, so at Llama 3's 8192 tokens the model and its FLOPs are Llama
  // 3's; without seq_len the config's 131,072 positions are the sequence.
  const StepFigures a = analyse_step(imported("llama3.1-8b.json", ", seq_len: 8192"));
  const StepFigures b = analyse_step(imported("llama3-8b.json"));
  EXPECT_DOUBLE_EQ(a.params_total, 8030261248.0);
  EXPECT_DOUBLE_EQ(a.model_flops.value(), b.model_flops.value());
  EXPECT_DOUBLE_EQ(a.hardware_flops.value(), b.hardware_flops.value());
  EXPECT_EQ(imported("llama3.1-8b.json").model.seq_len, 131072);
}

TEST(HfParams, KeysBesideTheConfigOverrideIt) {
  // seq_len beside hf_config replaces max_position_embeddings; a shorter sequence than
  // Mistral's 4096-token window leaves the mask causal.
  const Scenario s = imported("mistral-7b-v0.1.json", ", seq_len: 2048");
  EXPECT_EQ(s.model.seq_len, 2048);
  EXPECT_EQ(s.model.attention_mask, AttentionMask::causal);
  const Scenario w = imported("mistral-7b-v0.1.json", ", seq_len: 8192");
  EXPECT_EQ(w.model.attention_mask, AttentionMask::sliding_window);
  EXPECT_EQ(w.model.attention_window, 4096);
  const Scenario l = imported("llama3-8b.json", ", layers: 16");
  EXPECT_EQ(l.model.layers, 16);
  EXPECT_EQ(l.model.seq_len, 8192);  // max_position_embeddings
}

// The key an import error names, "" when it does not throw.
std::string refused_key(const std::string& json) {
  ModelSpec m;
  try {
    detail::read_hf_config(json, "config.json", std::nullopt, m);
  } catch (const InputError& e) {
    return e.key();
  }
  return "";
}

TEST(HfConfig, RefusesWhatOrreryCannotExpress) {
  const std::string llama =
      R"("architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
         "max_position_embeddings": 32)";
  EXPECT_EQ(refused_key("{" + llama + "}"), "");
  ModelSpec m;
  EXPECT_THROW(detail::read_hf_config("[1]", "c.json", std::nullopt, m), InputError);
  EXPECT_EQ(refused_key(R"({"architectures": ["BertModel"]})"), "architectures");
  EXPECT_EQ(refused_key("{" + llama + R"(, "hidden_act": "gelu"})"), "hidden_act");
  EXPECT_EQ(refused_key("{" + llama + R"(, "attention_bias": true})"), "attention_bias");
  EXPECT_EQ(refused_key("{" + llama + R"(, "head_dim": 32})"), "");  // model.head_dim
  EXPECT_EQ(refused_key("{" + llama + R"(, "n_routed_experts": 8})"), "n_routed_experts");
  EXPECT_EQ(refused_key(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})"),
            "num_hidden_layers");
  EXPECT_EQ(refused_key("{" + llama + R"(, "rope_theta": 1e6, "mlp_bias": false})"), "");
}

TEST(HfConfig, RefusesQwenMoeShapesOrreryCannotExpress) {
  const std::string q =
      R"("architectures": ["Qwen2MoeForCausalLM"], "hidden_size": 64, "num_hidden_layers": 4,
         "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
         "max_position_embeddings": 32, "num_experts": 8, "num_experts_per_tok": 2,
         "moe_intermediate_size": 32)";
  EXPECT_EQ(refused_key("{" + q + R"(, "shared_expert_intermediate_size": 64})"), "");
  EXPECT_EQ(refused_key("{" + q + "}"), "shared_expert_intermediate_size");  // no default
  EXPECT_EQ(refused_key("{" + q + R"(, "shared_expert_intermediate_size": 48})"),
            "shared_expert_intermediate_size");  // not a multiple of 32
  EXPECT_EQ(refused_key("{" + q +
                        R"(, "shared_expert_intermediate_size": 64, "decoder_sparse_step": 2})"),
            "decoder_sparse_step");
  EXPECT_EQ(
      refused_key("{" + q + R"(, "shared_expert_intermediate_size": 64, "mlp_only_layers": [1]})"),
      "mlp_only_layers");
  EXPECT_EQ(refused_key("{" + q + R"(, "shared_expert_intermediate_size": 64,
                                     "mlp_only_layers": [0, 1, 2, 3]})"),
            "mlp_only_layers");  // no MoE layer left
  // Leading dense layers are model.moe.first_dense_layers.
  ModelSpec m;
  detail::read_hf_config("{" + q + R"(, "shared_expert_intermediate_size": 64,
                                     "mlp_only_layers": [0, 1]})",
                         "c.json", std::nullopt, m);
  ASSERT_TRUE(m.moe);
  EXPECT_EQ(m.moe->first_dense_layers, 2);
  // Qwen3-MoE has no shared expert.
  std::string q3 = q;
  q3.replace(q3.find("Qwen2Moe"), 8, "Qwen3Moe");
  EXPECT_EQ(refused_key("{" + q3 + "}"), "");
  EXPECT_EQ(refused_key("{" + q3 + R"(, "shared_expert_intermediate_size": 64})"),
            "shared_expert_intermediate_size");
}

TEST(HfConfig, RefusesGemmaShapesOrreryCannotExpress) {
  const std::string g =
      R"("architectures": ["Gemma3ForCausalLM"], "hidden_size": 64, "num_hidden_layers": 6,
         "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 128,
         "head_dim": 32, "max_position_embeddings": 512, "sliding_window": 512)";
  EXPECT_EQ(refused_key("{" + g + "}"), "");
  EXPECT_EQ(refused_key("{" + g + R"(, "hidden_activation": "silu"})"), "hidden_activation");
  EXPECT_EQ(refused_key("{" + g + R"(, "attention_bias": true})"), "attention_bias");
  EXPECT_EQ(refused_key("{" + g + R"(, "sliding_window": 128})"), "sliding_window");
  // The multimodal wrapper: its language model is text_config, which must be there.
  EXPECT_EQ(refused_key(R"({"architectures": ["Gemma3ForConditionalGeneration"]})"), "text_config");
  EXPECT_EQ(refused_key(R"({"architectures": ["Gemma3ForConditionalGeneration"],
                            "text_config": {)" +
                        g.substr(g.find("\"hidden_size\"")) + "}}"),
            "");
  EXPECT_EQ(refused_key(R"({"architectures": ["Gemma3ForConditionalGeneration"],
                            "audio_config": {}})"),
            "audio_config");
}

TEST(HfConfig, RefusesDeepSeekShapesOrreryCannotExpress) {
  const std::string ds =
      R"("architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 64, "num_hidden_layers": 4,
         "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
         "max_position_embeddings": 32, "kv_lora_rank": 16, "qk_nope_head_dim": 8,
         "qk_rope_head_dim": 4, "v_head_dim": 8, "n_routed_experts": 8,
         "num_experts_per_tok": 2, "moe_intermediate_size": 32, "first_k_dense_replace": 1)";
  EXPECT_EQ(refused_key("{" + ds + R"(, "q_lora_rank": null})"), "");
  EXPECT_EQ(refused_key("{" + ds + "}"), "q_lora_rank");  // missing, not null
  EXPECT_EQ(refused_key("{" + ds + R"(, "q_lora_rank": 8, "moe_layer_freq": 2})"),
            "moe_layer_freq");
  EXPECT_EQ(refused_key("{" + ds + R"(, "q_lora_rank": 8, "num_key_value_heads": 2})"),
            "num_key_value_heads");
  EXPECT_EQ(refused_key("{" + ds + R"(, "q_lora_rank": 8, "topk_method": "random"})"),
            "topk_method");
  EXPECT_EQ(refused_key("{" + ds + R"(, "q_lora_rank": 8, "attention_bias": true})"),
            "attention_bias");
  EXPECT_EQ(refused_key("{" + ds + R"(, "q_lora_rank": 8, "first_k_dense_replace": 4})"),
            "first_k_dense_replace");
  // MTP and the router's weighting are accepted, the MTP module not modelled.
  EXPECT_EQ(refused_key("{" + ds +
                        R"(, "q_lora_rank": 8, "num_nextn_predict_layers": 1,
                             "scoring_func": "sigmoid", "routed_scaling_factor": 2.5})"),
            "");
  // Llama does not take DeepSeek's keys.
  EXPECT_EQ(refused_key(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
         "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
         "vocab_size": 100, "max_position_embeddings": 32, "num_nextn_predict_layers": 1})"),
            "num_nextn_predict_layers");
}

}  // namespace
}  // namespace orrery
