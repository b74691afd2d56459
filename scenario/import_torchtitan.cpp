// `orrery import torchtitan` (scenario/import_torchtitan.h). torchtitan's job configs were
// TOML until pytorch/torchtitan replaced them with Python dataclasses (9810191b, February
// 2026); key names and defaults here are those of v0.2.1 (81af8833; v0.2.2, 73a0e697 of
// 2026-02-20, still reads TOML, adds context_parallel_load_balancer and turns
// preserve_rng_state on, neither of which orrery reads): torchtitan/config/job_config.py (Model.name "llama3", flavor
// "debugmodel", converters []; Training.local_batch_size 8, global_batch_size -1 (local
// batch x data-parallel degree), seq_len 2048, mixed_precision_param "bfloat16";
// Parallelism.data_parallel_replicate_degree 1, data_parallel_shard_degree -1 (the GPUs
// left), fsdp_reshard_after_forward "default", tensor_/pipeline_/context_/
// expert_parallel_degree 1, pipeline_parallel_first/last_stage_less_layers 1,
// pipeline_parallel_schedule "1F1B", pipeline_parallel_microbatch_size 1;
// ActivationCheckpoint.mode "selective", selective_ac_option "2"; Compile.enable false,
// components ["model", "loss"]; Optimizer.name "AdamW", implementation "fused").
// The model comes from torchtitan/models/llama3/__init__.py (llama3_args) and
// model/args.py, model/model.py (TransformerModelArgs, FeedForward) of the same commit.
#include "scenario/import_torchtitan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "scenario/hf_config.h"
#include "scenario/import_common.h"
#include "scenario/spec.h"

namespace orrery {
namespace {

// ---- A strict reader for the TOML that torchtitan's configs use: [table] and
// [dotted.table] headers, `bare_key = value` lines, values that are strings ("..." or
// '...'), integers, floats, booleans and arrays of those (over several lines too), and
// comments. Anything else (arrays of tables, inline tables, dotted or quoted keys, dates,
// a key given twice) is an error naming the line.

struct TomlValue {
  enum class Kind { string, integer, floating, boolean, array } kind = Kind::string;
  std::string text;  // a string's contents, else the value as written
  std::int64_t integer = 0;
  std::vector<TomlValue> items;  // an array's
  int line = 0;
};

class TomlReader {
 public:
  TomlReader(std::string file, const std::string& text) : file_(std::move(file)) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    std::string table;
    std::set<std::string> tables;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const int line = static_cast<int>(i) + 1;
      std::string l = trim(strip_comment(lines[i]));
      if (l.empty()) continue;
      if (l[0] == '[') {
        if (l.rfind("[[", 0) == 0 || l.back() != ']') {
          fail(line, l, "", "an array of tables or a malformed header");
        }
        table = trim(l.substr(1, l.size() - 2));
        for (std::size_t b = 0, e; b <= table.size(); b = e + 1) {
          e = std::min(table.find('.', b), table.size());
          if (!bare(table.substr(b, e - b))) fail(line, l, "", "a table name that is not bare");
        }
        if (!tables.insert(table).second) fail(line, l, "", "a table given twice");
        continue;
      }
      const auto eq = l.find('=');
      const std::string key = eq == std::string::npos ? l : trim(l.substr(0, eq));
      if (eq == std::string::npos || !bare(key)) {
        fail(line, l, "", "a line that is not `bare_key = value`");
      }
      std::string value = trim(l.substr(eq + 1));
      // An array may go on over the next lines until its brackets close.
      while (!value.empty() && value[0] == '[' && depth(value) > 0 && i + 1 < lines.size()) {
        value.push_back(' ');
        value.append(trim(strip_comment(lines[++i])));
      }
      const std::string path = table.empty() ? key : table + "." + key;
      std::size_t pos = 0;
      TomlValue v = parse(value, pos, path, line);
      if (trim(value.substr(pos)) != "") fail(line, path, value, "text after the value");
      v.line = line;
      if (values_.count(path)) fail(line, path, value, "a key given twice");
      values_[path] = v;
      order_.push_back(path);
    }
  }

  const std::map<std::string, TomlValue>& values() const { return values_; }
  const std::vector<std::string>& order() const { return order_; }

 private:
  [[noreturn]] void fail(int line, const std::string& key, const std::string& value,
                         const std::string& what) const {
    throw InputError({file_, line}, key, value,
                     "not in the TOML that orrery reads (" + what +
                         "): torchtitan's configs use [tables], bare keys, strings, numbers, "
                         "booleans and arrays");
  }

