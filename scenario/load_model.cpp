// The `model:` section (scenario/spec.h, ModelSpec): a transformer's shape with its MoE
// and MLA options, or a CNN's layer table. Whether the shape hangs together is checked by
// validation (scenario/validate.cpp).
#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <string>

#include "core/env.h"
#include "scenario/hf_config.h"
#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

using M = ModelSpec;
using namespace field;

const FieldTable<MoeSpec>& moe_fields() {
  using E = MoeSpec;
  static const FieldTable<E> table = {
      {"experts", whole(&E::experts, 1, 1 << 16)},
      {"top_k", whole(&E::top_k, 1, 1 << 16)},
      {"expert_ffn", whole(&E::expert_ffn, 1, kMaxWidth)},
      {"shared_experts", whole(&E::shared_experts, 0, 1 << 10)},
      {"capacity_factor", number(&E::capacity_factor, 0.01, 1000.0)},
      {"first_dense_layers", whole(&E::first_dense_layers, 0, kMaxCount)},
      {"load_imbalance", number(&E::load_imbalance, 1.0, 1000.0)},
      {"node_limit", whole(&E::node_limit, 1, 1 << 16)},
      {"router_groups", whole(&E::router_groups, 1, 1 << 16)},
      {"router_group_topk", whole(&E::router_group_topk, 1, 1 << 16)},
      {"dispatch_dtype", choice(&E::dispatch_dtype)},
      // The combine sums expert outputs: DeepEP's combine and DeepSeek-V3 (report 3.3)
      // keep it in 16 bits, so fp8 is no choice here.
      {"combine_dtype",
       choice(&E::combine_dtype, {{"bf16", MoeSpec::Wire::bf16}, {"fp32", MoeSpec::Wire::fp32}})},
      {"pad_to_capacity", flag(&E::pad_to_capacity)},
      {"aux_loss", flag(&E::aux_loss)},
      {"shared_expert_overlap", flag(&E::shared_expert_overlap)},
  };
  return table;
}

const FieldTable<MlaSpec>& mla_fields() {
  using A = MlaSpec;
  static const FieldTable<A> table = {
      {"q_lora_rank", whole(&A::q_lora_rank, 0, 1 << 20)},
      {"kv_lora_rank", whole(&A::kv_lora_rank, 1, 1 << 20)},
      {"qk_nope_head_dim", whole(&A::qk_nope_head_dim, 1, 1 << 16)},
      {"qk_rope_head_dim", whole(&A::qk_rope_head_dim, 0, 1 << 16)},
      {"v_head_dim", whole(&A::v_head_dim, 1, 1 << 16)},
  };
  return table;
}

// The keys a layer_table row must have, checked once the row is read.
constexpr const char* kIn = "in";
constexpr const char* kOut = "out";
constexpr const char* kSize = "size";

// One row of model.layer_table; op is required.
const FieldTable<CnnLayer>& cnn_row_fields() {
  using L = CnnLayer;
  static const FieldTable<L> table = {
      {"name", text(&L::name)},
      {"op", required(choice(&L::op))},
      {kIn, whole(&L::in_channels, 1, 1 << 20)},
      {kOut, whole(&L::out_channels, 1, 1 << 20)},
      {"kernel", whole(&L::kernel, 1, 64)},
      {"stride", whole(&L::stride, 1, 64)},
      {kSize, whole(&L::out_size, 1, 1 << 16)},
  };
  return table;
}

// A non-empty list of rows; it replaces any table read before (a preset's). The rows'
// keys record no origin, the list's key does.
void read_layer_table(MapReader& r, const std::string& key, Origin* origin, M& m) {
  if (!r.has(key)) return;
  const YAML::Node table = r.node(key);
  if (!table.IsSequence() || table.size() == 0) {
    r.fail(key, "expected a non-empty list of layers");
  }
  m.cnn_layers.clear();
  for (size_t i = 0; i < table.size(); ++i) {
    const std::string path = fmt::format("{}[{}]", r.key_path(key), i);
    MapReader lr(table[i], r.file(), path, keys_of(cnn_row_fields()), nullptr);
    CnnLayer l;
    read_fields(lr, nullptr, cnn_row_fields(), l);
    auto missing = [&](const char* row_key, const char* why) {
      throw InputError(location_of(r.file(), table[i]), lr.key_path(row_key), "", why);
    };
    const bool needs_in = l.op == CnnOp::conv || l.op == CnnOp::fc;
    if (needs_in && !lr.has(kIn)) missing(kIn, "missing key: conv and fc rows need 'in' channels");
    if (!lr.has(kOut)) missing(kOut, "missing key: every row needs 'out' channels");
    if (!lr.has(kSize)) missing(kSize, "missing key: every row needs its output 'size'");
    m.cnn_layers.push_back(l);
  }
  (*origin)[r.key_path(key)] = location_of(r.file(), table);
}

