// The `training:` section (scenario/spec.h, TrainingSpec): precision, recompute, optimizer,
// overlap settings, the target, the FP8 recipe, gradient compression and loss scaling. A
// setting that belongs to another mode or scheme is an error here; whether the section fits
// the GPU, the model and the split is checked by validation (scenario/validate.cpp).
#include <fmt/format.h>

#include <string>
#include <utility>
#include <vector>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

using T = TrainingSpec;
using namespace field;

constexpr double kMaxAmount = 1e18;

// training.target.critical_batch: E_min, and B_noise or the loss it follows from. Each
// figure is given in samples or in tokens, under one key each.
struct SamplesOrTokens {
  const char* samples;
  const char* tokens;
  const char* what;  // the figure's name in messages
};
constexpr SamplesOrTokens kEMin = {"e_min_samples", "e_min_tokens", "E_min"};
constexpr SamplesOrTokens kBNoise = {"b_noise_samples", "b_noise_tokens", "B_noise"};
constexpr const char* kLossNats = "loss_nats";

std::vector<std::string> critical_batch_keys() {
  return {kEMin.samples, kEMin.tokens, kBNoise.samples, kBNoise.tokens, kLossNats};
}

// Reads training.target.critical_batch into `t`: E_min first, then the loss, then
// B_noise, which is required without a loss and an error with one.
void read_critical_batch(MapReader& r, const std::string& key, Origin* origin, TargetSpec& t) {
  if (!r.has(key)) return;
  t.kind = TargetSpec::Kind::critical_batch;
  const YAML::Node cb = r.node(key);
  MapReader c(cb, r.file(), r.key_path(key), critical_batch_keys(), origin);
  auto one_of = [&](const SamplesOrTokens& k, bool required, bool& in_tokens) {
    if (c.has(k.samples) && c.has(k.tokens)) {
      c.fail(k.tokens, fmt::format("give {} in samples or in tokens, not both", k.what));
    }
    double v = 0;
    if (c.read_double(k.samples, 1e-9, kMaxAmount, v)) return v;
    in_tokens = true;
    if (c.read_double(k.tokens, 1e-9, kMaxAmount, v)) return v;
    in_tokens = false;
    if (required) {
      throw InputError(
          location_of(r.file(), cb), c.key_path(k.samples), "",
          fmt::format("missing key: give {} as {} or {}", k.what, k.samples, k.tokens));
    }
    return 0.0;
  };
  t.e_min = one_of(kEMin, true, t.e_min_in_tokens);
  double loss = 0;
  if (c.read_double(kLossNats, 0.1, 100.0, loss)) t.loss = loss;
  t.b_noise = one_of(kBNoise, !t.loss, t.b_noise_in_tokens);
  if (t.loss && t.b_noise != 0) {
    c.fail(kLossNats, "give B_noise or the loss it follows from (Kaplan et al. 2020), not both");
  }
}

// A fixed budget in `kind`'s unit.
ReadFn<TargetSpec> budget(TargetSpec::Kind kind) {
  return [kind](MapReader& r, const std::string& key, Origin*, TargetSpec& t) {
    if (r.read_double(key, 1.0, kMaxAmount, t.amount)) t.kind = kind;
  };
}

// training.target: exactly one of its keys. Token figures stay tokens here; resolve()
// (scenario/validate.h) turns them into samples.
const FieldTable<TargetSpec>& target_fields() {
  using K = TargetSpec::Kind;
  static const FieldTable<TargetSpec> table = {
      {"tokens", budget(K::tokens)},
      {"samples", budget(K::samples)},
      {"steps", budget(K::steps)},
      {"critical_batch", read_critical_batch},
  };
  return table;
}

void read_target(MapReader& r, const std::string& key, Origin* origin, T& training) {
  if (!r.has(key)) return;
  const YAML::Node node = r.node(key);
  MapReader tr(node, r.file(), r.key_path(key), keys_of(target_fields()), origin);
  int given = 0;
  for (const auto& f : target_fields()) given += tr.has(f.key) ? 1 : 0;
  if (given != 1) {
    throw InputError(location_of(r.file(), node), r.key_path(key), describe(node),
                     "give exactly one of tokens, samples, steps or critical_batch");
  }
  TargetSpec t;
  read_fields(tr, origin, target_fields(), t);
  training.target = t;
}

