// The `training:` section (scenario/spec.h, TrainingSpec): precision, recompute, optimizer,
// overlap settings, the target, the FP8 recipe, gradient compression and loss scaling. A
// setting that belongs to another mode or scheme is an error here; whether the section fits
// the GPU, the model and the split is checked by validation (scenario/validate.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

// training.fp8.gemms: the groups of linear layers (scenario/spec.h, Fp8Gemm).
const std::vector<std::pair<std::string, unsigned>> kFp8GemmNames = {
    {"qkv", kFp8Qkv},         {"proj", kFp8Proj},     {"fc1", kFp8Fc1}, {"fc2", kFp8Fc2},
    {"experts", kFp8Experts}, {"router", kFp8Router}, {"head", kFp8Head}};

// training.target: exactly one of tokens, samples, steps, critical_batch. Token
// figures stay tokens here; resolve() (scenario/validate.h) turns them into samples.
TargetSpec read_target(const YAML::Node& node, const std::string& file, Origin* origin) {
  MapReader r(node, file, "training.target", kTargetKeys, origin);
  int given = 0;
  for (const std::string& k : kTargetKeys) given += r.has(k) ? 1 : 0;
  if (given != 1) {
    throw InputError(location_of(file, node), "training.target", describe(node),
                     "give exactly one of tokens, samples, steps or critical_batch");
  }
  TargetSpec t;
  constexpr double kMaxAmount = 1e18;
  if (r.read_double("tokens", 1.0, kMaxAmount, t.amount)) t.kind = TargetSpec::Kind::tokens;
  if (r.read_double("samples", 1.0, kMaxAmount, t.amount)) t.kind = TargetSpec::Kind::samples;
  if (r.read_double("steps", 1.0, kMaxAmount, t.amount)) t.kind = TargetSpec::Kind::steps;
  if (r.has("critical_batch")) {
    t.kind = TargetSpec::Kind::critical_batch;
    const YAML::Node cb = r.node("critical_batch");
    MapReader c(cb, file, "training.target.critical_batch", kCriticalBatchKeys, origin);
    auto one_of = [&](const char* samples_key, const char* tokens_key, const char* what,
                      bool required, bool& in_tokens) {
      if (c.has(samples_key) && c.has(tokens_key)) {
        c.fail(tokens_key, fmt::format("give {} in samples or in tokens, not both", what));
      }
      double v = 0;
      if (c.read_double(samples_key, 1e-9, kMaxAmount, v)) return v;
      in_tokens = true;
      if (c.read_double(tokens_key, 1e-9, kMaxAmount, v)) return v;
      in_tokens = false;
      if (required) {
        throw InputError(location_of(file, cb), std::string("training.target.critical_batch.") +
                                                    samples_key,
                         "", fmt::format("missing key: give {} as {} or {}", what, samples_key,
                                         tokens_key));
      }
      return 0.0;
    };
    t.e_min = one_of("e_min_samples", "e_min_tokens", "E_min", true, t.e_min_in_tokens);
    double loss = 0;
    if (c.read_double("loss_nats", 0.1, 100.0, loss)) t.loss = loss;
    t.b_noise = one_of("b_noise_samples", "b_noise_tokens", "B_noise", !t.loss, t.b_noise_in_tokens);
    if (t.loss && t.b_noise != 0) {
      c.fail("loss_nats", "give B_noise or the loss it follows from (Kaplan et al. 2020), not both");
    }
  }
  return t;
}

// training.fp8 (scenario/spec.h, Fp8Spec). Settings that belong to one scaling mode are
// errors with another; whether the section fits the precision and the split is checked
// by validation, once the whole scenario is read.
Fp8Spec read_fp8(const YAML::Node& node, const std::string& file, Origin* origin) {
  using Sc = Fp8Spec::Scaling;
  Fp8Spec f;
  MapReader r(node, file, "training.fp8", kFp8Keys, origin);
  r.read_enum("format", names_of<Fp8Spec::Format>(), f.format);
  r.read_enum("scaling", names_of<Sc>(), f.scaling);
  if (r.has("amax_history") && f.scaling != Sc::delayed) {
    r.fail("amax_history", fmt::format("applies to delayed scaling only (scaling is {}: its "
                                       "scales come from the tensor being cast)",
                                       to_string(f.scaling)));
  }
  r.read_int("amax_history", 1, 1 << 20, f.amax_history);
  if (r.has("gemms")) {
    const YAML::Node g = r.node("gemms");
    const std::string path = r.key_path("gemms");
    std::vector<std::string> choices;
    for (const auto& [name, bit] : kFp8GemmNames) choices.push_back(name);
    auto bit_of = [&](const YAML::Node& item) -> unsigned {
      const std::string v = describe(item);
      for (const auto& [name, bit] : kFp8GemmNames)
        if (item.IsScalar() && name == v) return bit;
      std::string list;
      for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
      std::string why = "unknown GEMM group";
      const std::string hint = closest_match(v, choices);
      if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
      throw InputError(location_of(file, item), path, v,
                       why + "; expected all or a list of: " + list);
    };
    if (g.IsScalar() && g.Scalar() == "all") {
      f.gemms = ~0u;
    } else if (g.IsSequence() && g.size() > 0) {
      f.gemms = 0;
      for (const auto& item : g) f.gemms |= bit_of(item);
    } else {
      throw InputError(location_of(file, g), path, describe(g),
                       "expected all or a non-empty list of GEMM groups");
    }
    r.mark("gemms");
  }
  if (r.has("bf16_layers")) {
    MapReader lr(r.node("bf16_layers"), file, "training.fp8.bf16_layers", kFp8LayerKeys, origin);
    lr.read_int("first", 0, kMaxCount, f.bf16_first);
    lr.read_int("last", 0, kMaxCount, f.bf16_last);
    r.mark("bf16_layers");
  }
  bool cache = true;
  if (r.read_bool("weight_cache", cache)) f.weight_cache = cache;
  if (r.has("communication")) {
    MapReader cr(r.node("communication"), file, "training.fp8.communication", kFp8CommKeys,
                 origin);
    const std::vector<std::pair<std::string, bool>> fp8_or_bf16 = {{"bf16", false},
                                                                   {"fp8", true}};
    cr.read_enum("tp_allgather", fp8_or_bf16, f.tp_allgather_fp8);
    cr.read_enum("param_allgather", fp8_or_bf16, f.param_allgather_fp8);
    r.mark("communication");
  }
  return f;
}
}  // namespace

