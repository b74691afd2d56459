#include "sweep/axes.h"

#include <algorithm>
#include <array>
#include <string>
#include <vector>

namespace orrery::detail {
namespace {

const RawScenario& raw_at(const SweepInput& in, const Assignment& a) {
  return in.raw.at(static_cast<std::size_t>(a.gpu));
}
// The values the candidate's GPU's scenario was read with.
const Scenario& raw_of(const SweepInput& in, const Assignment& a) { return raw_at(in, a).draft(); }

// An integer axis's values: the swept list, else the scenario's own. The values
// functions write into `out` (emptied first), whose storage the walk reuses.
void listed(std::vector<int>& out, const IntAxis& axis, int own) {
  if (axis.values.empty()) {
    out.assign(1, own);
  } else {
    out.assign(axis.values.begin(), axis.values.end());
  }
}

// An enum axis's values as ints: the swept list, else the scenario's own.
template <class E>
void listed(std::vector<int>& out, const std::vector<E>& swept, E own) {
  out.clear();
  if (swept.empty()) out.push_back(static_cast<int>(own));
  for (E e : swept) out.push_back(static_cast<int>(e));
}

void divisors_up_to(std::vector<int>& out, int n, int limit) {
  out.clear();
  for (int d = 1; d <= n && d <= limit; ++d)
    if (n % d == 0) out.push_back(d);
}

// The divisors of n >= 1 in increasing order, in O(sqrt(n)): those up to sqrt(n), then
// their cofactors n / d taken from the largest d down.
void divisors(std::vector<int>& out, int n) {
  out.clear();
  for (int d = 1; d <= n / d; ++d)
    if (n % d == 0) out.push_back(d);
  for (std::size_t i = out.size(); i-- > 0;) {
    const int d = out[i];
    if (d != n / d) out.push_back(n / d);
  }
}

// dp follows the GPU count when the split or the node count is swept and dp is not.
bool derives_dp(const SweepSpec& w) {
  return !w.dp.swept() && (w.tp.swept() || w.pp.swept() || w.cp.swept() || w.nodes.swept() ||
                           w.gpus_per_node.swept());
}

void mark(const SweepInput& in, RawScenario& raw, const char* sweep_key, const char* key) {
  raw.set_by(key, in.spec.where(sweep_key));
}

std::string num(int v) { return std::to_string(v); }

constexpr Axis kAxes[] = {
    // The system preset the candidate's cluster comes from ("" for a cluster written in
    // full); with sweep.system the gpu axis below walks the systems.
    {"system", -1, nullptr, nullptr, nullptr, nullptr, nullptr,
     [](const SweepInput& in, const CandidateResult& c) -> Cell {
       return raw_of(in, c.a).cluster.preset;
     }},
    {"gpu", 0,
     [](const SweepInput& in, const Assignment&, std::vector<int>& out) {
       out.clear();
       for (std::size_t g = 0; g < in.raw.size(); ++g) out.push_back(static_cast<int>(g));
     },
     [](Assignment& a, int v) { a.gpu = v; }, [](const Scenario&) { return 0; },
     [](const SweepInput&, const Assignment&, RawScenario&) {},  // in.raw holds one per GPU
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       const auto i = static_cast<std::size_t>(c.a.gpu);
       if (!in.spec.gpu.empty()) out.emplace_back("cluster.gpu", in.spec.gpu.at(i));
       if (!in.spec.system.empty()) out.emplace_back("cluster.preset", in.spec.system.at(i));
     },
     [](const SweepInput& in, const CandidateResult& c) -> Cell {
       return raw_of(in, c.a).cluster.gpu.name;
     }},
    {"nodes", 1,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.nodes, raw_of(in, a).cluster.nodes);
     },
     [](Assignment& a, int v) { a.nodes = v; }, [](const Scenario& s) { return s.cluster.nodes; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.nodes.swept()) return;
       s.cluster.nodes = a.nodes;
       mark(in, raw, "sweep.nodes", "cluster.nodes");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.nodes.swept()) out.emplace_back("cluster.nodes", num(c.a.nodes));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.nodes; }},
    {"gpus_per_node", 2,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.gpus_per_node, raw_of(in, a).cluster.gpus_per_node);
     },
     [](Assignment& a, int v) { a.gpus_per_node = v; },
     [](const Scenario& s) { return s.cluster.gpus_per_node; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (!in.spec.gpus_per_node.swept()) return;
       raw.draft().cluster.gpus_per_node = a.gpus_per_node;
       mark(in, raw, "sweep.gpus_per_node", "cluster.gpus_per_node");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.gpus_per_node.swept())
         out.emplace_back("cluster.gpus_per_node", num(c.a.gpus_per_node));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.gpus_per_node; }},
    {"nics_per_node", 3,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.nics_per_node, raw_of(in, a).cluster.inter_node.nics_per_node);
     },
     [](Assignment& a, int v) { a.nics_per_node = v; },
     [](const Scenario& s) { return s.cluster.inter_node.nics_per_node; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (!in.spec.nics_per_node.swept()) return;
       raw.draft().cluster.inter_node.nics_per_node = a.nics_per_node;
       mark(in, raw, "sweep.nics_per_node", "cluster.inter_node.nics_per_node");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.nics_per_node.swept())
         out.emplace_back("cluster.inter_node.nics_per_node", num(c.a.nics_per_node));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.nics_per_node; }},
    // Values are indices into sweep.nic_bandwidth; -1 the scenario's own rate.
    {"nic_bandwidth", 4,
     [](const SweepInput& in, const Assignment&, std::vector<int>& out) {
       out.clear();
       for (std::size_t i = 0; i < in.spec.nic_bandwidth.size(); ++i)
         out.push_back(static_cast<int>(i));
       if (out.empty()) out.push_back(-1);
     },
     [](Assignment& a, int v) { a.nic_bandwidth = v; }, [](const Scenario&) { return -1; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (a.nic_bandwidth < 0) return;
       raw.draft().cluster.inter_node.nic_bandwidth =
           in.spec.nic_bandwidth.at(static_cast<std::size_t>(a.nic_bandwidth)).first;
       mark(in, raw, "sweep.nic_bandwidth", "cluster.inter_node.nic_bandwidth");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (c.a.nic_bandwidth >= 0)
         out.emplace_back(
             "cluster.inter_node.nic_bandwidth",
             in.spec.nic_bandwidth.at(static_cast<std::size_t>(c.a.nic_bandwidth)).second);
     },
     [](const SweepInput& in, const CandidateResult& c) -> Cell {
       if (c.a.nic_bandwidth >= 0)
         return in.spec.nic_bandwidth.at(static_cast<std::size_t>(c.a.nic_bandwidth)).second;
       const Bandwidth bw = raw_of(in, c.a).cluster.inter_node.nic_bandwidth;
       return bw.value() > 0 ? format_bandwidth(bw) : std::string();
     }},
    {"gpus", -1, nullptr, nullptr, nullptr, nullptr, nullptr,
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.gpus; }},
    {"tp", 8,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       const Scenario& base = raw_of(in, a);
       if (in.spec.tp.automatic) {
         divisors_up_to(out, a.nodes * a.gpus_per_node, std::max(1, base.model.heads));
       } else {
         listed(out, in.spec.tp, base.parallelism.tp);
       }
     },
     [](Assignment& a, int v) { a.tp = v; }, [](const Scenario& s) { return s.parallelism.tp; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.tp.swept()) return;
       s.parallelism.tp = a.tp;
       mark(in, raw, "sweep.tp", "parallelism.tp");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.tp.swept()) out.emplace_back("parallelism.tp", num(c.a.tp));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.tp; }},
    {"pp", 9,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       const Scenario& base = raw_of(in, a);
       if (in.spec.pp.automatic) {
         divisors_up_to(out, a.nodes * a.gpus_per_node, std::max(1, base.model.layers));
       } else {
         listed(out, in.spec.pp, base.parallelism.pp);
       }
     },
     [](Assignment& a, int v) { a.pp = v; }, [](const Scenario& s) { return s.parallelism.pp; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.pp.swept()) return;
       s.parallelism.pp = a.pp;
       mark(in, raw, "sweep.pp", "parallelism.pp");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.pp.swept()) out.emplace_back("parallelism.pp", num(c.a.pp));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.pp; }},
    {"dp", 13,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       const SweepSpec& w = in.spec;
       if (w.dp.swept()) {
         out.assign(w.dp.values.begin(), w.dp.values.end());
       } else {
         out.assign(1, derives_dp(w) ? 0 : raw_of(in, a).parallelism.dp);
       }
     },
     [](Assignment& a, int v) { a.dp = v; }, [](const Scenario& s) { return s.parallelism.dp; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (in.spec.dp.swept()) {
         s.parallelism.dp = a.dp;
         mark(in, raw, "sweep.dp", "parallelism.dp");
       } else if (derives_dp(in.spec)) {
         raw.unset("parallelism.dp");  // resolve() derives it from the GPU count
       }
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.dp.swept() || derives_dp(in.spec)) out.emplace_back("parallelism.dp", num(c.dp));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.dp; }},
    // Values are v * 2, + 1 for the layout with the embedding and loss counted as layers.
    {"vp", 10,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       const Scenario& base = raw_of(in, a);
       if (!in.spec.vp.automatic) {
         // The file's own layout rule is kept (apply leaves it as written).
         const ParallelismSpec& p = base.parallelism;
         const int edges = p.account_for_embedding && p.account_for_loss ? 1 : 0;
         listed(out, in.spec.vp, p.virtual_pipeline_stages);
         for (int& v : out) v = 2 * v + edges;
         return;
       }
       // Every v whose pp*v model chunks divide the layers; where they do not, the uneven
       // layout with the first and last virtual stage one layer lighter when layers + 2
       // divide (Megatron's --account-for-embedding/loss-in-pipeline-split, as the Llama 3
       // paper balances its pipeline, arXiv:2407.21783 section 3.3.2).
       const int layers = base.model.layers;
       out.assign(1, 2);
       if (a.pp >= 2 && layers % a.pp != 0 && (layers + 2) % a.pp == 0) out.push_back(3);
       for (int v = 2; a.pp >= 2 && a.pp * v <= layers + 2; ++v) {
         if (layers % (a.pp * v) == 0) {
           out.push_back(2 * v);
         } else if ((layers + 2) % (a.pp * v) == 0) {
           out.push_back(2 * v + 1);
         }
       }
     },
     [](Assignment& a, int v) {
       a.vp = v / 2;
       a.vp_edges = v % 2 == 1;
     },
     [](const Scenario& s) {
       const ParallelismSpec& p = s.parallelism;
       return 2 * p.virtual_pipeline_stages +
              (p.account_for_embedding && p.account_for_loss ? 1 : 0);
     },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.vp.swept()) return;
       ParallelismSpec& p = s.parallelism;
       p.virtual_pipeline_stages = a.vp;
       mark(in, raw, "sweep.vp", "parallelism.virtual_pipeline_stages");
       if (a.vp_edges) {
         p.account_for_embedding = p.account_for_loss = true;
         mark(in, raw, "sweep.vp", "parallelism.account_for_embedding");
         mark(in, raw, "sweep.vp", "parallelism.account_for_loss");
       }
       // The schedule follows the virtual stages unless the file names another kind.
       if (p.schedule == PipelineSchedule::one_f_one_b ||
           p.schedule == PipelineSchedule::interleaved_1f1b) {
         raw.unset("parallelism.schedule");
       }
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.vp.swept()) return;
       out.emplace_back("parallelism.virtual_pipeline_stages", num(c.a.vp));
       if (c.a.vp_edges) {
         out.emplace_back("parallelism.account_for_embedding", "true");
         out.emplace_back("parallelism.account_for_loss", "true");
       }
       const Scenario& raw = raw_of(in, c.a);
       if (raw_at(in, c.a).is_set("parallelism.schedule") &&
           (raw.parallelism.schedule == PipelineSchedule::one_f_one_b ||
            raw.parallelism.schedule == PipelineSchedule::interleaved_1f1b)) {
         out.emplace_back("parallelism.schedule",
                          to_string(c.a.vp > 1 ? PipelineSchedule::interleaved_1f1b
                                               : PipelineSchedule::one_f_one_b));
       }
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.vp; }},
    // How the layers split over the pp*vp virtual stages: evenly, or with the embedding
    // and loss each counted as a layer (the vp axis's uneven layouts).
    {"vp_layout", -1, nullptr, nullptr, nullptr, nullptr, nullptr,
     [](const SweepInput&, const CandidateResult& c) -> Cell {
       return std::string(c.a.vp_edges ? "embedding+loss" : "even");
     }},
    {"cp", 11,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.cp, raw_of(in, a).parallelism.cp);
     },
     [](Assignment& a, int v) { a.cp = v; }, [](const Scenario& s) { return s.parallelism.cp; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (!in.spec.cp.swept()) return;
       raw.draft().parallelism.cp = a.cp;
       mark(in, raw, "sweep.cp", "parallelism.cp");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.cp.swept()) out.emplace_back("parallelism.cp", num(c.a.cp));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.cp; }},
    {"ep", 12,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.ep, raw_of(in, a).parallelism.ep);
     },
     [](Assignment& a, int v) { a.ep = v; }, [](const Scenario& s) { return s.parallelism.ep; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (!in.spec.ep.swept()) return;
       raw.draft().parallelism.ep = a.ep;
       mark(in, raw, "sweep.ep", "parallelism.ep");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.ep.swept()) out.emplace_back("parallelism.ep", num(c.a.ep));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.ep; }},
    {"microbatch", 14,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       const Scenario& base = raw_of(in, a);
       const int gpus = a.nodes * a.gpus_per_node;
       const int model_ranks = a.tp * a.pp * a.cp;
       const int dp = a.dp > 0 ? a.dp : (gpus % model_ranks == 0 ? gpus / model_ranks : 0);
       out.clear();
       // Every b with b * dp dividing the global batch: the divisors of global_batch / dp
       // when dp divides it (b * dp divides it only then), none otherwise.
       if (in.spec.microbatch.automatic && dp > 0 && a.global_batch > 0 &&
           a.global_batch % dp == 0) {
         divisors(out, a.global_batch / dp);
       }
       if (out.empty()) listed(out, in.spec.microbatch, base.parallelism.microbatch);
     },
     [](Assignment& a, int v) { a.microbatch = v; },
     [](const Scenario& s) { return s.parallelism.microbatch; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.microbatch.swept()) return;
       s.parallelism.microbatch = a.microbatch;
       mark(in, raw, "sweep.microbatch", "parallelism.microbatch");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.microbatch.swept())
         out.emplace_back("parallelism.microbatch", num(c.a.microbatch));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.microbatch; }},
    {"global_batch", 7,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.global_batch, raw_of(in, a).parallelism.global_batch);
     },
     [](Assignment& a, int v) { a.global_batch = v; },
     [](const Scenario& s) { return s.parallelism.global_batch; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.global_batch.swept()) return;
       s.parallelism.global_batch = a.global_batch;
       mark(in, raw, "sweep.global_batch", "parallelism.global_batch");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.global_batch.swept() || in.spec.global_batch_tokens)
         out.emplace_back("parallelism.global_batch", num(c.a.global_batch));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.global_batch; }},
    {"sequence_parallel", 15,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       out.clear();
       if (in.spec.sequence_parallel.empty())
         out.push_back(raw_of(in, a).parallelism.sequence_parallel ? 1 : 0);
       for (bool b : in.spec.sequence_parallel) out.push_back(b ? 1 : 0);
     },
     [](Assignment& a, int v) { a.sequence_parallel = v != 0; },
     [](const Scenario& s) { return s.parallelism.sequence_parallel ? 1 : 0; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (in.spec.sequence_parallel.empty()) return;
       raw.draft().parallelism.sequence_parallel = a.sequence_parallel;
       mark(in, raw, "sweep.sequence_parallel", "parallelism.sequence_parallel");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.sequence_parallel.empty())
         out.emplace_back("parallelism.sequence_parallel",
                          c.a.sequence_parallel ? "true" : "false");
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell {
       return std::string(c.a.sequence_parallel ? "true" : "false");
     }},
    // After vp, whose candidates leave the schedule to follow the virtual stages: a swept
    // schedule is set outright.
    {"schedule", 16,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.schedule, raw_of(in, a).parallelism.schedule);
     },
     [](Assignment& a, int v) { a.schedule = static_cast<PipelineSchedule>(v); },
     [](const Scenario& s) { return static_cast<int>(s.parallelism.schedule); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (in.spec.schedule.empty()) return;
       raw.draft().parallelism.schedule = a.schedule;
       mark(in, raw, "sweep.schedule", "parallelism.schedule");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.schedule.empty())
         out.emplace_back("parallelism.schedule", to_string(c.a.schedule));
     },
     // Not swept: "-" (the file's schedule, or the one the virtual stages imply).
     [](const SweepInput& in, const CandidateResult& c) -> Cell {
       return std::string(in.spec.schedule.empty() ? "-" : to_string(c.a.schedule));
     }},
    {"zero_stage", 17,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.zero_stage, raw_of(in, a).parallelism.zero_stage);
     },
     [](Assignment& a, int v) { a.zero_stage = v; },
     [](const Scenario& s) { return s.parallelism.zero_stage; },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (!in.spec.zero_stage.swept()) return;
       s.parallelism.zero_stage = a.zero_stage;
       mark(in, raw, "sweep.zero_stage", "parallelism.zero_stage");
       // Stage 3 as the Megatron-LM line runs it (--use-torch-fsdp2), unless the
       // scenario names its own implementation or a training stack, whose implementation
       // resolve() takes (DeepSpeed ZeRO-3 under deepspeed; scenario/validate_parallelism.cpp).
       const bool stack = raw.is_set("training.stack") || !in.spec.stack.empty();
       if (a.zero_stage == 3 && !s.parallelism.fsdp && !stack) {
         s.parallelism.fsdp_impl = ParallelismSpec::FsdpImpl::fsdp2;
         mark(in, raw, "sweep.zero_stage", "parallelism.fsdp.implementation");
       }
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.zero_stage.swept()) return;
       out.emplace_back("parallelism.zero_stage", num(c.a.zero_stage));
       // The implementation the candidate ran (above), which `zero_stage: 3` alone would
       // read as DeepSpeed's: written with it, as the fsdp axis writes its own.
       const RawScenario& raw = raw_at(in, c.a);
       const bool stack = raw.is_set("training.stack") || !in.spec.stack.empty();
       if (c.a.zero_stage == 3 && !raw.draft().parallelism.fsdp && !stack &&
           in.spec.fsdp.empty()) {
         out.emplace_back("parallelism.fsdp", "");
         out.emplace_back("parallelism.fsdp.implementation",
                          to_string(ParallelismSpec::FsdpImpl::fsdp2));
       }
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return c.a.zero_stage; }},
    // The ZeRO-3 implementation: each candidate is `parallelism.fsdp: {implementation: X}`,
    // stage 3 (a zero_stage below 3 beside it makes the candidate invalid).
    {"fsdp", 18,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.fsdp, raw_of(in, a).parallelism.fsdp_impl);
     },
     [](Assignment& a, int v) { a.fsdp = static_cast<ParallelismSpec::FsdpImpl>(v); },
     [](const Scenario& s) { return static_cast<int>(s.parallelism.fsdp_impl); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (in.spec.fsdp.empty()) return;
       ParallelismSpec& p = raw.draft().parallelism;
       p.fsdp = true;
       p.fsdp_impl = a.fsdp;
       mark(in, raw, "sweep.fsdp", "parallelism.fsdp");
       mark(in, raw, "sweep.fsdp", "parallelism.fsdp.implementation");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.fsdp.empty()) return;
       out.emplace_back("parallelism.fsdp", "");  // `fsdp: true` becomes a mapping
       out.emplace_back("parallelism.fsdp.implementation", to_string(c.a.fsdp));
     },
     // Not swept: "-" (the file's implementation, or none below stage 3).
     [](const SweepInput& in, const CandidateResult& c) -> Cell {
       return std::string(in.spec.fsdp.empty() ? "-" : to_string(c.a.fsdp));
     }},
    {"sharding", 19,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.sharding, raw_of(in, a).parallelism.sharding);
     },
     [](Assignment& a, int v) { a.sharding = static_cast<ParallelismSpec::Sharding>(v); },
     [](const Scenario& s) { return static_cast<int>(s.parallelism.sharding); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (in.spec.sharding.empty()) return;
       raw.draft().parallelism.sharding = a.sharding;
       mark(in, raw, "sweep.sharding", "parallelism.sharding");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.sharding.empty())
         out.emplace_back("parallelism.sharding", to_string(c.a.sharding));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return to_string(c.a.sharding); }},
    {"recompute", 20,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.recompute, raw_of(in, a).training.recompute);
     },
     [](Assignment& a, int v) { a.recompute = static_cast<Recompute>(v); },
     [](const Scenario& s) { return static_cast<int>(s.training.recompute); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (in.spec.recompute.empty()) return;
       s.training.recompute = a.recompute;
       mark(in, raw, "sweep.recompute", "training.recompute");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.recompute.empty())
         out.emplace_back("training.recompute", to_string(c.a.recompute));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return to_string(c.a.recompute); }},
    // The training stack's preset (training.stack): a candidate takes the preset's
    // mechanisms, keeping any the file's stack mapping overrides.
    {"stack", 21,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.stack, raw_of(in, a).training.stack.preset);
     },
     [](Assignment& a, int v) { a.stack = static_cast<StackSpec::Preset>(v); },
     [](const Scenario& s) { return static_cast<int>(s.training.stack.preset); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       if (in.spec.stack.empty()) return;
       raw.draft().training.stack.preset = a.stack;
       mark(in, raw, "sweep.stack", "training.stack");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.stack.empty()) return;
       // A stack written as a mapping keeps its overrides: only its preset changes.
       const bool mapping = raw_of(in, c.a).origin.count("training.stack.preset") > 0;
       out.emplace_back(mapping ? "training.stack.preset" : "training.stack", to_string(c.a.stack));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return to_string(c.a.stack); }},
    {"precision", 5,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.precision, raw_of(in, a).training.precision);
     },
     [](Assignment& a, int v) { a.precision = static_cast<Precision>(v); },
     [](const Scenario& s) { return static_cast<int>(s.training.precision); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (in.spec.precision.empty()) return;
       s.training.precision = a.precision;
       mark(in, raw, "sweep.precision", "training.precision");
       // training.fp8 says how the fp8 candidates train; the others have no use for it.
       if (a.precision != Precision::fp8) s.training.fp8.reset();
       // Likewise training.fp4 for the fp4 candidates.
       if (a.precision != Precision::fp4) s.training.fp4.reset();
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (in.spec.precision.empty()) return;
       out.emplace_back("training.precision", to_string(c.a.precision));
       // A candidate other than fp8 trains without the fp8 recipe (apply above).
       if (c.a.precision != Precision::fp8 && raw_of(in, c.a).training.fp8)
         out.emplace_back("training.fp8", "");
       if (c.a.precision != Precision::fp4 && raw_of(in, c.a).training.fp4)
         out.emplace_back("training.fp4", "");
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell { return to_string(c.a.precision); }},
    {"compression", 6,
     [](const SweepInput& in, const Assignment& a, std::vector<int>& out) {
       listed(out, in.spec.compression, raw_of(in, a).training.compression.scheme);
     },
     [](Assignment& a, int v) { a.compression = static_cast<CompressionSpec::Scheme>(v); },
     [](const Scenario& s) { return static_cast<int>(s.training.compression.scheme); },
     [](const SweepInput& in, const Assignment& a, RawScenario& raw) {
       Scenario& s = raw.draft();
       if (in.spec.compression.empty()) return;
       s.training.compression.scheme = a.compression;
       mark(in, raw, "sweep.compression", "training.gradient_compression.scheme");
     },
     [](const SweepInput& in, const CandidateResult& c, Settings& out) {
       if (!in.spec.compression.empty())
         out.emplace_back("training.gradient_compression.scheme", to_string(c.a.compression));
     },
     [](const SweepInput&, const CandidateResult& c) -> Cell {
       return to_string(c.a.compression);
     }},
};

}  // namespace

std::span<const Axis> axes() { return kAxes; }

std::string csv_cell(const Cell& cell) {
  if (const int* n = std::get_if<int>(&cell)) return std::to_string(*n);
  return csv_quote(std::get<std::string>(cell));
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

}  // namespace orrery::detail