// training.fp8.gemms: the groups of linear layers (scenario/spec.h, Fp8Gemm).
const std::vector<std::pair<std::string, unsigned>> kFp8GemmNames = {
    {"qkv", kFp8Qkv},         {"proj", kFp8Proj},     {"fc1", kFp8Fc1},  {"fc2", kFp8Fc2},
    {"experts", kFp8Experts}, {"router", kFp8Router}, {"head", kFp8Head}};

// all, or a non-empty list of kFp8GemmNames.
void read_fp8_gemms(MapReader& r, const std::string& key, Origin*, Fp8Spec& f) {
  if (!r.has(key)) return;
  const YAML::Node g = r.node(key);
  const std::string path = r.key_path(key);
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
    throw InputError(location_of(r.file(), item), path, v,
                     why + "; expected all or a list of: " + list);
  };
  if (g.IsScalar() && g.Scalar() == "all") {
    f.gemms = ~0u;
  } else if (g.IsSequence() && g.size() > 0) {
    f.gemms = 0;
    for (const auto& item : g) f.gemms |= bit_of(item);
  } else {
    throw InputError(location_of(r.file(), g), path, describe(g),
                     "expected all or a non-empty list of GEMM groups");
  }
  r.mark(key);
}

// training.recompute_modules: a non-empty list of Megatron-Core's module names
// (RecomputeModule), under recompute: selective only (read after `recompute`).
void read_recompute_modules(MapReader& r, const std::string& key, Origin*, T& t) {
  if (!r.has(key)) return;
  const YAML::Node g = r.node(key);
  const std::string path = r.key_path(key);
  if (t.recompute != Recompute::selective) {
    r.fail(key, fmt::format("applies to recompute: selective only (recompute is {})",
                            to_string(t.recompute)));
  }
  std::vector<std::string> choices;
  for (const RecomputeModule m : kRecomputeModuleOrder)
    choices.emplace_back(recompute_module_name(m));
  auto bit_of = [&](const YAML::Node& item) -> unsigned {
    const std::string v = describe(item);
    for (const RecomputeModule m : kRecomputeModuleOrder)
      if (item.IsScalar() && v == recompute_module_name(m)) return m;
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    std::string why = "unknown recompute module";
    const std::string hint = closest_match(v, choices);
    if (!hint.empty()) why += fmt::format(" (did you mean '{}'?)", hint);
    throw InputError(location_of(r.file(), item), path, v, why + "; expected a list of: " + list);
  };
  if (!g.IsSequence() || g.size() == 0) {
    throw InputError(location_of(r.file(), g), path, describe(g),
                     "expected a non-empty list of recompute modules");
  }
  t.recompute_modules = 0;
  for (const auto& item : g) t.recompute_modules |= bit_of(item);
  r.mark(key);
}

// amax_history applies to delayed scaling only, which `scaling` (read before) must be.
void read_amax_history(MapReader& r, const std::string& key, Origin*, Fp8Spec& f) {
  if (r.has(key) && f.scaling != Fp8Spec::Scaling::delayed) {
    r.fail(key, fmt::format("applies to delayed scaling only (scaling is {}: its "
                            "scales come from the tensor being cast)",
                            to_string(f.scaling)));
  }
  r.read_int(key, 1, 1 << 20, f.amax_history);
}

const FieldTable<Fp8Spec>& fp8_layer_fields() {
  static const FieldTable<Fp8Spec> table = {
      {"first", whole(&Fp8Spec::bf16_first, 0, kMaxCount)},
      {"last", whole(&Fp8Spec::bf16_last, 0, kMaxCount)},
  };
  return table;
}