  static std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
  }
  static bool bare(const std::string& k) {
    if (k.empty()) return false;
    for (const char c : k)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
    return true;
  }
  // Calls `f(i)` for each character of `l` outside a string, in order, until it returns
  // true; the index where it did, or npos.
  template <class F>
  static std::size_t outside_strings(const std::string& l, F f) {
    char quote = 0;
    for (std::size_t i = 0; i < l.size(); ++i) {
      const char c = l[i];
      if (quote) {
        if (c == '\\' && quote == '"')
          ++i;
        else if (c == quote)
          quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (f(i)) {
        return i;
      }
    }
    return std::string::npos;
  }
  // The line up to a `#` outside a string.
  static std::string strip_comment(const std::string& l) {
    const std::size_t hash = outside_strings(l, [&](std::size_t i) { return l[i] == '#'; });
    return hash == std::string::npos ? l : l.substr(0, hash);
  }
  // Open brackets outside strings.
  static int depth(const std::string& v) {
    int d = 0;
    outside_strings(v, [&](std::size_t i) {
      d += v[i] == '[' ? 1 : v[i] == ']' ? -1 : 0;
      return false;
    });
    return d;
  }

  TomlValue parse(const std::string& s, std::size_t& pos, const std::string& path, int line) const {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
    TomlValue v;
    if (pos >= s.size()) fail(line, path, s, "a missing value");
    const std::size_t begin = pos;
    const char c = s[pos];
    if (c == '"' || c == '\'') {
      ++pos;
      while (pos < s.size() && s[pos] != c) {
        if (c == '"' && s[pos] == '\\') {
          if (pos + 1 >= s.size()) break;
          const char e = s[++pos];
          if (e == '"' || e == '\\')
            v.text += e;
          else if (e == 'n')
            v.text += '\n';
          else if (e == 't')
            v.text += '\t';
          else
            fail(line, path, s, "an escape other than \\\" \\\\ \\n \\t");
        } else {
          v.text += s[pos];
        }
        ++pos;
      }
      if (pos >= s.size()) fail(line, path, s, "an unclosed string");
      ++pos;
      v.kind = TomlValue::Kind::string;
      return v;
    }
    if (c == '[') {
      ++pos;
      v.kind = TomlValue::Kind::array;
      for (;;) {
        while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
        if (pos < s.size() && s[pos] == ']') break;
        v.items.push_back(parse(s, pos, path, line));
        while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t')) ++pos;
        if (pos < s.size() && s[pos] == ',') {
          ++pos;
          continue;
        }
        if (pos < s.size() && s[pos] == ']') break;
        fail(line, path, s, "a malformed array");
      }
      ++pos;
      v.text = s.substr(begin, pos - begin);
      return v;
    }
    while (pos < s.size() && s[pos] != ',' && s[pos] != ']' && s[pos] != ' ' && s[pos] != '\t')
      ++pos;
    v.text = s.substr(begin, pos - begin);
    if (v.text == "true" || v.text == "false") {
      v.kind = TomlValue::Kind::boolean;
      return v;
    }
    std::string digits;
    for (const char d : v.text)
      if (d != '_') digits += d;
    bool is_float = false, ok = !digits.empty();
    for (std::size_t i = 0; i < digits.size() && ok; ++i) {
      const char d = digits[i];
      if (std::isdigit(static_cast<unsigned char>(d))) continue;
      if ((d == '+' || d == '-') && (i == 0 || digits[i - 1] == 'e' || digits[i - 1] == 'E')) {
        continue;
      }
      if (d == '.' || d == 'e' || d == 'E') {
        is_float = true;
        continue;
      }
      ok = false;
    }
    if (!ok) fail(line, path, s, "a value that is no string, number, boolean or array");
    try {
      std::size_t used = 0;
      if (is_float) {
        (void)std::stod(digits, &used);
        v.kind = TomlValue::Kind::floating;
      } else {
        v.integer = std::stoll(digits, &used);
        v.kind = TomlValue::Kind::integer;
      }
      if (used != digits.size()) ok = false;
    } catch (const std::exception&) {
      ok = false;
    }
    if (!ok) fail(line, path, v.text, "a malformed number");
    return v;
  }

  std::string file_;
  std::map<std::string, TomlValue> values_;
  std::vector<std::string> order_;
};

// ---- The job config's keys, each read at most once, with torchtitan's defaults.
class Job {
 public:
  Job(std::string file, const TomlReader& toml) : file_(std::move(file)), toml_(toml) {}

  const TomlValue* find(const std::string& key) {
    read_.insert(key);
    const auto v = toml_.values().find(key);
    return v == toml_.values().end() ? nullptr : &v->second;
  }
  std::int64_t integer(const std::string& key, std::int64_t fallback, std::int64_t lo) {
    const TomlValue* v = find(key);
    if (!v) return fallback;
    if (v->kind != TomlValue::Kind::integer || v->integer < lo) {
      refuse(key, fmt::format("expected a whole number >= {}", lo));
    }
    return v->integer;
  }
  std::string text(const std::string& key, const std::string& fallback) {
    const TomlValue* v = find(key);
    if (!v) return fallback;
    if (v->kind != TomlValue::Kind::string) refuse(key, "expected a string");
    return v->text;
  }
  bool boolean(const std::string& key, bool fallback) {
    const TomlValue* v = find(key);
    if (!v) return fallback;
    if (v->kind != TomlValue::Kind::boolean) refuse(key, "expected true or false");
    return v->text == "true";
  }
  bool given(const std::string& key) const { return toml_.values().count(key) > 0; }
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const {
    const auto v = toml_.values().find(key);
    if (v == toml_.values().end()) throw InputError({file_, std::nullopt}, key, "", why);
    throw InputError({file_, v->second.line}, key, v->second.text, why);
  }
  // "key = value" of every key not read, in the file's order.
  std::vector<std::string> unread() const {
    std::vector<std::string> out;
    for (const auto& k : toml_.order()) {
      if (read_.count(k)) continue;
      const TomlValue& v = toml_.values().at(k);
      out.push_back(k + " = " +
                    (v.kind == TomlValue::Kind::string ? "\"" + v.text + "\"" : v.text));
    }
    return out;
  }
  // Where the source comment names a default.
  std::string source(const std::string& key, const std::string& fallback) const {
    return given(key) ? key : "default of " + key + ": " + fallback;
  }