// model.hf_config: a Hugging Face config.json, its path relative to the scenario file,
// read before the keys written beside it, which override what it sets (as a preset's).
void read_hf_config_key(MapReader& r, const std::string& key, Origin* origin, M& m) {
  if (!r.has(key)) return;
  if (r.has("preset")) {
    r.fail(key, "a model is named by a preset or by a Hugging Face config, not both");
  }
  std::string path;
  r.read_string(key, path);
  std::filesystem::path full(path);
  if (full.is_relative()) full = std::filesystem::path(r.file()).parent_path() / full;
  const std::string text =
      read_file_or_throw(default_env(), full.string(), "the Hugging Face config");
  std::optional<std::int64_t> seq_len;
  if (r.has("seq_len")) {
    std::int64_t v = 0;
    r.read_int("seq_len", 1, kMaxWidth, v);
    seq_len = v;
  }
  const InputLocation at = location_of(r.file(), r.node(key));
  for (const std::string& k : read_hf_config(text, full.string(), seq_len, m)) {
    (*origin)[r.key_path(k)] = at;
  }
}

// Every key of model:, in the order its unknown-key error lists them.
const FieldTable<M>& model_fields() {
  static const FieldTable<M> table = {
      {"preset", by_caller<M>()},
      {"hf_config", read_hf_config_key},
      {"name", text(&M::name)},
      {"family", choice(&M::family)},
      {"layers", whole(&M::layers, 1, kMaxCount)},
      {"hidden", whole(&M::hidden, 1, kMaxWidth)},
      {"heads", whole(&M::heads, 1, kMaxCount)},
      {"kv_heads", whole(&M::kv_heads, 1, kMaxCount)},
      {"head_dim", whole(&M::head_width, 1, 1 << 16)},
      {"ffn", whole(&M::ffn, 1, kMaxWidth)},
      {"vocab", whole(&M::vocab, 1, kMaxWidth)},
      {"seq_len", whole(&M::seq_len, 1, kMaxWidth)},
      {"activation", choice(&M::activation)},
      {"norm", choice(&M::norm)},
      {"position_embedding", choice(&M::position_embedding)},
      {"tied_embeddings", flag(&M::tied_embeddings)},
      {"bias", flag(&M::bias)},
      {"dropout", flag(&M::dropout)},
      {"qk_norm", flag(&M::qk_norm)},
      {"mtp_layers", whole(&M::mtp_layers, 0, 16)},
      {"head", choice(&M::head)},
      {"labels", whole(&M::labels, 1, kMaxCount)},
      {"attention_mask", choice(&M::attention_mask)},
      {"attention_window", whole(&M::attention_window, 1, kMaxWidth)},
      {"document_length", whole(&M::document_length, 1, kMaxWidth)},
      {"moe", nested(&M::moe, moe_fields, false)},
      {"mla", nested(&M::mla, mla_fields, false)},
      {"image_size", whole(&M::image_size, 1, 1 << 16)},
      {"layer_table", read_layer_table},
  };
  return table;
}

}  // namespace

KeyLists model_key_lists() {
  return {{"model", model_keys()},
          {"model.moe", keys_of(moe_fields())},
          {"model.mla", keys_of(mla_fields())},
          {"model.layer_table[]", keys_of(cnn_row_fields())}};
}

std::vector<std::string> model_keys() { return keys_of(model_fields()); }

void read_model_keys(MapReader& r, Origin* origin, ModelSpec& m) {
  read_fields(r, origin, model_fields(), m);
}

}  // namespace orrery::detail