// training.fp8.communication: each all-gather in bf16 (false) or fp8 (true).
const FieldTable<Fp8Spec>& fp8_comm_fields() {
  static const std::vector<std::pair<std::string, bool>> fp8_or_bf16 = {{"bf16", false},
                                                                        {"fp8", true}};
  static const FieldTable<Fp8Spec> table = {
      {"tp_allgather", choice(&Fp8Spec::tp_allgather_fp8, fp8_or_bf16)},
      {"param_allgather", choice(&Fp8Spec::param_allgather_fp8, fp8_or_bf16)},
  };
  return table;
}

// training.fp8 (scenario/spec.h, Fp8Spec). Settings that belong to one scaling mode are
// errors with another; whether the section fits the precision and the split is checked
// by validation, once the whole scenario is read.
const FieldTable<Fp8Spec>& fp8_fields() {
  static const FieldTable<Fp8Spec> table = {
      {"format", choice(&Fp8Spec::format)},
      {"scaling", choice(&Fp8Spec::scaling)},
      {"amax_history", read_amax_history},
      {"gemms", read_fp8_gemms},
      {"bf16_layers", nested(fp8_layer_fields, true)},
      {"weight_cache", flag(&Fp8Spec::weight_cache)},
      {"weights", choice(&Fp8Spec::weights_key, {{"bf16", false}, {"fp8", true}})},
      {"communication", nested(fp8_comm_fields, true)},
  };
  return table;
}

// A section given replaces the recipe's defaults as a whole (no fp8: no recipe).
void read_fp8(MapReader& r, const std::string& key, Origin* origin, T& t) {
  if (!r.has(key)) return;
  Fp8Spec f;
  MapReader fr(r.node(key), r.file(), r.key_path(key), keys_of(fp8_fields()), origin);
  read_fields(fr, origin, fp8_fields(), f);
  t.fp8 = f;
  r.mark(key);
}

// training.fp4.bf16_layers and training.fp4 (scenario/spec.h, Fp4Spec); whether the
// section fits the precision and the model is checked by validation.
const FieldTable<Fp4Spec>& fp4_layer_fields() {
  static const FieldTable<Fp4Spec> table = {
      {"first", whole(&Fp4Spec::bf16_first, 0, kMaxCount)},
      {"last", whole(&Fp4Spec::bf16_last, 0, kMaxCount)},
  };
  return table;
}

const FieldTable<Fp4Spec>& fp4_fields() {
  static const FieldTable<Fp4Spec> table = {
      {"format", choice(&Fp4Spec::format)},
      {"bf16_layers", nested(fp4_layer_fields, true)},
  };
  return table;
}

void read_fp4(MapReader& r, const std::string& key, Origin* origin, T& t) {
  if (!r.has(key)) return;
  Fp4Spec f;
  MapReader fr(r.node(key), r.file(), r.key_path(key), keys_of(fp4_fields()), origin);
  read_fields(fr, origin, fp4_fields(), f);
  t.fp4 = f;
  r.mark(key);
}

// training.stack as a mapping (StackSpec): the preset and the mechanisms it overrides.
// What each preset sets, and what a mapping may not set, is resolved in
// scenario/validate_stack.cpp (complete_stack), once the whole scenario is read.
const FieldTable<StackSpec>& stack_fields() {
  using S = StackSpec;
  static const FieldTable<S> table = {
      {"preset", choice(&S::preset)},
      {"compile", flag(&S::compile)},
      {"rope", choice(&S::rope)},
      {"activation_fusion", flag(&S::activation_fusion)},
      {"cross_entropy_fusion", flag(&S::cross_entropy_fusion)},
      {"optimizer", choice(&S::optimizer)},
      {"norm", choice(&S::norm)},
      {"attention", choice(&S::attention)},
      {"projections", choice(&S::projections)},
      {"masked_softmax", choice(&S::masked_softmax)},
      {"host_overhead", quantity(&S::host_overhead, Dimension::seconds, 0, 1e-3)},
      {"cross_entropy_chunks", whole(&S::cross_entropy_chunks, 1, 1024)},
      {"gradient_accumulation", choice(&S::gradient_accumulation)},
      {"tp_dgrad_overlap", flag(&S::tp_dgrad_overlap)},
  };
  return table;
}