 private:
  std::string file_;
  const TomlReader& toml_;
  std::set<std::string> read_;
};

// The llama3 flavors a job names (torchtitan/models/llama3/__init__.py, llama3_args, at
// v0.2.1): dim, n_layers, n_heads, n_kv_heads, ffn_dim_multiplier, multiple_of.
struct Flavor {
  const char* name;
  int dim, layers, heads, kv_heads;
  double ffn_multiplier;
  int multiple_of;
};
constexpr Flavor kLlama3Flavors[] = {
    {"8B", 4096, 32, 32, 8, 1.3, 1024},
    {"70B", 8192, 80, 64, 8, 1.3, 4096},
    {"405B", 16384, 126, 128, 8, 1.2, 4096},
};

// The widths of a dense model's linear layers that torchao's float8 needs as multiples of
// 16 (module_filter_fn in components/quantization/utils.py skips any other nn.Linear).
struct LinearDims {
  std::int64_t hidden = 0, q = 0, kv = 0, ffn = 0, vocab = 0;
};

// training.fp8 for torchao's float8 linear layers as torchtitan v0.2.1 sets them up
// (components/quantization/float8.py, Float8LinearConverter; the [quantize.linear.float8]
// keys of config/job_config.py): recipe_name unset is torchao's dynamic tensor-wise scaling
// (e4m3 inputs and weights, e5m2 output gradients: scaling current, format hybrid),
// "rowwise" and "rowwise_with_gw_hp" torchao's row-wise recipes; every nn.Linear whose
// widths are multiples of 16 is converted but those whose fully qualified name contains an
// entry of filter_fqns (components/quantization/utils.py, module_filter_fn), so the LM head
// ("output") is fp8 unless filtered; a Float8Linear casts its weight on every call
// (weight_cache false); enable_fsdp_float8_all_gather (asserted against any recipe_name)
// gathers the FSDP2 shards in float8 where the shard degree is above 1. Tensor-parallel
// gathers stay bf16: the llama3 parallelize.py turns torchao's float8 TP styles on only for
// a converter named "float8", a name v0.2.1's registry does not hold.
std::string float8_section(Job& job, bool sharded, int layers, const LinearDims& d) {
  const std::string key = "quantize.linear.float8.";
  const std::string recipe = job.text(key + "recipe_name", "");
  std::vector<std::string> keys, from;
  if (recipe.empty() || recipe == "tensorwise") {
    keys = {"format: hybrid", "scaling: current"};
    from.push_back(job.given(key + "recipe_name") ? key + "recipe_name tensorwise"
                                                  : "no recipe_name: torchao tensor-wise");
    // Without a recipe the converter passes emulate on: the GEMMs then run emulated in
    // high precision, not at the fp8 rate (a recipe_name ignores it).
    if (job.boolean(key + "emulate", false) && recipe.empty()) {
      job.refuse(key + "emulate",
                 "emulated float8 GEMMs run in high precision: orrery times fp8 at the fp8 rate");
    }
  } else if (recipe == "rowwise" || recipe == "rowwise_with_gw_hp") {
    keys = {recipe == "rowwise" ? "scaling: rowwise" : "scaling: rowwise_gw_hp"};
    from.push_back(key + "recipe_name " + recipe);
  } else {
    job.refuse(key + "recipe_name", "torchtitan takes tensorwise, rowwise or rowwise_with_gw_hp");
  }
  // The linear layers of every llama3 block (model/model.py) and the head, by the groups of
  // training.fp8.gemms; a group is kept or filtered whole.
  static const std::pair<const char*, const char*> kBlock[] = {
      {"attention.wq", "qkv"},    {"attention.wk", "qkv"},    {"attention.wv", "qkv"},
      {"attention.wo", "proj"},   {"feed_forward.w1", "fc1"}, {"feed_forward.w3", "fc1"},
      {"feed_forward.w2", "fc2"}};
  std::vector<std::string> entries;
  if (const TomlValue* filters = job.find(key + "filter_fqns")) {
    if (filters->kind != TomlValue::Kind::array) {
      job.refuse(key + "filter_fqns", "expected an array of module names");
    }
    for (const TomlValue& e : filters->items) {
      if (e.text == "auto_filter_small_kn") {
        job.refuse(key + "filter_fqns",
                   "torchao's size filter (auto_filter_small_kn) has no form in orrery's gemms");
      }
      entries.push_back(e.text);
    }
  }
  auto filtered = [&](const std::string& fqn) {
    for (const std::string& e : entries)
      if (fqn.find(e) != std::string::npos) return true;
    return false;
  };
  std::map<std::string, std::pair<int, int>> hits;  // group -> (filtered, modules)
  for (int i = 0; i < layers; ++i) {
    for (const auto& [module, group] : kBlock) {
      auto& h = hits[group];
      ++h.second;
      if (filtered(fmt::format("layers.{}.{}", i, module))) ++h.first;
    }
  }
  hits["head"] = {filtered("output") ? 1 : 0, 1};
  for (const auto& [group, h] : hits) {
    if (h.first > 0 && h.first < h.second) {
      job.refuse(key + "filter_fqns",
                 fmt::format("filters {} of the {} linear layers of group {} (wq, wk, wv are "
                             "qkv; w1, w3 are fc1): orrery's gemms keep a group whole in every "
                             "block",
                             h.first, h.second, group));
    }
  }
  // Widths that are not multiples of 16 leave the layer in bf16 (module_filter_fn).
  auto aligned = [](std::initializer_list<std::int64_t> widths) {
    for (const std::int64_t w : widths)
      if (w % 16 != 0) return false;
    return true;
  };
  const std::map<std::string, bool> fits = {
      {"qkv", aligned({d.hidden, d.q, d.kv})}, {"proj", aligned({d.q, d.hidden})},
      {"fc1", aligned({d.hidden, d.ffn})},      {"fc2", aligned({d.ffn, d.hidden})},
      {"head", aligned({d.hidden, d.vocab})}};
  std::string gemms;
  for (const char* g : {"qkv", "proj", "fc1", "fc2", "head"}) {
    if (hits[g].first > 0 || !fits.at(g)) continue;
    gemms += std::string(gemms.empty() ? "" : ", ") + g;
  }
  if (gemms.empty()) job.refuse(key + "filter_fqns", "leaves no linear layer in float8");
  keys.push_back("gemms: [" + gemms + "]");
  std::string which = entries.empty() ? "no filter_fqns: every nn.Linear" : key + "filter_fqns";
  for (const auto& [g, ok] : fits)
    if (!ok) which += ", " + g + " widths not multiples of 16";
  from.push_back(which);
  keys.push_back("weight_cache: false");
  from.push_back("a Float8Linear casts its weight on every call");
  if (job.boolean(key + "enable_fsdp_float8_all_gather", false)) {
    if (job.given(key + "recipe_name")) {
      job.refuse(key + "enable_fsdp_float8_all_gather",
                 "torchtitan asserts it is not set with a recipe_name");
    }
    if (sharded) {
      keys.push_back("communication: {param_allgather: fp8}");
      from.push_back(key + "enable_fsdp_float8_all_gather");
    }
  }
  return detail::flow_line("fp8", keys, from);
}

}  // namespace

