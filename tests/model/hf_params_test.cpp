// Parameter counts of models imported from Hugging Face config.json files
// (tests/scenario/data/hf, each written from the checkpoint's public config; sources in
// that folder's README.md) against hand derivations and published totals.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "model/analysis.h"
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
  // SwiGLU 3*4096*12288, norms 2*4096 -> 192,946,176; x36 + 2*151936*4096 + 4096
  // = 8,190,726,144, the model card's "8.2 B". (Its q/k RMSNorms, 36 * 2*128 = 9,216
  // weights, are left out.)
  EXPECT_DOUBLE_EQ(params_of("qwen3-8b.json"), 8190726144.0);
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
  EXPECT_EQ(refused_key("{" + llama + R"(, "head_dim": 32})"), "head_dim");
  EXPECT_EQ(refused_key("{" + llama + R"(, "n_routed_experts": 8})"), "n_routed_experts");
  EXPECT_EQ(refused_key(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})"),
            "num_hidden_layers");
  EXPECT_EQ(refused_key("{" + llama + R"(, "rope_theta": 1e6, "mlp_bias": false})"), "");
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