// `stack: NAME` (a preset), or a mapping `{preset: NAME, compile: ..., overrides...}`.
void read_stack(MapReader& r, const std::string& key, Origin* origin, T& t) {
  if (!r.has(key)) return;
  if (!r.node(key).IsMap()) {
    r.read_enum(key, names_of<StackSpec::Preset>(), t.stack.preset);
    return;
  }
  MapReader sr(r.node(key), r.file(), r.key_path(key), keys_of(stack_fields()), origin);
  read_fields(sr, origin, stack_fields(), t.stack);
  r.mark(key);
}

// training.optimizer_offload (OptimizerOffloadSpec); a section given turns it on (nested).
const FieldTable<OptimizerOffloadSpec>& optimizer_offload_fields() {
  using O = OptimizerOffloadSpec;
  static const FieldTable<O> table = {
      {"fraction", number(&O::fraction, 0.01, 1.0)},
      {"overlap", flag(&O::overlap)},
  };
  return table;
}

// training.memory (MemorySpec): the allocator and the margin `check` keeps.
const FieldTable<MemorySpec>& memory_fields() {
  using M = MemorySpec;
  static const FieldTable<M> table = {
      {"allocator", choice(&M::allocator)},
      {"margin", number(&M::margin, 0.0, 0.5)},
      {"cuda_context", quantity(&M::cuda_context, Dimension::bytes, 0.0, kMaxBytes)},
      {"nccl_channels", whole(&M::nccl_channels, 1, 64)},  // MAXCHANNELS, src/include/device.h
      {"cublas_workspace", quantity(&M::cublas_workspace, Dimension::bytes, 0.0, kMaxBytes)},
  };
  return table;
}

// training.activation_offload (ActivationOffloadSpec); `layers` is required.
const FieldTable<ActivationOffloadSpec>& activation_offload_fields() {
  using A = ActivationOffloadSpec;
  static const FieldTable<A> table = {
      {"layers", required(whole(&A::layers, 1, kMaxCount))},
  };
  return table;
}

// training.gradient_compression: the scheme, then settings each used by some schemes
// only, checked (in order of their keys) before any is read.
const FieldTable<CompressionSpec>& compression_fields() {
  using C = CompressionSpec;
  using S = C::Scheme;
  auto used_by = [](std::vector<S> schemes) {
    return [schemes = std::move(schemes)](const C& c) -> std::string {
      for (const S s : schemes)
        if (s == c.scheme) return "";
      return fmt::format("does not apply to scheme {}", to_string(c.scheme));
    };
  };
  static const FieldTable<C> table = {
      {"scheme", required(choice(&C::scheme))},
      {"density", number(&C::density, 1e-6, 1.0), false, used_by({S::topk})},
      {"rank", whole(&C::rank, 1, 1 << 16), false, used_by({S::powersgd})},
      {"period", whole(&C::period, 2, 1 << 20), false, used_by({S::local_sgd})},
      {"warmup_steps", whole(&C::warmup_steps, 0, 1 << 30), false, used_by({S::onebit})},
      {"scale_block", whole(&C::scale_block, 1, 1 << 30), false,
       used_by({S::int8, S::int4, S::onebit})},
      {"convergence", number(&C::convergence, 0.1, 100.0)},
  };
  return table;
}

// training.loss_scaling: the kind, then the dynamic kind's settings.
const FieldTable<LossScalingSpec>& loss_scaling_fields() {
  using L = LossScalingSpec;
  auto dynamic_only = [](const L& l) -> std::string {
    return l.kind != L::Kind::dynamic ? "applies to kind: dynamic only" : "";
  };
  static const FieldTable<L> table = {
      {"kind", required(choice(&L::kind))},
      {"window", whole(&L::window, 1, 1 << 30), false, dynamic_only},
      {"hysteresis", whole(&L::hysteresis, 1, 1 << 20), false, dynamic_only},
  };
  return table;
}