std::string import_torchtitan(const std::string& path, const std::string& cluster, int nodes,
                              const std::string& hf_config) {
  detail::check_system_preset("orrery import torchtitan", "--cluster", cluster);
  const TomlReader toml(path, detail::read_import_file(path, "torchtitan config"));
  Job job(path, toml);
  using detail::scenario_line;
  std::string m, p, t;

  // Model: a llama3 flavor, or the Hugging Face config given for the model the job names.
  const std::string name = job.text("model.name", "llama3");
  const std::string flavor = job.text("model.flavor", "debugmodel");
  // Converters: torchao's float8 linear layers (quantize.linear.float8, the name
  // components/quantization/float8.py registers at v0.2.1) are read; the others (mx,
  // grouped GEMMs) are refused, and so is "float8", v0.1's name, which v0.2.1's registry
  // does not hold (ModelConvertersContainer looks names up directly,
  // protocols/model_converter.py), though its own llama3_405b.toml still writes it.
  bool float8 = false;
  if (const TomlValue* c = job.find("model.converters")) {
    if (c->kind != TomlValue::Kind::array) job.refuse("model.converters", "expected an array");
    for (const TomlValue& e : c->items) {
      if (e.text == "float8") {
        job.refuse("model.converters",
                   "torchtitan v0.2.1 registers no converter named float8 (its name since v0.2 "
                   "is quantize.linear.float8; the job would stop with a KeyError)");
      }
      if (e.text != "quantize.linear.float8") {
        job.refuse("model.converters",
                   "orrery import maps the quantize.linear.float8 converter only; mx and "
                   "grouped-GEMM converters: write training.precision and training.fp8 by hand");
      }
      if (float8) job.refuse("model.converters", "names the float8 converter twice");
      float8 = true;
    }
  }
  const std::int64_t seq = job.integer("training.seq_len", 2048, 1);
  int layers = 0;
  LinearDims dims;  // for float8's multiples of 16
  if (!hf_config.empty()) {
    ModelSpec spec;
    detail::read_hf_config(detail::read_import_file(hf_config, "Hugging Face config"), hf_config,
                           seq, spec);
    layers = spec.layers;
    const std::int64_t head_dim = spec.head_dim();
    dims = {spec.hidden, spec.heads * head_dim, spec.kv_heads * head_dim, spec.ffn, spec.vocab};
    if (float8 && spec.moe) {
      job.refuse("model.converters",
                 "orrery import maps float8 linear layers of dense models only: write "
                 "training.fp8 (with its gemms) by hand for a mixture of experts");
    }
    m += scenario_line("hf_config", hf_config,
                       fmt::format("--hf-config, for model.name {} flavor {}", name, flavor));
    m += scenario_line("seq_len", std::to_string(seq), job.source("training.seq_len", "2048"));
  } else {
    if (name != "llama3") {
      job.refuse("model.name",
                 "orrery knows torchtitan's llama3 flavors: give the model's Hugging Face "
                 "config with --hf-config");
    }
    const Flavor* f = nullptr;
    for (const Flavor& candidate : kLlama3Flavors)
      if (flavor == candidate.name) f = &candidate;
    if (!f) {
      job.refuse("model.flavor",
                 "orrery knows the llama3 flavors 8B, 70B and 405B: give the model's Hugging "
                 "Face config with --hf-config");
    }
    layers = f->layers;
    dims = {f->dim, f->dim, static_cast<std::int64_t>(f->kv_heads) * (f->dim / f->heads), 0,
            128256};
    // FeedForward (model/model.py): hidden 4 dim, then int(2/3 of it), int(x
    // ffn_dim_multiplier), rounded up to a multiple of multiple_of.
    std::int64_t ffn = 2 * (4 * static_cast<std::int64_t>(f->dim)) / 3;
    ffn = static_cast<std::int64_t>(f->ffn_multiplier * static_cast<double>(ffn));
    ffn = (ffn + f->multiple_of - 1) / f->multiple_of * f->multiple_of;
    dims.ffn = ffn;
    const std::string from = fmt::format("model.flavor {} (torchtitan llama3_args)", f->name);
    m += scenario_line("family", "decoder", "torchtitan llama3 Transformer");
    m += scenario_line("layers", std::to_string(f->layers), from + ": n_layers");
    m += scenario_line("hidden", std::to_string(f->dim), from + ": dim");
    m += scenario_line("heads", std::to_string(f->heads), from + ": n_heads");
    m += scenario_line("kv_heads", std::to_string(f->kv_heads), from + ": n_kv_heads");
    m += scenario_line(
        "ffn", std::to_string(ffn),
        fmt::format("{}: FeedForward of 4 dim: int(2/3 x), int(x {}), up to a multiple of {}", from,
                    f->ffn_multiplier, f->multiple_of));
    m += scenario_line("vocab", "128256", "TransformerModelArgs.vocab_size (model/args.py)");
    m += scenario_line("seq_len", std::to_string(seq), job.source("training.seq_len", "2048"));
    m += scenario_line("activation", "swiglu", "llama3 FeedForward: silu(w1 x) * w3 x");
    m += scenario_line("norm", "rmsnorm", "llama3 RMSNorm");
    m += scenario_line("position_embedding", "rope", "llama3 rotary embeddings");
    m += scenario_line("tied_embeddings", "false", "llama3: output separate from tok_embeddings");
    m += scenario_line("bias", "false", "llama3 nn.Linear(bias=False)");
    m += scenario_line("dropout", "false", "llama3 has no dropout");
  }

  // Layout: replicate x shard x tp x pp x cp fill the GPUs (torchtitan ParallelDims).
  const std::int64_t gpus =
      static_cast<std::int64_t>(nodes) * detail::system_gpus_per_node(cluster);
  const std::int64_t replicate = job.integer("parallelism.data_parallel_replicate_degree", 1, 1);
  const std::int64_t tp = job.integer("parallelism.tensor_parallel_degree", 1, 1);
  const std::int64_t pp = job.integer("parallelism.pipeline_parallel_degree", 1, 1);
  const std::int64_t cp = job.integer("parallelism.context_parallel_degree", 1, 1);
  if (job.integer("parallelism.expert_parallel_degree", 1, 1) != 1) {
    job.refuse("parallelism.expert_parallel_degree",
               "orrery import does not map expert parallelism");
  }
  std::int64_t shard = job.integer("parallelism.data_parallel_shard_degree", -1, -1);
  const std::int64_t others = replicate * tp * pp * cp;
  const std::string shard_key = "parallelism.data_parallel_shard_degree";
  if (shard == 0) job.refuse(shard_key, "expected -1 or a whole number >= 1");
  if (shard == -1) {
    if (gpus % others != 0) {
      job.refuse(
          shard_key,
          fmt::format("the {} GPUs do not divide by replicate x tp x pp x cp = {}", gpus, others));
    }
    shard = gpus / others;
  } else if (shard * others != gpus) {
    job.refuse(shard_key, fmt::format("replicate x shard x tp x pp x cp = {}, not the {} GPUs "
                                      "of --nodes x the system's GPUs per node",
                                      shard * others, gpus));
  }
  const std::int64_t dp = replicate * shard;
  p += scenario_line("tp", std::to_string(tp),
                     job.source("parallelism.tensor_parallel_degree", "1"));
  p += scenario_line("pp", std::to_string(pp),
                     job.source("parallelism.pipeline_parallel_degree", "1"));
  p += scenario_line("cp", std::to_string(cp),
                     job.source("parallelism.context_parallel_degree", "1"));
  p += scenario_line(
      "dp", std::to_string(dp),
      fmt::format("data_parallel_replicate_degree {} x data_parallel_shard_degree {}{}", replicate,
                  shard,
                  !job.given(shard_key)                       ? " (default -1: the GPUs left)"
                  : toml.values().at(shard_key).integer == -1 ? " (-1: the GPUs left)"
                                                              : ""));
  if (tp > 1) {
    p += scenario_line("sequence_parallel", "true",
                       "torchtitan's TP plan shards the norms over the sequence "
                       "(SequenceParallel, models/llama3/infra/parallelize.py)");
  }
  // FSDP2 (fully_shard) over the shard and context-parallel ranks; with replicas, HSDP.
  const bool fsdp = shard > 1 || cp > 1;
  // Replicas alone are DDP, which torchtitan runs only as the job's one dimension
  // (models/llama3/infra/parallelize.py at v0.2.1: "DDP has not supported > 1D parallelism").
  if (!fsdp && replicate > 1 && (tp > 1 || pp > 1)) {
    job.refuse("parallelism.data_parallel_replicate_degree",
               "DDP with tensor or pipeline parallelism: torchtitan raises for it");
  }
  // Sequence parallelism splits the sequence over tp and context parallelism's load
  // balancing over 2 x cp (ParallelDims.seq_len_divisor, asserted in parallelize.py).
  if (seq % (tp * cp * 2) != 0) {
    job.refuse("training.seq_len",
               fmt::format("not a multiple of tp x 2 x cp = {}: torchtitan asserts it",
                           tp * cp * 2));
  }
  const std::string reshard = job.text("parallelism.fsdp_reshard_after_forward", "default");
  if (reshard != "default" && reshard != "always" && reshard != "never") {
    job.refuse("parallelism.fsdp_reshard_after_forward",
               "torchtitan takes default, always or never");
  }
  if (fsdp) {
    p += scenario_line("zero_stage", "3", "FSDP2 fully_shard over data_parallel_shard_degree x cp");
    if (replicate > 1) {
      const int per_node = detail::system_gpus_per_node(cluster);
      if (shard * cp * tp != per_node) {
        job.refuse("parallelism.data_parallel_replicate_degree",
                   fmt::format("orrery's hybrid sharding shards within a node: shard x cp x tp "
                               "must be the node's {} GPUs",
                               per_node));
      }
      p += scenario_line("sharding", "hybrid", "data_parallel_replicate_degree > 1: HSDP");
    }
    // "default" reshards unless pipeline parallelism is on (apply_fsdp, parallelize.py).
    const bool after = reshard == "always" || (reshard == "default" && pp == 1);
    p += scenario_line("reshard_after_forward", after ? "true" : "false",
                       job.source("parallelism.fsdp_reshard_after_forward", "default") +
                           (reshard == "default" ? (pp == 1 ? ": no pp" : ": with pp") : ""));
    // The [norm, output] unit reshards only under "always" (apply_fsdp_to_decoder,
    // torchtitan/distributed/fsdp.py); training.stack fsdp2 resolves it to false otherwise.
    if (reshard == "always") {
      p += scenario_line("reshard_output_after_forward", "true",
                         job.source("parallelism.fsdp_reshard_after_forward", "default") +
                             ": the [norm, output] unit too");
    }
  }
  const std::int64_t local = job.integer("training.local_batch_size", 8, 1);
  std::int64_t microbatch = local;
  std::string microbatch_source = job.source("training.local_batch_size", "8");
  if (pp > 1) {
    // PyTorch's get_schedule_class compares names case-insensitively.
    std::string schedule = job.text("parallelism.pipeline_parallel_schedule", "1F1B");
    for (char& ch : schedule) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    const std::string key = "parallelism.pipeline_parallel_schedule";
    if (schedule == "1f1b") {
      p += scenario_line("schedule", "1f1b", job.source(key, "1F1B"));
    } else if (schedule == "gpipe") {
      p += scenario_line("schedule", "gpipe", key);
    } else {
      job.refuse(key, "orrery maps torchtitan's one-stage-per-rank schedules 1F1B and GPipe");
    }
    if (job.given("parallelism.module_fqns_per_model_part")) {
      job.refuse("parallelism.module_fqns_per_model_part",
                 "an explicit split of the modules over the stages: write "
                 "parallelism.pipeline_layout by hand");
    }
    if (job.given("parallelism.pipeline_parallel_layers_per_stage")) {
      job.refuse("parallelism.pipeline_parallel_layers_per_stage",
                 "orrery maps one stage per pipeline rank");
    }
    // generate_llm_fqn_per_model_part (distributed/pipeline_parallel.py) splits the layers
    // plus the embedding's and the output's weights evenly, earlier stages taking any
    // remainder; Megatron-LM's --account-for-embedding/loss-in-pipeline-split when even.
    const std::int64_t first =
        job.integer("parallelism.pipeline_parallel_first_stage_less_layers", 1, 0);
    const std::int64_t last =
        job.integer("parallelism.pipeline_parallel_last_stage_less_layers", 1, 0);
    if (first > 1) {
      job.refuse("parallelism.pipeline_parallel_first_stage_less_layers", "orrery takes 0 or 1");
    }
    if (last > 1) {
      job.refuse("parallelism.pipeline_parallel_last_stage_less_layers", "orrery takes 0 or 1");
    }
    if ((layers + first + last) % pp != 0) {
      job.refuse("parallelism.pipeline_parallel_degree",
                 fmt::format("torchtitan splits the {} layers (with the embedding's and output's "
                             "weights) unevenly over {} stages; orrery's split is even",
                             layers + first + last, pp));
    }
    if (first == 1) {
      p += scenario_line("account_for_embedding", "true",
                         job.source("parallelism.pipeline_parallel_first_stage_less_layers", "1"));
    }
    if (last == 1) {
      p += scenario_line("account_for_loss", "true",
                         job.source("parallelism.pipeline_parallel_last_stage_less_layers", "1"));
    }
    microbatch = job.integer("parallelism.pipeline_parallel_microbatch_size", 1, 1);
    microbatch_source = job.source("parallelism.pipeline_parallel_microbatch_size", "1");
    if (local % microbatch != 0) {
      job.refuse("parallelism.pipeline_parallel_microbatch_size",
                 "does not divide training.local_batch_size");
    }
  }
  p += scenario_line("microbatch", std::to_string(microbatch), microbatch_source);
  std::int64_t global = job.integer("training.global_batch_size", -1, -1);
  if (global == 0) {
    job.refuse("training.global_batch_size", "0: torchtitan asserts a positive batch (or -1)");
  }
  // Under pipeline parallelism each gradient-accumulation step is a pipeline schedule of
  // its own (train.py at v0.2.1: forward_backward_step runs pp_schedule.step per step), which
  // orrery's one schedule a step does not model.
  if (pp > 1 && global > local * dp) {
    job.refuse("training.global_batch_size",
               fmt::format("{} steps of gradient accumulation under pipeline parallelism: "
                           "torchtitan runs a pipeline schedule for each, orrery one a step",
                           global / (local * dp)));
  }
  if (global < 0) {
    global = local * dp;
    p += scenario_line(
        "global_batch", std::to_string(global),
        "training.local_batch_size x dp (" + job.source("training.global_batch_size", "-1") + ")");
  } else {
    if (global % (local * dp) != 0) {
      job.refuse("training.global_batch_size",
                 fmt::format("not a multiple of local_batch_size x dp = {}", local * dp));
    }
    p += scenario_line("global_batch", std::to_string(global), "training.global_batch_size");
  }

  // Stack, precision, activation checkpointing, optimizer.
  const bool compile = job.boolean("compile.enable", false);
  if (compile) {
    const TomlValue* c = job.find("compile.components");
    std::set<std::string> components;
    if (c) {
      for (const TomlValue& e : c->items) components.insert(e.text);
    }
    if (c && (c->kind != TomlValue::Kind::array || c->items.size() != 2 ||
              components != std::set<std::string>{"model", "loss"})) {
      job.refuse("compile.components", "orrery's compile covers the model and the loss");
    }
  }
  const std::string impl = job.text("optimizer.implementation", "fused");
  if (impl != "fused" && impl != "foreach") {
    job.refuse("optimizer.implementation", "orrery models fused and foreach");
  }
  std::string stack = "fsdp2", stack_source = "torchtitan";
  if (compile || impl == "foreach") {
    stack = fmt::format("{{preset: fsdp2{}{}}}", compile ? ", compile: true" : "",
                        impl == "foreach" ? ", optimizer: foreach" : "");
    stack_source = fmt::format("torchtitan{}{}", compile ? ", compile.enable" : "",
                               impl == "foreach" ? ", optimizer.implementation" : "");
  }
  t += scenario_line("stack", stack, stack_source);
  const std::string mp = job.text("training.mixed_precision_param", "bfloat16");
  if (mp != "bfloat16" && mp != "float32") {
    job.refuse("training.mixed_precision_param", "torchtitan takes bfloat16 or float32");
  }
  // Without FSDP, tensor or pipeline parallelism turns mixed precision off: the step runs
  // in fp32 (maybe_enable_amp, distributed/utils.py at v0.2.1, "Mixed precision training
  // with TP or PP is only supported when FSDP/HSDP/CP is enabled").
  const bool amp_off = !fsdp && (tp > 1 || pp > 1);
  if (float8 && amp_off) {
    job.refuse("model.converters",
               "with tp or pp and no FSDP torchtitan trains in fp32 (maybe_enable_amp), which "
               "orrery's fp8 (bf16 beside the fp8 GEMMs) does not express");
  }
  if (float8) {
    if (mp != "bfloat16") {
      job.refuse("training.mixed_precision_param",
                 "orrery's fp8 keeps bf16 weights and activations beside its fp8 GEMMs");
    }
    t += scenario_line("precision", "fp8",
                       "model.converters quantize.linear.float8, "
                       "training.mixed_precision_param bfloat16 elsewhere");
    t += "  " + float8_section(job, shard > 1, layers, dims) + "\n";
  } else if (amp_off) {
    t += scenario_line("precision", "fp32",
                       "tp or pp without FSDP: torchtitan disables mixed precision "
                       "(maybe_enable_amp)");
  } else {
    t += scenario_line("precision", mp == "bfloat16" ? "bf16" : "fp32",
                       job.source("training.mixed_precision_param", "bfloat16"));
  }
  // training.dtype bfloat16: parameters, gradients and optimizer states all in bf16, no fp32
  // copy of the weights (Training.dtype in config/job_config.py at v0.2.1, applied to the
  // model in train.py). The reduce-scatters stay fp32: apply_fsdp's MixedPrecisionPolicy
  // takes mixed_precision_reduce, which takes float32 only (job_config.py line 282).
  const std::string dtype = job.text("training.dtype", "float32");
  if (dtype != "float32" && dtype != "bfloat16") {
    job.refuse("training.dtype", "torchtitan takes float32 or bfloat16");
  }
  if (dtype == "bfloat16") {
    if (float8 || amp_off || mp != "bfloat16") {
      job.refuse("training.dtype",
                 "bfloat16 training is written for bf16 mixed precision without float8 here");
    }
    t += scenario_line("main_params_dtype", "none", "training.dtype bfloat16: no fp32 weights");
    t += scenario_line("optimizer_state_dtype", "bf16", "training.dtype bfloat16");
  }
  // Async tensor parallelism (parallelism.enable_async_tensor_parallel; torch's
  // micro-pipelined TP under torch.compile, distributed/tensor_parallel.py): the
  // tensor-parallel collectives overlap the GEMMs beside them.
  if (job.boolean("parallelism.enable_async_tensor_parallel", false) && tp > 1) {
    if (!compile) {
      job.refuse("parallelism.enable_async_tensor_parallel",
                 "torchtitan runs async tensor parallelism under compile.enable only");
    }
    t += scenario_line("tp_comm_overlap", "true", "parallelism.enable_async_tensor_parallel");
  }
  if (job.boolean("training.enable_cpu_offload", false)) {
    job.refuse("training.enable_cpu_offload", "orrery does not model FSDP2's CPU offload");
  }
  const std::string mode = job.text("activation_checkpoint.mode", "selective");
  std::string recompute;
  if (mode == "none" || mode == "full") {
    recompute = mode;
  } else if (mode == "selective") {
    const std::string option = job.text("activation_checkpoint.selective_ac_option", "2");
    // Layer SAC checkpoints every option-th layer, every layer for 0 or 1
    // (distributed/activation_checkpoint.py, _apply_layer_sac).
    if (option == "1" || option == "0") {
      recompute = "full";
    } else {
      job.refuse(job.given("activation_checkpoint.selective_ac_option")
                     ? "activation_checkpoint.selective_ac_option"
                     : "activation_checkpoint.mode",
                 option == "op" ? "torchtitan's per-op checkpointing (it saves attention and "
                                  "every other matmul) has no form in orrery's recompute modes"
                                : "torchtitan checkpoints every " + option +
                                      "th layer; orrery recomputes every layer or none");
    }
  } else {
    job.refuse("activation_checkpoint.mode", "orrery maps none, selective and full");
  }
  t += scenario_line("recompute", recompute,
                     recompute == "full" && mode == "selective"
                         ? "activation_checkpoint.selective_ac_option: every layer"
                         : job.source("activation_checkpoint.mode", "selective"));
  const std::string optimizer = job.text("optimizer.name", "AdamW");
  if (optimizer != "AdamW" && optimizer != "Adam") {
    job.refuse("optimizer.name", "orrery maps Adam and AdamW");
  }
  t += scenario_line("optimizer", optimizer == "AdamW" ? "adamw" : "adam",
                     job.source("optimizer.name", "AdamW"));

  std::string out = fmt::format(
      "# Written by orrery import torchtitan from the job config\n"
      "#   {}\n"
      "# (key names and defaults as in pytorch/torchtitan v0.2.1); each value names its "
      "source.\n",
      path);
  const std::vector<std::string> unread = job.unread();
  if (unread.empty()) {
    out += "# Every key was mapped.\n";
  } else {
    out += "# Not mapped (orrery's defaults stand for them; check they match):\n";
    for (const auto& u : unread) out += "#   " + u + "\n";
  }
  out += fmt::format("cluster: {{preset: {}, nodes: {}}}  # orrery import --cluster, --nodes\n",
                     cluster, nodes);
  out += "model:\n" + m + "parallelism:\n" + p + "training:\n" + t;
  return out;
}

}  // namespace orrery
