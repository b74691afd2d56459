// The `model:` section (scenario/spec.h, ModelSpec): a transformer's shape with its MoE
// and MLA options, or a CNN's layer table. Whether the shape hangs together is checked by
// validation (scenario/validate.cpp).
#include <fmt/format.h>

#include <string>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

void read_moe(MapReader& r, Origin* origin, ModelSpec& m) {
  if (!r.has("moe")) return;
  if (!m.moe) m.moe = MoeSpec{};
  MoeSpec& e = *m.moe;
  MapReader er(r.node("moe"), r.file(), r.key_path("moe"), kMoeKeys, origin);
  er.read_int("experts", 1, 1 << 16, e.experts);
  er.read_int("top_k", 1, 1 << 16, e.top_k);
  er.read_int("expert_ffn", 1, kMaxWidth, e.expert_ffn);
  er.read_int("shared_experts", 0, 1 << 10, e.shared_experts);
  double cf = 0;
  if (er.read_double("capacity_factor", 0.01, 1000.0, cf)) e.capacity_factor = cf;
  er.read_int("first_dense_layers", 0, kMaxCount, e.first_dense_layers);
  er.read_double("load_imbalance", 1.0, 1000.0, e.load_imbalance);
}

void read_mla(MapReader& r, Origin* origin, ModelSpec& m) {
  if (!r.has("mla")) return;
  if (!m.mla) m.mla = MlaSpec{};
  MlaSpec& a = *m.mla;
  MapReader ar(r.node("mla"), r.file(), r.key_path("mla"), kMlaKeys, origin);
  ar.read_int("q_lora_rank", 0, 1 << 20, a.q_lora_rank);
  ar.read_int("kv_lora_rank", 1, 1 << 20, a.kv_lora_rank);
  ar.read_int("qk_nope_head_dim", 1, 1 << 16, a.qk_nope_head_dim);
  ar.read_int("qk_rope_head_dim", 0, 1 << 16, a.qk_rope_head_dim);
  ar.read_int("v_head_dim", 1, 1 << 16, a.v_head_dim);
}

void read_layer_table(MapReader& r, Origin* origin, ModelSpec& m) {
  if (!r.has("layer_table")) return;
  const YAML::Node table = r.node("layer_table");
  if (!table.IsSequence() || table.size() == 0) {
    r.fail("layer_table", "expected a non-empty list of layers");
  }
  m.cnn_layers.clear();
  for (size_t i = 0; i < table.size(); ++i) {
    const std::string path = fmt::format("{}[{}]", r.key_path("layer_table"), i);
    MapReader lr(table[i], r.file(), path, kCnnRowKeys, nullptr);
    CnnLayer l;
    lr.read_string("name", l.name);
    if (!lr.read_enum("op", names_of<CnnOp>(), l.op)) {
      throw InputError(location_of(r.file(), table[i]), path + ".op", "", "missing key");
    }
    lr.read_int("in", 1, 1 << 20, l.in_channels);
    lr.read_int("out", 1, 1 << 20, l.out_channels);
    lr.read_int("kernel", 1, 64, l.kernel);
    lr.read_int("stride", 1, 64, l.stride);
    lr.read_int("size", 1, 1 << 16, l.out_size);
    const bool needs_in = l.op == CnnOp::conv || l.op == CnnOp::fc;
    if (needs_in && !lr.has("in")) {
      throw InputError(location_of(r.file(), table[i]), path + ".in", "",
                       "missing key: conv and fc rows need 'in' channels");
    }
    if (!lr.has("out")) {
      throw InputError(location_of(r.file(), table[i]), path + ".out", "",
                       "missing key: every row needs 'out' channels");
    }
    if (!lr.has("size")) {
      throw InputError(location_of(r.file(), table[i]), path + ".size", "",
                       "missing key: every row needs its output 'size'");
    }
    m.cnn_layers.push_back(l);
  }
  (*origin)[r.key_path("layer_table")] = location_of(r.file(), table);
}
}  // namespace

void read_model_keys(MapReader& r, Origin* origin, ModelSpec& m) {
  r.read_string("name", m.name);
  r.read_enum("family", names_of<ModelFamily>(), m.family);
  r.read_int("layers", 1, kMaxCount, m.layers);
  r.read_int("hidden", 1, kMaxWidth, m.hidden);
  r.read_int("heads", 1, kMaxCount, m.heads);
  r.read_int("kv_heads", 1, kMaxCount, m.kv_heads);
  r.read_int("ffn", 1, kMaxWidth, m.ffn);
  r.read_int("vocab", 1, kMaxWidth, m.vocab);
  r.read_int("seq_len", 1, kMaxWidth, m.seq_len);
  r.read_enum("activation", names_of<Activation>(), m.activation);
  r.read_enum("norm", names_of<Norm>(), m.norm);
  r.read_enum("position_embedding", names_of<PositionEmbedding>(), m.position_embedding);
  r.read_bool("tied_embeddings", m.tied_embeddings);
  r.read_bool("bias", m.bias);
  r.read_bool("dropout", m.dropout);
  read_moe(r, origin, m);
  read_mla(r, origin, m);
  r.read_int("image_size", 1, 1 << 16, m.image_size);
  read_layer_table(r, origin, m);
}

}  // namespace orrery::detail
