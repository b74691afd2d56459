// The `parallelism:` section (scenario/spec.h, ParallelismSpec): the split of the model
// over GPUs, the pipeline schedule, ZeRO/FSDP sharding and the batch. Whether the split
// fits the cluster and the model is checked by validation (scenario/validate.cpp).
#include <fmt/format.h>

#include "scenario/load_sections.h"

namespace orrery::detail {
namespace {

using P = ParallelismSpec;

// parallelism.fsdp as a mapping: the implementation and its gather settings. The bucket
// and persistence settings are DeepSpeed's and errors with another implementation.
const FieldTable<P>& fsdp_fields() {
  using namespace field;
  auto deepspeed_only = [](const P& p) -> std::string {
    return p.fsdp_impl == P::FsdpImpl::deepspeed
               ? ""
               : fmt::format("applies to implementation: deepspeed only (implementation is {})",
                             to_string(p.fsdp_impl));
  };
  static const FieldTable<P> table = {
      {"implementation", choice(&P::fsdp_impl)},
      {"unit", choice(&P::fsdp_unit)},
      {"prefetch_bucket", number(&P::fsdp_prefetch_bucket, 0, 1e15), 0, deepspeed_only},
      {"reduce_bucket", number(&P::fsdp_reduce_bucket, 1, 1e15), 0, deepspeed_only},
      {"persistence_threshold", number(&P::fsdp_persistence_threshold, 0, 1e15), 0, deepspeed_only},
      {"host_overhead", quantity(&P::fsdp_host_overhead, Dimension::seconds, 0, 1)},
  };
  return table;
}

// `fsdp: true|false`, or a mapping that names the implementation (and means true).
void read_fsdp(MapReader& r, const std::string& key, Origin* origin, P& p) {
  if (!r.has(key)) return;
  if (!r.node(key).IsMap()) {
    r.read_bool(key, p.fsdp);
    return;
  }
  p.fsdp = true;
  MapReader fr(r.node(key), r.file(), r.key_path(key), keys_of(fsdp_fields()), origin);
  read_keyed_by_first(fr, origin, fsdp_fields(), p, false);
  r.mark(key);
}

// Every key of parallelism:, in the order its unknown-key error lists them.
const FieldTable<P>& parallelism_fields() {
  using namespace field;
  static const FieldTable<P> table = {
      {"tp", whole(&P::tp, 1, kMaxCount)},
      {"pp", whole(&P::pp, 1, kMaxCount)},
      {"dp", whole(&P::dp, 1, kMaxCount)},
      {"cp", whole(&P::cp, 1, kMaxCount)},
      {"ep", whole(&P::ep, 1, kMaxCount)},
      {"expert_tp", whole(&P::expert_tp, 1, kMaxCount)},
      {"sequence_parallel", flag(&P::sequence_parallel)},
      {"virtual_pipeline_stages", whole(&P::virtual_pipeline_stages, 1, kMaxCount)},
      {"first_stage_layers", whole(&P::first_stage_layers, 0, kMaxCount)},
      {"last_stage_layers", whole(&P::last_stage_layers, 0, kMaxCount)},
      {"account_for_embedding", flag(&P::account_for_embedding)},
      {"account_for_loss", flag(&P::account_for_loss)},
      {"pipeline_layout", text(&P::pipeline_layout)},
      {"microbatch_group_size", whole(&P::microbatch_group_size, 1, kMaxCount)},
      {"flexible_groups", flag(&P::flexible_groups)},
      {"schedule", choice(&P::schedule)},
      {"pipeline_engine", choice(&P::pipeline_engine)},
      {"cp_comm", choice(&P::cp_comm)},
      {"rank_order", choice(&P::rank_order)},
      {"ep_alltoall", choice(&P::ep_alltoall)},
      {"ep_backend", choice(&P::ep_backend)},
      {"moe_a2a_overlap", flag(&P::moe_a2a_overlap)},
      {"zero_stage", whole(&P::zero_stage, 0, 3)},
      {"fsdp", read_fsdp},
      {"sharding", choice(&P::sharding)},
      {"reshard_after_forward", flag(&P::reshard_after_forward)},
      {"reshard_output_after_forward", flag(&P::reshard_output_after_forward)},
      {"fsdp_prefetch", whole(&P::fsdp_prefetch, 0, 8)},
      {"zero_hpz", flag(&P::zero_hpz)},
      {"microbatch", whole(&P::microbatch, 1, kMaxCount)},
      {"global_batch", whole(&P::global_batch, 1, 1 << 30)},
  };
  return table;
}

}  // namespace

KeyLists parallelism_key_lists() {
  return {{"parallelism", keys_of(parallelism_fields())},
          {"parallelism.fsdp", keys_of(fsdp_fields())}};
}

void read_parallelism(const YAML::Node& node, const std::string& file, Origin* origin,
                      ParallelismSpec& p) {
  MapReader r(node, file, "parallelism", keys_of(parallelism_fields()), origin);
  read_fields(r, origin, parallelism_fields(), p);
}

}  // namespace orrery::detail