void read_training(const YAML::Node& node, const std::string& file, Origin* origin,
                   TrainingSpec& t) {
  MapReader r(node, file, "training", kTrainingKeys, origin);
  r.read_enum("precision", names_of<Precision>(), t.precision);
  r.read_enum("recompute", names_of<Recompute>(), t.recompute);
  r.read_enum("optimizer", names_of<Optimizer>(), t.optimizer);
  r.read_bool("flash_attention", t.flash_attention);
  r.read_enum("gradient_dtype",
              {{"fp32", Dtype::fp32}, {"bf16", Dtype::bf16}, {"fp16", Dtype::fp16}},
              t.gradient_dtype);
  r.read_quantity("runtime_reserve", Dimension::bytes, 0.0, kMaxBytes, t.runtime_reserve);
  r.read_double("allocator_overhead", 0.0, 1.0, t.allocator_overhead);
  r.read_bool("overlap_grad_reduce", t.overlap_grad_reduce);
  r.read_bool("overlap_param_gather", t.overlap_param_gather);
  r.read_bool("tp_comm_overlap", t.tp_comm_overlap);
  r.read_bool("overlap_p2p", t.overlap_p2p);
  double bucket = 0;
  if (r.read_double("grad_bucket_params", 1.0, 1e15, bucket)) t.grad_bucket_params = bucket;
  if (r.has("target")) t.target = read_target(r.node("target"), file, origin);
  if (r.has("fp8")) {
    t.fp8 = read_fp8(r.node("fp8"), file, origin);
    r.mark("fp8");
  }
  if (r.has("gradient_compression")) {
    using S = CompressionSpec::Scheme;
    CompressionSpec& c = t.compression;
    MapReader cr(r.node("gradient_compression"), file, "training.gradient_compression",
                 kCompressionKeys, origin);
    if (!cr.read_enum("scheme", names_of<S>(), c.scheme)) {
      throw InputError(location_of(file, r.node("gradient_compression")),
                       "training.gradient_compression.scheme", "", "missing key");
    }
    // Each setting belongs to the schemes that use it.
    const std::map<std::string, std::vector<S>> users = {
        {"density", {S::topk}},
        {"rank", {S::powersgd}},
        {"period", {S::local_sgd}},
        {"warmup_steps", {S::onebit}},
        {"scale_block", {S::int8, S::int4, S::onebit}}};
    for (const auto& [key, schemes] : users) {
      if (cr.has(key) && std::find(schemes.begin(), schemes.end(), c.scheme) == schemes.end()) {
        cr.fail(key, fmt::format("does not apply to scheme {}", to_string(c.scheme)));
      }
    }
    cr.read_double("density", 1e-6, 1.0, c.density);
    cr.read_int("rank", 1, 1 << 16, c.rank);
    cr.read_int("period", 2, 1 << 20, c.period);
    cr.read_int("warmup_steps", 0, 1 << 30, c.warmup_steps);
    cr.read_int("scale_block", 1, 1 << 30, c.scale_block);
    cr.read_double("convergence", 0.1, 100.0, c.convergence);
  }
  if (r.has("loss_scaling")) {
    using K = LossScalingSpec::Kind;
    LossScalingSpec& l = t.loss_scaling;
    MapReader lr(r.node("loss_scaling"), file, "training.loss_scaling", kLossScalingKeys, origin);
    K kind = K::none;
    if (!lr.read_enum("kind", names_of<K>(), kind)) {
      throw InputError(location_of(file, r.node("loss_scaling")), "training.loss_scaling.kind", "",
                       "missing key");
    }
    l.kind = kind;
    for (const char* key : {"window", "hysteresis"})
      if (lr.has(key) && kind != K::dynamic) lr.fail(key, "applies to kind: dynamic only");
    lr.read_int("window", 1, 1 << 30, l.window);
    lr.read_int("hysteresis", 1, 1 << 20, l.hysteresis);
  }
}

}  // namespace orrery::detail