// A nested section whose first row (scheme, kind) decides which of the others may be
// given (read_keyed_by_first).
template <class Spec>
ReadFn<T> keyed_by_first(Spec T::*m, const FieldTable<Spec>& (*table)(), bool by_name) {
  return [m, table, by_name](MapReader& r, const std::string& key, Origin* origin, T& t) {
    if (!r.has(key)) return;
    MapReader nr(r.node(key), r.file(), r.key_path(key), keys_of(table()), origin);
    read_keyed_by_first(nr, origin, table(), t.*m, by_name);
  };
}

const FieldTable<T>& training_fields() {
  static const FieldTable<T> table = {
      {"precision", choice(&T::precision)},
      {"recompute", choice(&T::recompute)},
      {"recompute_modules", read_recompute_modules},
      {"optimizer", choice(&T::optimizer)},
      {"optimizer_state_dtype", choice(&T::optimizer_state_dtype)},
      {"main_params_dtype", choice(&T::main_params_dtype)},
      {"optimizer_offload", nested(&T::optimizer_offload, optimizer_offload_fields, true)},
      {"activation_offload", nested(&T::activation_offload, activation_offload_fields, true)},
      {"flash_attention", flag(&T::flash_attention)},
      {"cross_entropy_fusion", flag(&T::cross_entropy_fusion)},
      {"cross_entropy_fusion_impl", choice(&T::cross_entropy_impl)},
      {"stack", read_stack},
      {"gradient_dtype",
       choice(&T::gradient_dtype,
              {{"fp32", Dtype::fp32}, {"bf16", Dtype::bf16}, {"fp16", Dtype::fp16}})},
      {"runtime_reserve", quantity(&T::runtime_reserve, Dimension::bytes, 0.0, kMaxBytes)},
      {"allocator_overhead", number(&T::allocator_overhead, 0.0, 1.0)},
      {"memory", nested(&T::memory, memory_fields, true)},
      {"overlap_grad_reduce", flag(&T::overlap_grad_reduce)},
      {"overlap_param_gather", flag(&T::overlap_param_gather)},
      {"tp_comm_overlap", flag(&T::tp_comm_overlap)},
      {"overlap_p2p", flag(&T::overlap_p2p)},
      {"grad_bucket_params", number(&T::grad_bucket_params, 1.0, 1e15)},
      {"grad_buckets", choice(&T::grad_buckets)},
      {"overlap_param_gather_with_optimizer_step", flag(&T::overlap_param_gather_with_optimizer_step)},
      {"target", read_target},
      {"gradient_compression", keyed_by_first(&T::compression, compression_fields, true), true},
      {"fp8", read_fp8},
      {"fp4", read_fp4},
      {"loss_scaling", keyed_by_first(&T::loss_scaling, loss_scaling_fields, false), true},
  };
  return table;
}

}  // namespace

KeyLists training_key_lists() {
  return {{"training", keys_of(training_fields())},
          {"training.target", keys_of(target_fields())},
          {"training.gradient_compression", keys_of(compression_fields())},
          {"training.loss_scaling", keys_of(loss_scaling_fields())},
          {"training.fp8", keys_of(fp8_fields())},
          {"training.stack", keys_of(stack_fields())},
          {"training.optimizer_offload", keys_of(optimizer_offload_fields())},
          {"training.activation_offload", keys_of(activation_offload_fields())},
          {"training.memory", keys_of(memory_fields())},
          {"training.fp8.bf16_layers", keys_of(fp8_layer_fields())},
          {"training.fp8.communication", keys_of(fp8_comm_fields())},
          {"training.fp4", keys_of(fp4_fields())},
          {"training.fp4.bf16_layers", keys_of(fp4_layer_fields())},
          {"training.target.critical_batch", critical_batch_keys()}};
}

void read_training(const YAML::Node& node, const std::string& file, Origin* origin,
                   TrainingSpec& t) {
  MapReader r(node, file, "training", keys_of(training_fields()), origin);
  read_fields(r, origin, training_fields(), t);
}

}  // namespace orrery::detail
