// The validated, fully resolved description of one what-if question: which cluster,
// which model, how it is split, how it is trained, what it costs. Plain data with
// units in the types; produced by scenario/load.h, consumed by model/ and the reports.
// Every field is documented, with unit, default and range, in docs/scenario-format.md.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/number_format.h"
#include "core/units.h"

namespace orrery {

struct GpuSpec {
  std::string preset;                 // preset it was resolved from, "" if given in full
  std::string name;                   // marketing name, for reports
  std::map<Dtype, FlopRate> peak;     // dense peak per format (core/number_format.h); a missing
                                      // format is unsupported
  Bytes memory;                       // HBM capacity
  Bandwidth memory_bandwidth;         // HBM bandwidth
  Watts tdp;                          // board power limit
  // Achievable fractions, measured (see scenario/presets/gpus.yaml). Used to time ops;
  // the simulator refuses to run without them.
  std::map<Dtype, double> gemm_efficiency;  // large-GEMM throughput / peak, per format
  // Fraction of that plateau a GEMM reaches, by its ideal duration at the plateau:
  // (ideal time, fraction) points, increasing in time; interpolated in log time.
  std::vector<std::pair<Seconds, double>> gemm_ramp;
  std::optional<double> attention_efficiency;  // fused attention throughput / 16-bit peak
  // cuDNN's fused flash attention (the kernel Transformer Engine's FusedAttention runs),
  // forward + backward at 8k unmasked over the 16-bit peak, where measured on this GPU
  // (scenario/presets/gpus.yaml); the stacks that run Transformer Engine take this kernel
  // on a GPU that gives it (scenario/validate_stack.cpp, complete_stack).
  std::optional<double> cudnn_attention_efficiency;
  std::optional<double> memory_efficiency;     // achievable / datasheet HBM bandwidth
  // Unfused attention's kernels over the s x S score tensor (its batched GEMMs, softmax,
  // dropout): achieved / datasheet HBM bandwidth, from a measured standard-attention run
  // (scenario/presets/gpus.yaml); unset: memory_efficiency.
  std::optional<double> score_tensor_efficiency;
  // PyTorch's dtype-converting copies (x.float(), type_as, .to(dtype)), which its
  // TensorIterator runs on the dynamic-cast path (LoadWithCast / StoreWithCast, one element
  // a thread, no vectorized loads: gpu_kernel_impl, aten/src/ATen/native/cuda/CUDALoops.cuh):
  // achieved / datasheet HBM bandwidth, from measured before/after sweeps of the change that
  // vectorized them (scenario/presets/gpus.yaml); unset: memory_efficiency.
  std::optional<double> cast_efficiency;
  // A 16-bit GEMM with an odd dimension, which cuBLAS runs with its alignment-1 kernels:
  // achieved FLOP/s over the 16-bit peak, measured (scenario/presets/gpus.yaml); unset:
  // such a GEMM is timed as an aligned one.
  std::optional<double> unaligned_gemm_efficiency;
  std::optional<Seconds> kernel_launch;        // shortest time a kernel occupies a stream
  // The host CPU's time to issue one eager PyTorch op with autograd (Python, the
  // dispatcher, the CUDA launch) on this GPU's system, measured on its host
  // (scenario/presets/gpus.yaml); the default of training.stack.host_overhead.
  std::optional<Seconds> host_overhead;
  // FP8 GEMMs with split (two-level, fp32-promoted) accumulation, over the fast-accumulation
  // plateau gemm_efficiency.fp8 was measured with; unset: no penalty (docs/model.md,
  // "Split accumulation of fp8 GEMMs").
  std::optional<double> fp8_split_accumulation;
  // Channels NCCL builds for a communicator of this GPU's 8-GPU NVSwitch node, read from
  // NCCL's logs (scenario/presets/gpus.yaml); the default of training.memory.nccl_channels.
  std::optional<int> nccl_channels;
  // FP8 GEMMs take their operands in any layout (Blackwell), so a per-tensor-scaled fp8
  // tensor is cast into one copy; false: both operands K-major (Hopper), and each cast
  // also writes a transposed copy (docs/model.md, "FP8 recipe").
  bool fp8_non_tn_gemm = false;
  // Figures of the preset that were not measured on this GPU but copied from another
  // (keys under cluster.gpu, "gemm_efficiency", "peak.fp4"), and the file that said so;
  // resolve() drops an entry that anything else (the scenario, a sweep) set again.
  std::vector<std::string> assumed;
  std::string assumed_file;
};

struct IntraNodeSpec {
  Bandwidth bandwidth;  // per GPU, per direction, to the node's switch (NVLink/NVSwitch)
  Seconds latency;      // per-message latency of one intra-node transfer
  bool nvls = false;    // NVLink SHARP (in-switch reduction) available
  double efficiency = 1.0;  // bus bandwidth NCCL reaches / line rate
  // Fraction of that bus bandwidth a collective reaches by buffer size (measured
  // nccl-tests curve over its largest value); interpolated in log size. Empty: none, and
  // the per-step latency alone models small messages.
  std::vector<std::pair<Bytes, double>> bus_bandwidth_curve;
};

enum class InterNodeTopology { fat_tree, rail_optimized };
const char* to_string(InterNodeTopology t);

struct InterNodeSpec {
  std::string fabric;  // fabric preset applied (scenario/presets/fabrics.yaml), "" for none
  int nics_per_node = 0;
  Bandwidth nic_bandwidth;       // per NIC, per direction
  Seconds latency;               // per-message latency of one inter-node transfer
  InterNodeTopology topology = InterNodeTopology::rail_optimized;
  double oversubscription = 1.0;  // downlink:uplink ratio at the leaf; 2.0 means 2:1
  // A second tier: nodes grouped into pods of `pod_size` GPUs, each pod's leaves under its
  // own spine, the pod spines joined by an aggregation layer whose uplink from each pod
  // carries 1/pod_oversubscription of what the pod's leaves send up (the Llama 3 cluster:
  // pods of 3,072 GPUs, 1:7 at the aggregation layer). 0: one pod of every node.
  int pod_size = 0;
  double pod_oversubscription = 1.0;
  double efficiency = 1.0;        // bus bandwidth NCCL reaches / line rate
  // Share of every inter-node link (NICs, leaf uplinks) that other jobs keep busy: an
  // inelastic background load the simulated job's flows cannot take back.
  double background_load = 0.0;
  // As GpuSpec::assumed, for keys under cluster.inter_node (a fabric preset's).
  std::vector<std::string> assumed;
  std::string assumed_file;
};

// The host side of a node, for CPU offload (cluster.host). Zero: not given (offload then
// refused by validation).
struct HostSpec {
  Bandwidth pcie_bandwidth;    // per GPU, per direction, between the GPU and host memory
  Bandwidth memory_bandwidth;  // the node's host DRAM bandwidth, all sockets together
  Bytes memory;                // the node's host memory
  bool given() const {
    return pcie_bandwidth.value() > 0 && memory_bandwidth.value() > 0 && memory.value() > 0;
  }
};

// Machines that compute slowly (cluster.slow_nodes): each machine (a server of
// `machine_gpus` GPUs; 0: a node is one) is one with probability `fraction`, and its GPUs
// then compute at `speed` of the others' rate. A synchronous step waits for its slowest
// GPU, so a job of n machines holds at least one with probability 1 - (1 - fraction)^n,
// and its expected step time is the blend of the step with and without one
// (simulator/step.h StepResult::slow_nodes). Default: MegaScale's production fleet (Jiang
// et al., NSDI 2024, arXiv:2402.15627): "approximately 0.5%" of machines markedly slower
// (section 5.1), hosts taking "approximately 10% more time" for the same forward
// computation (section 6.3), so speed 1 / 1.1. fraction 0: none.
struct SlowNodesSpec {
  double fraction = 0.005;
  double speed = 1.0 / 1.1;
  int machine_gpus = 0;
};

// What a system costs (cluster.price, written in a system preset or in the scenario):
// rent per GPU-hour, and the purchase prices of its node and of the fabric orrery builds
// for it (model/fabric.h). Every figure is a dated public list price or an example, and
// `source` says which; docs/scenario-format.md ("cluster.price").
struct PriceSpec {
  std::optional<double> usd_per_gpu_hour;  // rent; cost.usd_per_gpu_hour overrides it
  std::optional<double> node_usd;          // one node with its GPUs (and NICs, see nic_usd)
  double nic_usd = 0;                      // per NIC bought besides the node (0: in node_usd)
  std::optional<double> switch_usd;        // per fabric switch (leaf or spine)
  std::optional<double> transceiver_usd;   // per transceiver, two per cable
  std::optional<double> cable_usd;         // per cable
  std::string source;                      // where the prices come from, with their date
  bool any() const {
    return usd_per_gpu_hour || node_usd || nic_usd > 0 || switch_usd || transceiver_usd ||
           cable_usd;
  }
};

struct ClusterSpec {
  std::string preset;
  GpuSpec gpu;
  int nodes = 1;
  int gpus_per_node = 8;
  IntraNodeSpec intra_node;
  InterNodeSpec inter_node;
  HostSpec host;
  std::optional<std::string> calibration;  // orrery calibrate profile; none = the roofline
  // As GpuSpec::assumed, for keys under cluster (a system preset's: "intra_node.efficiency").
  std::vector<std::string> assumed;
  std::string assumed_file;
  PriceSpec price;
  SlowNodesSpec slow_nodes;
  int gpus() const { return nodes * gpus_per_node; }
};

// Every figure of the cluster that a preset assumed rather than measured, as full key
// paths ("cluster.gpu.gemm_efficiency", "cluster.intra_node.efficiency"), in order: the
// GPU's, the system's, the fabric's; the inter-node ones only with several nodes.
std::vector<std::string> assumed_figures(const ClusterSpec& c);

// The GPUs of a machine cluster.slow_nodes counts: machine_gpus (a node's when 0, or when
// the node is smaller than a machine), and the job's machines of that size.
int slow_node_machine_gpus(const ClusterSpec& c);
int slow_node_machines(const ClusterSpec& c);

// The probability that a job on `c` holds at least one slow machine,
// 1 - (1 - fraction)^machines; 0 on one machine (nothing faster to hold up) or at full
// speed (simulator/step.cpp).
double slow_node_probability(const ClusterSpec& c);

enum class ModelFamily { decoder, encoder, cnn };
enum class Activation { gelu, swiglu };
enum class Norm { layernorm, rmsnorm };
// model.position_embedding: a learned s x h table, rotary (RoPE), or ALiBi's per-head
// linear bias on the attention scores (no table; BLOOM, --position-embedding-type alibi in
// bigscience-workshop/Megatron-DeepSpeed).
enum class PositionEmbedding { learned, rope, alibi };
// Which keys each query attends to (model.attention_mask): every earlier key and itself
// (causal, decoders), every key (full, encoders), the last `attention_window` keys up to
// itself (sliding_window), or the earlier keys of its own document when documents of
// `document_length` tokens are packed into one sequence (document, causal inside each).
enum class AttentionMask { causal, full, sliding_window, document };
const char* to_string(ModelFamily f);
const char* to_string(Activation a);
const char* to_string(Norm n);
const char* to_string(PositionEmbedding p);
const char* to_string(AttentionMask a);

// Mixture of experts in the feed-forward block (Switch/GShard/Mixtral/DeepSeek style).
struct MoeSpec {
  int experts = 0;               // routed experts per MoE layer
  int top_k = 1;                 // experts each token is routed to
  std::int64_t expert_ffn = 0;   // hidden width of one expert's feed-forward
  int shared_experts = 0;        // experts every token passes through (DeepSeek)
  std::optional<double> capacity_factor;  // tokens per expert capped at cf*T*k/E; none = dropless
  int first_dense_layers = 0;    // leading layers with a dense FFN of width model.ffn
  // Tokens the busiest expert-parallel rank receives over the mean (1: uniform routing).
  // The all-to-all waits for that rank, and its experts compute that much longer.
  // Resolved (scenario/validate.cpp): 1.52 with aux_loss, 1.04 without, unless written.
  double load_imbalance = 1.0;
  // Node-limited routing (DeepSeek-V3 report section 2.1.2, M = 4): a token's experts lie
  // on at most this many nodes of its expert-parallel group; 0: no limit.
  int node_limit = 0;
  // Group-limited top-k (Megatron-Core --moe-router-num-groups, --moe-router-group-topk):
  // experts in router_groups equal groups, each token choosing among the experts of
  // router_group_topk of them; 0: no groups.
  int router_groups = 0;
  int router_group_topk = 0;
  // Number format of the exchanged tokens: dispatch (tokens to their experts, and the
  // gradients of the combine in backward) and combine (expert outputs back, and the
  // gradients of the dispatch). Absent: the activations' format.
  enum class Wire { fp8, bf16, fp32 };
  std::optional<Wire> dispatch_dtype, combine_dtype;
  // Megatron-Core --moe-pad-expert-input-to-capacity: with a capacity factor, every
  // expert's batch is padded to its capacity (otherwise tokens over it are dropped only).
  bool pad_to_capacity = false;
  // Megatron-Core's default auxiliary load-balancing loss (--moe-router-load-balancing-type
  // aux_loss); false: aux-loss-free balancing by an expert bias (DeepSeek-V3 2.1.2).
  bool aux_loss = true;
  // Megatron-Core --moe-shared-expert-overlap: the shared experts run while the routed
  // tokens are exchanged.
  bool shared_expert_overlap = false;
};

// Multi-head latent attention (DeepSeek-V2/V3): low-rank compressed Q and KV.
struct MlaSpec {
  int q_lora_rank = 0;      // 0: queries are projected directly from the hidden state
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
};

enum class CnnOp { conv, bn, relu, maxpool, avgpool, add, fc };
const char* to_string(CnnOp op);

// One row of a CNN's per-layer table. Spatial sizes are square (h = w).
struct CnnLayer {
  std::string name;
  CnnOp op = CnnOp::conv;
  int in_channels = 0;
  int out_channels = 0;
  int kernel = 1;
  int stride = 1;
  int out_size = 0;  // output height = width; 1 for fc
};

// An encoder's head: BERT's pre-training masked-LM head over the vocabulary at every
// position, or a sequence classifier on each sequence's first token (Hugging Face
// BertForSequenceClassification: the pooler, dropout and a linear layer of `labels`
// outputs).
enum class EncoderHead { masked_lm, classifier };
const char* to_string(EncoderHead h);

struct ModelSpec {
  std::string preset;
  std::string name;
  ModelFamily family = ModelFamily::decoder;
  // Transformer shape (decoder and encoder families).
  int layers = 0;
  std::int64_t hidden = 0;
  int heads = 0;
  int kv_heads = 0;         // = heads for multi-head attention, fewer for GQA
  // model.head_dim: the width of one query/key/value head when it is not hidden / heads
  // (Gemma, Qwen3-MoE: heads * head_dim != hidden); 0: hidden / heads.
  std::int64_t head_width = 0;
  std::int64_t ffn = 0;     // feed-forward hidden width (dense layers)
  std::int64_t vocab = 0;
  std::int64_t seq_len = 0;
  Activation activation = Activation::gelu;
  Norm norm = Norm::layernorm;
  // model.qk_norm: a norm (of model.norm's kind) over each attention head's query and key,
  // weight of head_dim each (Qwen3's q_norm/k_norm; Megatron-Core qk_layernorm).
  bool qk_norm = false;
  // model.mtp_layers: multi-token prediction depth (DeepSeek-V3 report section 2.2;
  // Megatron-Core --mtp-num-layers): each MTP layer normalises the hidden state and the
  // next tokens' embedding, projects their concatenation (2h -> h) and runs one more
  // transformer layer of the model's last kind, then the shared output head and a loss.
  // orrery places them with the loss, on the last pipeline stage.
  int mtp_layers = 0;
  // model.head and model.labels (encoders only): the head and a classifier's outputs.
  EncoderHead head = EncoderHead::masked_lm;
  int labels = 2;
  PositionEmbedding position_embedding = PositionEmbedding::learned;
  bool tied_embeddings = true;
  bool bias = true;         // linear layers carry biases
  bool dropout = false;     // dropout layers present (they store 1-byte masks)
  // Resolved: causal for decoders and full for encoders unless written.
  AttentionMask attention_mask = AttentionMask::causal;
  std::int64_t attention_window = 0;  // sliding_window: keys each query sees, itself included
  std::int64_t document_length = 0;   // document: tokens per packed document
  std::optional<MoeSpec> moe;
  std::optional<MlaSpec> mla;
  // CNN family: a per-layer table for one image of image_size x image_size.
  int image_size = 0;
  std::vector<CnnLayer> cnn_layers;

  std::int64_t head_dim() const {
    if (head_width > 0) return head_width;
    return heads > 0 ? hidden / heads : 0;
  }
  bool is_transformer() const { return family != ModelFamily::cnn; }
  // A head that projects onto the vocabulary (a decoder's, BERT's masked-LM head).
  bool vocab_head() const {
    return family == ModelFamily::decoder ||
           (family == ModelFamily::encoder && head == EncoderHead::masked_lm);
  }
};

// Megatron-LM's tokenizer pads the vocabulary to a multiple of
// --make-vocab-size-divisible-by (default kMegatronVocabDivisor) x tp
// (vocab_size_with_padding, megatron/core/tokenizers/utils/build_tokenizer.py at
// NVIDIA/Megatron-LM d98e8a64); orrery takes model.vocab as written, and orrery import
// writes the padded size.
inline constexpr std::int64_t kMegatronVocabDivisor = 128;
inline std::int64_t megatron_padded_vocab(std::int64_t vocab, std::int64_t multiple) {
  return (vocab + multiple - 1) / multiple * multiple;
}

// zero_bubble_h1: ZB-H1 of Qi et al. 2023 ("Zero Bubble Pipeline Parallelism"), 1F1B
// with each backward split into its input-gradient part (B) and weight-gradient part (W),
// the W of the first warm-up micro-batches deferred into the cool-down bubble.
// dualpipe: DeepSeek's bidirectional pipeline (DeepSeek-V3 report, section 3.2.1; the
// deepseek-ai/DualPipe reference schedule): rank r holds stage r for micro-batches that
// enter at rank 0 and stage pp-1-r for those that enter at rank pp-1, half of the
// micro-batches each way, so every rank keeps two copies' worth of its stages' weights.
enum class PipelineSchedule { gpipe, one_f_one_b, interleaved_1f1b, zero_bubble_h1, dualpipe };
const char* to_string(PipelineSchedule s);

// How activations travel between pipeline stages.
//  megatron:  each tensor-parallel rank sends 1/tp of the activation (Megatron-LM's
//             scatter/gather optimization, Narayanan et al. 2021 section 4.1);
//  deepspeed: DeepSpeed's PipelineEngine, as Megatron-DeepSpeed uses it: each rank also
//             sends 1/tp of the activation and of its gradient, partitioned over the
//             tensor-parallel group (PartitionedTensor, deepspeed/runtime/pipe/engine.py,
//             microsoft/DeepSpeed 56c522386878); the engine also selects DeepSpeed's
//             BF16_Optimizer and gradient reduction, and runs its TrainSchedule (1F1B
//             order only) with blocking transfers (docs/simulator.md); in bf16 its
//             BF16_Optimizer shards as ZeRO-1 at stage 0 too (validate_parallelism.cpp).
// Under megatron a transfer holds the sending stage's compute until it completes, except
// with the interleaved schedule and training.overlap_p2p (Megatron-LM
// --overlap-p2p-communication), where it runs on its own stream; under deepspeed it
// starts once both stages reach it and holds both until it completes.
enum class PipelineEngine { megatron, deepspeed };
const char* to_string(PipelineEngine e);

struct ParallelismSpec {
  int tp = 1;   // tensor parallel (Megatron column/row split)
  int pp = 1;   // pipeline stages
  int dp = 1;   // data parallel replicas
  int cp = 1;   // context parallel (sequence split for attention)
  int ep = 1;   // expert parallel; carved out of dp*cp, as in Megatron-Core
  // Expert tensor parallelism (Megatron-Core --expert-tensor-parallel-size): the experts'
  // GEMMs split over this many ranks; 0 until resolved, then tp (Megatron-Core's default)
  // or 1. At 1 under tp > 1 each rank dispatches its own sequence-parallel share of the
  // tokens and the expert-parallel ranks are carved out of tp*dp*cp.
  int expert_tp = 0;
  // Megatron-Core's --overlap-moe-expert-parallel-comm (the combined 1F1B schedule): each
  // steady-state forward runs as one pair with the backward of another micro-batch, each
  // one's MoE all-to-all hidden under the other's compute; one more micro-batch forward
  // before the first backward.
  bool moe_a2a_overlap = false;
  bool sequence_parallel = false;
  int virtual_pipeline_stages = 1;  // model chunks per pipeline rank (interleaving)
  // Uneven pipelines (Megatron-LM --decoder-first/last-pipeline-num-layers): transformer
  // layers on the first and last stage; the rest split evenly over the others.
  // With virtual_pipeline_stages > 1 each of these ranks' counts splits evenly over its
  // chunks (Megatron-Core get_num_layers_to_build).
  std::optional<int> first_stage_layers;
  std::optional<int> last_stage_layers;
  // Megatron --account-for-embedding/loss-in-pipeline-split: the embedding (the output
  // layer and loss) counts as one layer in the even split, so the first (last) virtual
  // stage builds one transformer layer fewer.
  bool account_for_embedding = false;
  bool account_for_loss = false;
  // Megatron --pipeline-model-parallel-layout: every virtual stage's layers spelled out
  // (model/pipeline.h, parse_pipeline_layout); empty: none. Sets virtual_pipeline_stages.
  std::string pipeline_layout;
  // Megatron --microbatch-group-size-per-virtual-pipeline-stage: the interleaved schedule
  // runs micro-batches through each chunk in groups of this many (default pp).
  int microbatch_group_size = 0;
  // The Llama 3 paper's flexible N (arXiv:2407.21783 section 3.3.2, Figure 6), as far as
  // Megatron-Core's order carries it: fewer micro-batches than pp, run as one group of all
  // of them (Megatron-Core asks for at least pp). A chunk whose input is not ready waits
  // for it. Smaller groups over several groups are refused (validate_parallelism.cpp).
  bool flexible_groups = false;
  PipelineSchedule schedule = PipelineSchedule::one_f_one_b;
  PipelineEngine pipeline_engine = PipelineEngine::megatron;
  // Context parallelism: keys and values pass around the cp ranks in cp - 1 steps
  // overlapped with attention (ring attention, Megatron-LM/Transformer Engine), or are
  // all-gathered before it (as the Llama 3 paper describes).
  enum class CpComm { ring, all_gather } cp_comm = CpComm::ring;
  // How ranks are numbered over the GPUs, fastest-varying first: Megatron-Core's default
  // "tp-cp-ep-dp-pp" (a stage's data-parallel replicas next to each other, the pipeline
  // outermost), or "tp-cp-ep-pp-dp" under --use-tp-pp-dp-mapping (a replica's stages next
  // to each other, so a replica can fill an NVLink domain and only the data-parallel
  // traffic leaves it): megatron/training/initialize.py line 395 and
  // megatron/training/config/common_config.py line 105 at NVIDIA/Megatron-LM d98e8a64.
  enum class RankOrder { tp_cp_dp_pp, tp_cp_pp_dp } rank_order = RankOrder::tp_cp_dp_pp;
  // GPUs between the first and the last member of a data-parallel (pipeline) group, the
  // group's span over the GPU numbering.
  int dp_span() const {
    return rank_order == RankOrder::tp_cp_pp_dp ? tp * cp * pp * dp : tp * cp * dp;
  }
  int pp_span() const {
    return rank_order == RankOrder::tp_cp_pp_dp ? tp * cp * pp : tp * cp * dp * pp;
  }
  // MoE token exchange: every rank to every rank, two-level (inside the node, then between
  // same-rail GPUs of different nodes, as DeepSeek-V3 routes and NCCL's PXN does), or the
  // faster of the two on an idle network.
  enum class Alltoall { automatic, direct, hierarchical } ep_alltoall = Alltoall::automatic;
  // The kernels that run the hierarchical exchange (Megatron-Core's flex dispatcher,
  // --moe-flex-dispatcher-backend, default "deepep": transformer_config.py line 898 at
  // NVIDIA/Megatron-LM d98e8a64): each has its own measured NIC rate by node count
  // (simulator/collectives.h, flex_exchange_nic_fraction).
  enum class EpBackend { deepep, hybridep } ep_backend = EpBackend::deepep;
  int zero_stage = 0;   // 0 none, 1 optimizer state (= Megatron distributed optimizer), 2 +grads, 3 +params
  bool fsdp = false;    // PyTorch FSDP full sharding; implies zero_stage 3
  // ZeRO-3 / FSDP: shard over all data-parallel ranks (full) or within a node and
  // replicate across nodes (hybrid, FSDP HYBRID_SHARD); keep gathered parameters from
  // forward to backward (false) or free them after each layer's forward (true, default).
  enum class Sharding { full, hybrid } sharding = Sharding::full;
  bool reshard_after_forward = true;
  // FSDP2: whether the unit that holds the output layer frees its gathered weights after
  // its forward; every other unit follows reshard_after_forward. torchtitan shards its
  // [norm, output] unit (with tied embeddings [tok_embeddings, norm, output]) with
  // reshard_after_forward only under its "always" policy: "do not reshard_after_forward the
  // last layers by default since FSDP would prefetch them immediately" (apply_fsdp_to_decoder
  // in torchtitan/distributed/fsdp.py at pytorch/torchtitan b5bcd76c). Resolved
  // (scenario/validate_parallelism.cpp): false under implementation fsdp2 with
  // training.stack fsdp2, else reshard_after_forward.
  bool reshard_output_after_forward = true;
  // Whether a ZeRO-3 / FSDP unit frees its gathered weights after its forward: the output
  // unit (the head, and with tied embeddings the embedding, one unit with it) follows
  // reshard_output_after_forward, the others reshard_after_forward.
  bool reshards_after_forward(bool output_unit) const {
    return output_unit ? reshard_output_after_forward : reshard_after_forward;
  }
  // ZeRO-3 / FSDP: layers whose parameter all-gather may run ahead of the layer being
  // computed (1: FSDP's default of one unit prefetched, backward_prefetch_limit and
  // forward_prefetch_limit = 1 in torch/distributed/fsdp/fully_sharded_data_parallel.py at
  // pytorch commit 005df1d6; 0: each gather waits for the
  // previous layer to finish, nothing overlaps).
  int fsdp_prefetch = 1;
  // ZeRO++ hierarchical partitioning (hpZ, Wang et al. 2023, section 3.2): a second copy
  // of the weights sharded over the data-parallel ranks of one node, from which the
  // backward pass all-gathers inside the node instead of across all of dp.
  bool zero_hpz = false;
  // ZeRO-3 / FSDP: the implementation that runs the gathers, which decides the gather
  // unit, the buckets and the per-collective cost (docs/simulator.md, "ZeRO-3 / FSDP
  // implementations"). Resolved (scenario/validate.cpp): `fsdp: true` means fsdp1,
  // `zero_stage: 3` alone deepspeed; the unit follows the implementation.
  enum class FsdpImpl { deepspeed, fsdp1, fsdp2, megatron_fsdp } fsdp_impl = FsdpImpl::fsdp1;
  // PyTorch's own FSDP (FSDP1 or FSDP2), as opposed to DeepSpeed or Megatron-FSDP.
  bool torch_fsdp() const { return fsdp_impl == FsdpImpl::fsdp1 || fsdp_impl == FsdpImpl::fsdp2; }
  // FSDP1 wrapping each transformer layer: the embedding, the final norm and the output
  // layer are the root instance's one flat parameter, which its post-forward does not free
  // (_post_forward_reshard in torch/distributed/fsdp/_runtime_utils.py at pytorch/pytorch
  // 00ae0bc9: "Do not free the root's parameters in the post-forward").
  bool fsdp1_root_unit() const {
    return zero_stage >= 3 && fsdp_impl == FsdpImpl::fsdp1 && fsdp_unit == FsdpUnit::layer;
  }
  // One all-gather (and reduce-scatter) per transformer layer (FSDP1 flat parameter per
  // wrapped block, FSDP2 one fully_shard group per block, Megatron-FSDP one unit per
  // TransformerLayer: fsdp_unit_modules in megatron/core/distributed/fsdp/
  // mcore_fsdp_adapter.py at Megatron-LM commit d98e8a64), or per parameterised module
  // coalesced up to fsdp_prefetch_bucket (DeepSpeed's per-submodule fetch).
  enum class FsdpUnit { layer, module } fsdp_unit = FsdpUnit::layer;
  // DeepSpeed ZeRO-3 (deepspeed/runtime/zero/config.py, DeepSpeed commit edaa7221):
  // stage3_prefetch_bucket_size 5e7 elements gathered in one call, reduce_bucket_size
  // 5e8 gradient elements per reduce-scatter, stage3_param_persistence_threshold 1e5
  // (smaller parameters are kept whole and never gathered).
  double fsdp_prefetch_bucket = 5e7;
  double fsdp_reduce_bucket = 5e8;
  double fsdp_persistence_threshold = 1e5;
  // A module of `params` elements that DeepSpeed's per-module fetch keeps whole on every
  // rank, never gathered (under stage3_param_persistence_threshold); no other unit does.
  bool fsdp_keeps_whole(double params) const {
    return fsdp_unit == FsdpUnit::module && fsdp_impl == FsdpImpl::deepspeed &&
           params < fsdp_persistence_threshold;
  }
  // Host time to issue one ZeRO-3 / FSDP collective, charged on its stream. 75.7 us:
  // CPU total per c10d::_allgather_base_ call under FSDP (61.336 ms over 810 calls,
  // torch.profiler table in pytorch/pytorch issue #102434).
  Seconds fsdp_host_overhead = Seconds(75.7e-6);
  int microbatch = 1;   // sequences (or images) per micro-batch per replica
  int global_batch = 1; // sequences (or images) per optimizer step

  int microbatches() const { return global_batch / (microbatch * dp); }
  // flexible_groups in effect (validated under interleaved-1f1b only): fewer micro-batches
  // than pp, run as one group of all of them.
  bool one_short_group() const { return flexible_groups && microbatches() < pp; }
  // Ranks over which ZeRO / distributed-optimizer shards dense state: dp x cp
  // (Megatron shards over the data-parallel group that includes context-parallel ranks).
  int shard_group() const { return dp * cp; }
  // The experts' tensor-parallel degree (expert_tp, tp where unset).
  int etp() const { return expert_tp > 0 ? expert_tp : tp; }
  // Whether each rank dispatches its own sequence-parallel share of the tokens rather than
  // the tensor-parallel group's gathered ones (expert_tp 1 under tp > 1).
  bool experts_split_tokens() const { return etp() < tp; }
  // Ranks holding the same experts, over which their gradients are reduced and their
  // ZeRO state sharded: tp*dp*cp / (etp*ep) (Megatron-Core's expert data-parallel group),
  // dp*cp / ep when etp is tp.
  int expert_shard_group() const { return shard_group() * tp / (etp() * ep); }
  // Data-parallel ranks of one stage inside a node; with their context-parallel peers
  // (node_dp x cp) they are hybrid sharding's and hpZ's in-node group.
  int node_dp(int gpus_per_node) const {
    return std::max(1, std::min(dp, gpus_per_node / (tp * cp)));
  }
  // Ranks ZeRO-3 / FSDP shards parameters, gradients and optimizer state over: all of
  // dp * cp, or with hybrid sharding the node's node_dp x cp ranks.
  int zero3_group(int gpus_per_node) const {
    if (sharding == Sharding::hybrid) return node_dp(gpus_per_node) * cp;
    return shard_group();
  }
};
const char* to_string(ParallelismSpec::CpComm c);
const char* to_string(ParallelismSpec::RankOrder o);
const char* to_string(ParallelismSpec::Alltoall a);
const char* to_string(ParallelismSpec::EpBackend b);
const char* to_string(ParallelismSpec::Sharding s);
const char* to_string(ParallelismSpec::FsdpImpl i);
const char* to_string(ParallelismSpec::FsdpUnit u);

// The training mode, named by the format its GEMMs compute in (compute_dtype).
enum class Precision { fp32, tf32, fp16, bf16, fp8, fp4 };
enum class Recompute { none, selective, full };
// Modules selective recompute re-runs (training.recompute_modules; Megatron-Core
// --recompute-modules, TransformerConfig.recompute_modules in megatron/core/transformer/
// transformer_config.py at NVIDIA/Megatron-LM d98e8a64, default ["core_attn"]). core_attn,
// mlp, moe and shared_experts checkpoint their module: its input stays, the tensors its ops
// keep inside are dropped and the module's forward runs again before its backward.
// layernorm (the input and pre-MLP norms), mla_up_proj (MLA's query and key-value
// up-projections) and moe_act (the experts' activation) discard their output: the next
// op's saved input is dropped and the module runs again before that op's backward.
enum RecomputeModule : unsigned {
  kRecomputeCoreAttn = 1u << 0,
  kRecomputeMlp = 1u << 1,
  kRecomputeMoe = 1u << 2,
  kRecomputeMoeAct = 1u << 3,
  kRecomputeLayernorm = 1u << 4,
  kRecomputeMlaUpProj = 1u << 5,
  kRecomputeSharedExperts = 1u << 6,
};
// Megatron-Core's order of the choices (transformer_config.py).
inline constexpr RecomputeModule kRecomputeModuleOrder[] = {
    kRecomputeCoreAttn, kRecomputeMoeAct, kRecomputeLayernorm,    kRecomputeMlaUpProj,
    kRecomputeMlp,      kRecomputeMoe,    kRecomputeSharedExperts};
// Names in Megatron-Core's spelling.
const char* recompute_module_name(RecomputeModule m);
// The listed modules, comma-separated ("core_attn, layernorm").
std::string describe_recompute_modules(unsigned modules);
// adafactor: Shazeer & Stern 2018 with its default beta1 = 0 (no first moment) and
// factored second moments (a row and a column vector per weight matrix).
enum class Optimizer { adam, adamw, lamb, sgd, lars, adafactor };
// Adam/AdamW state precision (training.optimizer_state_dtype, training.main_params_dtype;
// Megatron-Core --use-precision-aware-optimizer with --exp-avg-dtype/--exp-avg-sq-dtype and
// --main-params-dtype, megatron/training/arguments.py at NVIDIA/Megatron-LM d98e8a64).
//  StateDtype   both moments in fp32, bf16 (DeepSeek-V3, arXiv:2412.19437 section 3.3.3)
//               or 8 bits with one fp32 absmax per block (bitsandbytes 8-bit Adam,
//               Dettmers et al. 2022, arXiv:2110.02861).
//  MainParams   the master copy of the weights under 16-bit training: fp32, fp16, or none
//               (the optimizer updates the 16-bit weights themselves).
enum class StateDtype { fp32, bf16, int8 };
enum class MainParams { fp32, fp16, none };
// The format the training's GEMMs compute in; fp8 trains with FP8 GEMMs, fp4 with FP4
// GEMMs (the recipe in Fp4Spec).
Dtype compute_dtype(Precision p);
// The name of compute_dtype(p).
const char* to_string(Precision p);
const char* to_string(Recompute r);
const char* to_string(Optimizer o);
const char* to_string(StateDtype d);
const char* to_string(MainParams m);

// How much training a run does (training.target): a fixed budget of tokens, samples or
// optimizer steps, or a target loss reached through the critical-batch model of
// McCandlish et al. 2018 (arXiv:1812.06162, eqs. 2.11-2.12): at batch B (samples) the run
// takes S = S_min (1 + B_noise / B) steps and E = E_min (1 + B / B_noise) samples, with
// S_min = E_min / B_noise. Token figures are turned into samples by dividing by seq_len.
struct TargetSpec {
  enum class Kind { tokens, samples, steps, critical_batch } kind = Kind::steps;
  double amount = 0;   // tokens, samples or steps (fixed budgets)
  double e_min = 0;    // critical_batch: samples needed at a vanishing batch
  double b_noise = 0;  // critical_batch: gradient noise scale, samples
  // As read: e_min / b_noise given in tokens (validation turns them into samples).
  bool e_min_in_tokens = false, b_noise_in_tokens = false;
  // critical_batch with b_noise from Kaplan et al. 2020's fit B_crit(L) = 2.1e8 tokens *
  // L^-4.8 (shared data row kaplan20-bcrit): the target loss in nats.
  std::optional<double> loss;
};

// Data-parallel gradient compression (training.gradient_compression); docs/model.md,
// "Gradient compression", gives each scheme's bytes, collectives and kernels.
//  fp16, bf16: fp32 gradients cast to 16 bits for the reduction;
//  int8, int4: quantized with one fp32 scale per scale_block elements (QSGD-style),
//              reduced as an all-to-all of compressed chunks then an all-gather;
//  onebit:     signs with one fp32 scale per scale_block elements and error feedback
//              (1-bit Adam, Tang et al. 2021), the same two collectives, after
//              warmup_steps uncompressed steps;
//  topk:       the density fraction of largest entries, values and int32 indices,
//              all-gathered (sparse sums densify), with error feedback;
//  powersgd:   rank-r factors P and Q of every weight matrix's gradient, two all-reduces
//              (Vogels et al. 2019), with error feedback; other parameters uncompressed;
//  local_sgd:  no gradient reduction; parameters averaged every `period` steps.
struct CompressionSpec {
  enum class Scheme { none, fp16, bf16, int8, int4, onebit, topk, powersgd, local_sgd };
  Scheme scheme = Scheme::none;
  double density = 0.01;   // topk: fraction of entries sent
  int rank = 4;            // powersgd
  int period = 8;          // local_sgd: steps between averagings
  int warmup_steps = 0;    // onebit: uncompressed steps first
  int scale_block = 512;   // int8/int4/onebit: elements per fp32 scale
  double convergence = 1.0;  // steps to the same target / steps uncompressed
};
const char* to_string(CompressionSpec::Scheme s);

// Loss scaling (training.loss_scaling), after Micikevicius et al. 2018 ("Mixed Precision
// Training", section 3.2): the loss is multiplied by a scale S before the backward pass;
// before the update the gradients are unscaled by 1/S and checked for inf/NaN, and a
// step that overflowed is skipped. `dynamic` doubles S after `window` steps without an
// overflow and halves it after `hysteresis` overflows; the defaults are Megatron-LM's
// (--loss-scale-window 1000, --hysteresis 2). `fixed` (YAML `static`) keeps S.
struct LossScalingSpec {
  enum class Kind { none, fixed, dynamic };
  std::optional<Kind> kind;  // unset: dynamic under fp16 (its 5-bit exponent needs it), else none
  int window = 1000;
  int hysteresis = 2;
  Kind effective(Precision p) const {
    return kind.value_or(p == Precision::fp16 ? Kind::dynamic : Kind::none);
  }
};
const char* to_string(LossScalingSpec::Kind k);

// Groups of linear layers, by the op names of model/transformer.cpp.
enum Fp8Gemm : unsigned {
  kFp8Qkv = 1u << 0,      // attn.qkv and the MLA projections (q_down/up, q_proj, kv_down/up)
  kFp8Proj = 1u << 1,     // attn.proj
  kFp8Fc1 = 1u << 2,      // mlp.fc1, moe.shared.fc1
  kFp8Fc2 = 1u << 3,      // mlp.fc2, moe.shared.fc2
  kFp8Experts = 1u << 4,  // moe.experts.fc1/fc2
  kFp8Router = 1u << 5,   // moe.router
  kFp8Head = 1u << 6,     // head.output (and BERT's head.pooler, head.transform, head.classifier)
  kFp8Other = 1u << 7,    // any other GEMM (CNN rows)
};
// The linear layers Megatron-Core builds from Transformer Engine modules, which fp8
// autocast runs in fp8: attention and MLP projections and the grouped experts. Its LM
// head is a plain tensor_parallel.ColumnParallelLinear and its MoE router gate a
// torch.nn.functional.linear (megatron/core/models/gpt/gpt_model.py,
// transformer/moe/router.py), so both stay in 16 bits (CNN rows: fp8 as before).
constexpr unsigned kFp8TeLayers = kFp8Qkv | kFp8Proj | kFp8Fc1 | kFp8Fc2 | kFp8Experts | kFp8Other;
// The FP8 recipe (training.fp8, only with precision fp8; docs/model.md, "FP8 recipe").
// Without the section, fp8 training keeps the plain model: every linear layer in fp8
// with its input and output-gradient casts, nothing for weights or scaling state.
//  format:  hybrid (E4M3 forward tensors, E5M2 gradients: Transformer Engine's default
//           Format.HYBRID; Micikevicius et al. 2022, arXiv:2209.05433) or e4m3. Both are
//           1 byte and run at the one FP8 tensor-core rate the datasheets list.
//  scaling: delayed (scale from an amax history kept per tensor, the amax taken inside
//           the cast kernel: TE DelayedScaling), current (per-tensor scale from an extra
//           amax read of each tensor before its cast: TE Float8CurrentScaling), block
//           (one fp32 scale per 1x128 activation tile and per 128x128 weight block:
//           DeepSeek-V3 report, arXiv:2412.19437, section 3.3, fine-grained
//           quantization; TE Float8BlockScaling) or mxfp8 (one E8M0 byte per 32
//           elements: OCP Microscaling Formats (MX) v1.0; TE MXFP8BlockScaling, Blackwell),
//           rowwise (torchao Float8LinearRecipeName.ROWWISE: one fp32 scale per row of
//           each operand along the GEMM's inner dimension, computed at cast time, e4m3
//           throughout) or rowwise_gw_hp (ROWWISE_WITH_GW_HP: the same forward, the
//           weight-gradient GEMM in bf16); torchao/float8/config.py at pytorch/ao 36027d82.
//           The two row-wise recipes follow torchao: 16-bit saved inputs, weights cast
//           every micro-batch, all-gathers in bf16 (docs/model.md, "Row-wise scaling").
struct Fp8Spec {
  enum class Format { hybrid, e4m3 } format = Format::hybrid;
  enum class Scaling {
    delayed,
    current,
    block,
    mxfp8,
    rowwise,
    rowwise_gw_hp
  } scaling = Scaling::delayed;
  // torchao's row-wise recipes (rowwise, rowwise_gw_hp).
  bool rowwise() const { return scaling == Scaling::rowwise || scaling == Scaling::rowwise_gw_hp; }
  // One scale per tensor (delayed and current scaling), not per block or row.
  bool per_tensor() const { return scaling == Scaling::delayed || scaling == Scaling::current; }
  // delayed: steps of amax history per tensor (TE DelayedScaling.amax_history_len = 1024;
  // Megatron-LM's --fp8-amax-history-len defaults to 1).
  int amax_history = 1024;
  // Linear-layer groups run in fp8 (Fp8Gemm bits); the rest run at the 16-bit rate.
  // Default: the layers Transformer Engine builds in Megatron-Core (kFp8TeLayers).
  unsigned gemms = kFp8TeLayers;
  // Transformer layers kept wholly in bf16 at the start and the end of the model
  // (Megatron-Core num_layers_at_start_in_bf16 / num_layers_at_end_in_bf16).
  int bf16_first = 0, bf16_last = 0;
  // fp8 copies of the weights cast once per step and kept (TE is_first_microbatch; the
  // default unless ZeRO-3/FSDP) or cast again every micro-batch.
  std::optional<bool> weight_cache;
  bool tp_allgather_fp8 = false;     // sequence-parallel input all-gathers in fp8
  bool param_allgather_fp8 = false;  // ZeRO-3/FSDP parameter all-gathers in fp8
  // training.fp8.weights: how the fp8 GEMMs' weights live between steps, fp8 tensors
  // (true: Megatron-Core's --fp8-param-gather, TE fp8_model_init) or 16-bit (false);
  // absent: resolved into fp8_weights by validation.
  std::optional<bool> weights_key;
  // Resolved from `weights_key` and the gathers: the model's weights are themselves fp8
  // tensors, cast once a step from the fp32 main weights, so no micro-batch casts them.
  // Per-tensor scaling (Megatron-FSDP or Megatron-Core's distributed optimizer with fp8
  // parameter all-gathers: fp8_param_gather, TE fp8_model_init, param_and_grad_buffer.py;
  // NVIDIA/Megatron-LM core_v0.14.0 23e00ed0): one byte an element, and where fp8 GEMMs
  // need the transposed copy it is made from the fp8 data (docs/model.md, "Weights kept in
  // fp8"; Megatron-FSDP drops it after each unit's forward,
  // release_params_fp8_transpose_cache in megatron_fsdp.py). MXFP8 (the distributed
  // optimizer only): the row-wise and column-wise copies with their scales are the weights,
  // requantized once a step from the bf16 gather that lands in the gradient buffer
  // (_post_param_sync, param_and_grad_buffer.py at NVIDIA/Megatron-LM d98e8a64), and no
  // 16-bit copy is kept beside them.
  bool fp8_weights = false;
  // Resolved, not a key: with fp8_weights, the fp8 transpose is made once a step and kept
  // across micro-batches (Megatron-Core's distributed optimizer), not made in every forward
  // and backward (Megatron-FSDP, which releases it after each unit).
  bool fp8_transpose_kept = false;
};
const char* to_string(Fp8Spec::Format f);
const char* to_string(Fp8Spec::Scaling s);
// The recipe in one line, for reports ("hybrid (E4M3 forward, ...), delayed scaling ...").
std::string describe(const Fp8Spec& f);

// The FP4 recipe (training.fp4, only with precision fp4, which only GPUs with an fp4 peak
// take; docs/model.md, "FP4 recipe"). Validation creates the default section under fp4,
// so a reader tests `fp4` alone. The linear layers Transformer Engine builds in
// Megatron-Core (kFp8TeLayers) run their three GEMMs in E2M1; the LM head, the router
// and attention stay in bf16 (NVFP4 paper, arXiv:2509.25149, section 4.1).
//  format: nvfp4 (Transformer Engine NVFP4BlockScaling, transformer_engine/common/recipe/
//          __init__.py at NVIDIA/TransformerEngine d0067d0d: one E4M3 scale per 16
//          elements and an fp32 scale per tensor, taken from an amax pass before the cast;
//          weights scaled in 16x16 blocks; a 16x16 random Hadamard transform on the
//          column-wise copies of inputs and output gradients, the weight-gradient GEMM's
//          operands; stochastic rounding on gradients) or mxfp4 (OCP Microscaling
//          Formats v1.0: one E8M0 scale per 32 elements from the block's own amax, no
//          tensor scale, no transform).
//  bf16_first, bf16_last: transformer layers kept wholly in bf16 at the start and the end
//          (TE sets none; the paper's 12B run kept the first two and the last eight
//          blocks, 16% of its linear layers, section 4.1).
struct Fp4Spec {
  enum class Format { nvfp4, mxfp4 } format = Format::nvfp4;
  int bf16_first = 0, bf16_last = 0;
  // fp4 copies of the weights cast once per step and kept (resolved like
  // Fp8Spec::weight_cache: on unless ZeRO-3/FSDP).
  bool weight_cache = true;
};
const char* to_string(Fp4Spec::Format f);
// The recipe in one line, for reports ("nvfp4 (E2M1, ...), ...").
std::string describe(const Fp4Spec& f);

// training.optimizer_offload: Megatron-Core's hybrid device optimizer
// (--optimizer-cpu-offload, megatron/core/optimizer/cpu_offloading/hybrid_optimizer.py at
// NVIDIA/Megatron-LM d98e8a64): `fraction` of each rank's optimizer shard (fp32 master and
// moments) lives in host memory and steps on the CPU; gradients go down and updated
// parameters come back over PCIe.
struct OptimizerOffloadSpec {
  double fraction = 1.0;  // --optimizer-offload-fraction (arguments.py default 1.0)
  bool overlap = false;   // --overlap-cpu-optimizer-d2h-h2d (default off)
};

// training.activation_offload: Megatron-Core cpu_offloading, on with
// --cpu-offloading-num-layers (model_parallel_config.py at NVIDIA/Megatron-LM d98e8a64),
// run by Transformer Engine's get_cpu_offload_context (transformer_engine/pytorch/
// cpu_offload.py at NVIDIA/TransformerEngine d0067d0d, DefaultOffloadSynchronizer): the
// saved activations of the first `layers` transformer layers go to host memory on a side
// stream after their forward and come back before their backward (model/memory.h,
// simulator/pipeline_pass.cpp).
struct ActivationOffloadSpec {
  int layers = 0;  // --cpu-offloading-num-layers
};

// training.stack: the framework that runs the step, as named mechanisms (docs/model.md,
// "Training stacks"). A preset sets each mechanism; the mapping form overrides them one
// by one. Resolved in scenario/validate_stack.cpp (complete_stack).
struct StackSpec {
  enum class Preset { megatron_core, nemo, deepspeed, fsdp1, fsdp2 } preset = Preset::megatron_core;
  // How rotary embeddings are applied to the queries and keys: one fused kernel (TE /
  // Megatron-Core apply_rope_fusion), the unfused rotate_half form (q*cos + rotate_half(q)*sin,
  // five kernels a tensor) or the complex form (fp32 upcast, complex multiply, cast back:
  // three kernels a tensor, torchtitan), or the rotation_matrix form (fp32 upcast, each
  // pair times its 2x2 rotation as a broadcast product, the sum over it, cast back: four
  // kernels a tensor, ibm-fms RotaryEmbedding.adjusted_qk). Only for position_embedding rope.
  enum class Rope { fused, rotate_half, complex, rotation_matrix } rope = Rope::fused;
  // The MLP activation as one kernel (Megatron bias_swiglu / bias_gelu fusion) or as the
  // separate kernels eager PyTorch runs (SwiGLU: silu, then the product; a bias added by a
  // kernel of its own).
  bool activation_fusion = true;
  // torch.compile (fsdp1, fsdp2 only): Inductor fuses the pointwise chains, so RoPE, the
  // activation and the loss run as single kernels.
  bool compile = false;
  // Read from the mapping only; resolved into TrainingSpec::cross_entropy_fusion.
  bool cross_entropy_fusion = false;
  // The optimizer step's kernels (Adam/AdamW): one fused multi-tensor kernel (apex / TE
  // FusedAdam, DeepSpeed FusedAdam, torch fused=True) or torch's default `foreach` path,
  // a sequence of torch._foreach_* ops, each a pass over every parameter
  // (calibrate/compute_model.cpp, docs/model.md "Training stacks"), or per_parameter:
  // torch's _single_tensor_adam (foreach=False, fused=False), the same ops as kernels of
  // their own for each parameter tensor the rank holds.
  enum class OptimizerKernels { fused, foreach, per_parameter } optimizer = OptimizerKernels::fused;
  // How an RMSNorm runs (model.norm rmsnorm only): one kernel each way (Transformer
  // Engine / Apex, PyTorch's fused F.rms_norm, Inductor), or the chain of PyTorch ops of a
  // norm written out in Python (x.float(), pow, mean, add eps, rsqrt, the product, the cast
  // back, the weight's product: Hugging Face LlamaRMSNorm, ibm-fms LayerNormParameterized),
  // each kernel a pass over the activation in HBM (model/transformer.cpp, add_norm).
  enum class NormKernels { fused, unfused } norm = NormKernels::fused;
  // The fused-attention kernel (training.flash_attention only): FlashAttention-2 and the
  // kernels at its rate, which the GPU preset's attention_efficiency measures, or the
  // first FlashAttention (flash-attn 1.x's CUDA kernel, and the 2022 Triton FlashAttention
  // that LLM Foundry's attn_impl triton runs), timed at kFlash1OverFlash2 of that rate
  // (calibrate/compute_model.cpp), or cuDNN's fused flash attention at the GPU's
  // cudnn_attention_efficiency. Preset default in scenario/validate_stack.cpp (complete_stack).
  enum class AttentionKernel { flash2, flash1, cudnn } attention = AttentionKernel::flash2;
  // How the attention's query, key and value projections (and a SwiGLU MLP's gate and up
  // projections) are stored: one concatenated weight, one GEMM (Megatron's linear_qkv and
  // linear_fc1, MPT's Wqkv), or separate nn.Linear modules over the same input (ibm-fms
  // query/key/value and wg/w1, Hugging Face q_proj/k_proj/v_proj and gate_proj/up_proj,
  // torchtitan wq/wk/wv and w1/w3). Separate, eager autograd sums the input gradients of
  // the GEMMs that share an input, one add kernel per extra GEMM (model/transformer.cpp).
  // Every preset defaults to fused; a file that runs such a model sets it.
  enum class Projections { fused, separate } projections = Projections::fused;
  // Megatron's FusedScaleMaskSoftmax under unfused attention (training.flash_attention
  // false): its fused scale-mask-softmax
  // kernel (fused: wherever the kernel applies, as orrery assumes of every version), its
  // PyTorch path always (torch: --no-masked-softmax-fusion; the scores cast to fp32,
  // scaled, masked and softmaxed as kernels of their own, cast back), or the kernel only
  // where is_kernel_available passes with get_batch_per_block's arguments out of order
  // (swapped_check: NVIDIA/Megatron-LM 40becfc9, fixed in 0d350c8d the same day, and
  // bigscience-workshop/Megatron-DeepSpeed from 9f5f5d4c, 2021-10-21, to 1cb76a64,
  // 2022-03-06), elsewhere the PyTorch path. torch and swapped_check under the deepspeed
  // preset only; model/attention_mask.h (masked_softmax_falls_back), model/transformer.cpp.
  enum class MaskedSoftmax { fused, torch, swapped_check } masked_softmax = MaskedSoftmax::fused;
  // Host (CPU) time to issue one kernel: the Python call, autograd's bookkeeping and the
  // dispatcher in eager PyTorch. A run of kernels between two collectives takes at least
  // its kernels x this (simulator/layer_templates.cpp), each optimizer pass at least this;
  // 0 for CUDA-graphed paths. Preset default in scenario/validate_stack.cpp (complete_stack).
  Seconds host_overhead = Seconds(0.0);
  // The loss computed in this many chunks of the tokens, each chunk's output projection and
  // cross-entropy (forward and backward) before the next's, as torchtitan's
  // ChunkedLossWrapper does (num_chunks, default 8 there: torchtitan/components/loss.py at
  // pytorch/torchtitan b5bcd76c): the logits and the loss's fp32 temporaries of one chunk
  // are live at a time. 1: the whole micro-batch's logits at once (every preset's default).
  int cross_entropy_chunks = 1;
  // How gradients add up over the micro-batches of a step (presets megatron-core and nemo,
  // zero_stage 0-2; simulator/pipeline_pass.cpp):
  //  fused     the weight-gradient GEMM adds into the main gradient itself
  //            (--gradient-accumulation-fusion, Megatron-LM's default since 83b1e42f,
  //            2022-02-13; NeMo 24.07's gradient_accumulation_fusion: true);
  //  hook      --no-gradient-accumulation-fusion: the DDP's backward hook runs
  //            param.main_grad.add_(param.grad) for every parameter after every
  //            micro-batch's backward into its contiguous gradient buffer;
  //  autograd  no gradient buffer (Megatron-LM 2021: torch DDP under no_sync, or local DDP
  //            without --use-contiguous-buffers-in-ddp): PyTorch's AccumulateGrad adds each
  //            micro-batch's gradient into param.grad, from the second micro-batch on.
  enum class GradAccumulation { fused, hook, autograd };
  GradAccumulation gradient_accumulation = GradAccumulation::fused;
  // Under tensor parallelism, whether a column-parallel layer's backward issues the
  // reduction of its input gradient (reduce-scatter under sequence parallelism, else
  // all-reduce) asynchronously before its weight-gradient GEMM and waits for it after
  // (Transformer Engine's Linear / LayerNormLinear backward since v0.1; Megatron-LM's
  // LinearWithGradAccumulationAndAsyncCommunication since cf7efd4f, 2021-08-30), or runs it
  // after both GEMMs (Megatron-DeepSpeed, 2021 Megatron-LM). Preset default in
  // scenario/validate_stack.cpp (complete_stack); model/layer_pass.cpp places it.
  bool tp_dgrad_overlap = true;

  // A PyTorch-native stack (fsdp1, fsdp2: eager PyTorch modules, torch.compile possible).
  bool pytorch_native() const { return preset == Preset::fsdp1 || preset == Preset::fsdp2; }
  // Eager PyTorch: a PyTorch-native stack not compiled (each op its own kernels).
  bool eager_pytorch() const { return pytorch_native() && !compile; }
};
const char* to_string(StackSpec::Preset p);
const char* to_string(StackSpec::Rope r);
const char* to_string(StackSpec::OptimizerKernels o);
const char* to_string(StackSpec::NormKernels n);
const char* to_string(StackSpec::AttentionKernel a);
const char* to_string(StackSpec::Projections p);
const char* to_string(StackSpec::MaskedSoftmax m);
const char* to_string(StackSpec::GradAccumulation g);

// training.memory: how the training stack's allocator holds device memory and how much
// headroom `check` wants below capacity (model/memory.h, docs/model.md "Memory").
struct MemorySpec {
  // PyTorch's caching allocator with its default segments, with expandable_segments:True,
  // or none (reserved = allocated, the pre-allocator model; training.allocator_overhead
  // then stands for fragmentation alone). model/caching_allocator.h.
  enum class Allocator { caching, expandable_segments, none } allocator = Allocator::caching;
  // Share of HBM kept free: a device total above capacity x (1 - margin) still fits but is
  // flagged "near capacity". 0.05: the share above which report/band.h's kMemoryNearFull
  // already calls a prediction past every validation case (the highest reached 0.946;
  // 0.954 with the NCCL buffers modelled, nemo2407-nemotron-340b-128, which trained).
  double margin = 0.05;
  // Device memory outside the caching allocator and the tensors it holds for the libraries
  // (model/memory.h "Runtime memory", docs/model.md "Memory per GPU"):
  // The CUDA context of one process under lazy module loading (CUDA_MODULE_LOADING=LAZY,
  // which PyTorch sets unless the user does, pytorch/pytorch pull request 86509): 426 MiB
  // measured by nvidia-smi after the first CUDA call of PyTorch 2.10 with CUDA 13.0 on an
  // RTX 6000 Ada (unslothai/unsloth-zoo pull request 1053). Outside the allocator.
  Bytes cuda_context = Bytes(426.0 * 1048576.0);
  // NCCL channels a communicator connects. NCCL searches its own per GPU and topology
  // (src/graph/search.cc, per-architecture speed tables, at NVIDIA/nccl 5067397c) and doubles
  // it (src/graph/connect.cc); the default is cluster.gpu.nccl_channels (read from NCCL's
  // logs), else 32, the count on 8-GPU H100 NVSwitch nodes (NVIDIA/nccl issue 1685:
  // channels 00-31 per pair of H100s).
  int nccl_channels = 32;
  // cuBLAS workspace PyTorch allocates from the caching allocator per (handle, stream): the
  // Hopper default of CUBLAS_WORKSPACE_CONFIG, 4096 KiB x 8 = 32 MiB (":4096:2:16:8",
  // 8.125 MiB, on other GPUs), plus the separate cuBLASLt workspace, 1024 KiB
  // (aten/src/ATen/cuda/CublasHandlePool.cpp at pytorch/pytorch 26a39059). One stream.
  Bytes cublas_workspace = Bytes(33.0 * 1048576.0);
};

struct TrainingSpec {
  Precision precision = Precision::bf16;
  // training.fp8: the FP8 recipe. Validated: present only when precision is fp8 (so a
  // reader tests `fp8` alone); absent under fp8, the plain fp8 model (Fp8Spec), which is
  // not the default recipe, so validation does not create one.
  std::optional<Fp8Spec> fp8;
  // training.fp4: the FP4 recipe; present exactly when precision is fp4 (validation
  // creates the default one).
  std::optional<Fp4Spec> fp4;
  Recompute recompute = Recompute::none;
  // training.recompute_modules (RecomputeModule bits): what selective recompute re-runs.
  unsigned recompute_modules = kRecomputeCoreAttn;
  Optimizer optimizer = Optimizer::adam;
  StateDtype optimizer_state_dtype = StateDtype::fp32;  // Adam/AdamW only (validated)
  MainParams main_params_dtype = MainParams::fp32;      // Adam/AdamW, 16-bit training only
  std::optional<OptimizerOffloadSpec> optimizer_offload;  // none: the state stays in HBM
  std::optional<ActivationOffloadSpec> activation_offload;  // none: activations stay in HBM
  bool flash_attention = true;     // fused attention: no s^2 tensors are stored
  // Megatron-Core's fused vocabulary-parallel cross-entropy (--cross-entropy-loss-fusion;
  // also training.stack.cross_entropy_fusion, and the stack preset's default):
  // 28 instead of 52 bytes moved per logit (model/transformer.cpp).
  bool cross_entropy_fusion = false;
  // Which fused cross-entropy (Megatron-Core --cross-entropy-fusion-impl): Megatron's own
  // jit-fused functions, or Transformer Engine's Triton kernels, which write the gradient
  // into the logits in their forward (10 bytes a logit in 16 bits, model/transformer.cpp).
  enum class CrossEntropyImpl { native, te } cross_entropy_impl = CrossEntropyImpl::native;
  // The loss is Transformer Engine's fused cross-entropy (cross_entropy_impl te under the
  // fusion).
  bool te_cross_entropy() const {
    return cross_entropy_fusion && cross_entropy_impl == CrossEntropyImpl::te;
  }
  // Not a key: cluster.gpu.fp8_non_tn_gemm, copied by validation for the model's casts.
  bool fp8_single_copy = false;
  StackSpec stack;  // training.stack; default the megatron-core preset
  Dtype gradient_dtype = Dtype::fp32;  // main-gradient buffer (Megatron accumulates in fp32)
  // Device memory outside the allocator (CUDA context, NCCL buffers): given, it replaces
  // the modelled training.memory.cuda_context and NCCL buffers (runtime_reserve_set).
  Bytes runtime_reserve;
  bool runtime_reserve_set = false;
  double allocator_overhead = 0.0; // caching-allocator fragmentation, fraction of activations
  MemorySpec memory;               // training.memory
  // Overlap settings (Megatron-LM flags of the same names).
  bool overlap_grad_reduce = true;   // reduce gradient buckets during the last backward
  bool overlap_param_gather = true;  // distributed optimizer: gather under the next forward
  bool tp_comm_overlap = false;      // tensor-parallel collectives overlap the next GEMM
  bool overlap_p2p = true;           // interleaved schedule: pipeline transfers overlap compute
  std::optional<double> grad_bucket_params;  // default: max(40M, 1M * dp) (Megatron-LM)
  // Who buckets the gradients under the Megatron engine at ZeRO-0/1 (training.grad_buckets):
  //  megatron_core:  Megatron-Core's DistributedDataParallel, one buffer a model chunk, the
  //                  bucket size only on pipeline rank 0's first chunk with overlap_grad_reduce
  //                  (simulator/step_passes.h, chunk_bucket_params);
  //  apex_distributed_adam: NeMo 1.x's Apex DistributedFusedAdam, one bucket a transformer
  //                  layer, or a model chunk under interleaving, on every stage.
  enum class GradBuckets { megatron_core, apex_distributed_adam };
  std::optional<GradBuckets> grad_buckets;  // default: megatron_core where it applies
  // Megatron-Core's --overlap-param-gather-with-optimizer-step: the first model chunk is
  // stepped first and its parameters gathered (one bucket) under the other chunks' step.
  bool overlap_param_gather_with_optimizer_step = false;
  std::optional<TargetSpec> target;          // whole-run outputs when set
  CompressionSpec compression;               // training.gradient_compression
  LossScalingSpec loss_scaling;              // training.loss_scaling
};

// FSDP2 under a pipeline as torchtitan's stack runs it (training.stack fsdp2, whose
// pipeline is torch.distributed.pipelining; Megatron-LM's --use-torch-fsdp2 runs its own
// schedules): every micro-batch's backward runs with the stage's gradient sync, reshard
// after backward and last-backward flag off (set_requires_gradient_sync,
// set_reshard_after_backward and set_is_last_backward False in backward_maybe_with_nosync),
// and once the stage's backwards are done the schedule turns them on and runs each unit's
// post-backward (_post_backward, later perform_reduce_grad: torch/distributed/pipelining/
// stage.py at pytorch/pytorch 01386103): one reduce-scatter per unit a step, of gradients
// accumulated unsharded in the reduce dtype (FSDPParam.to_accumulated_grad_if_needed); a
// unit once gathered stays gathered until then unless reshard_after_forward frees it after
// a forward (docs/simulator.md, "ZeRO-3 / FSDP").
inline bool fsdp_pipeline_deferred(const ParallelismSpec& p, const TrainingSpec& t) {
  return p.zero_stage >= 3 && p.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp2 && p.pp > 1 &&
         t.stack.preset == StackSpec::Preset::fsdp2;
}
// torchtitan's FSDP2 with tied embeddings shards [tok_embeddings, norm, output] as one unit
// (apply_fsdp_to_decoder in torchtitan/distributed/fsdp.py at pytorch/torchtitan b5bcd76c):
// the head's own parameters (its final norm; the table is the embedding's) are gathered and
// reduce-scattered with the embedding's, where both are on one rank's block.
inline bool fsdp2_tied_output_unit(const ParallelismSpec& p, const TrainingSpec& t,
                                   bool tied_embeddings) {
  return p.zero_stage >= 3 && p.fsdp_impl == ParallelismSpec::FsdpImpl::fsdp2 &&
         p.fsdp_unit == ParallelismSpec::FsdpUnit::layer &&
         t.stack.preset == StackSpec::Preset::fsdp2 && tied_embeddings;
}
// ZeRO-3 / FSDP freeing a unit's gathered weights after its forward in every micro-batch
// (reshard_after_forward), not under a pipeline's FSDP2, which keeps them to the step's end.
inline bool reshards_each_microbatch(const ParallelismSpec& p, const TrainingSpec& t) {
  return p.zero_stage >= 3 && p.reshard_after_forward && !fsdp_pipeline_deferred(p, t);
}

// Knobs of the simulator's models that are not properties of the hardware datasheet.
struct SimulationSpec {
  // Compute kernels slow down by this fraction while a collective runs on the same GPU
  // (communication kernels take SMs): 20 of 132 SMs in the DeepSeek-V3 report, 0.15.
  double compute_slowdown = 20.0 / 132.0;
  // Collectives slow down by this fraction while compute runs (0: not observed in the
  // public data; an assumption).
  double comm_slowdown = 0.0;
};

// A modelled fault: an event in the simulated step (`faults:`), not an error.
//  straggler:   the GPUs of pipeline stage `stage` compute at `factor` of their speed
//               (synchronous training waits for the slowest GPU of every group, so one slow
//               GPU slows its stage; --full slows the stage's first GPU alone);
//  slow_link:   links at `factor` of their capacity: a node's NICs (`link: nic`), a leaf
//               switch's uplinks to the spine (`link: spine`) or a GPU's NVLink;
//  failed_link: `lost` of a leaf's parallel uplinks fail; the rest carry its traffic, and
//               with none left the step stalls (`link: spine`); or NIC `nic` of node `node`
//               fails for the whole step and its GPUs' traffic goes through a peer GPU's
//               NIC over NVLink (PXN), stalling only if the node has no NIC left
//               (`link: nic`);
//  failed_node: node `node` stops at `from`: every stage with a GPU there stalls.
// Each holds from `from` (default 0) until `until` (default: the end of the step).
struct FaultSpec {
  enum class Kind { straggler, slow_link, failed_link, failed_node } kind = Kind::straggler;
  enum class Link { nic, spine, nvlink } link = Link::nic;
  int stage = 0, node = 0, leaf = 0, gpu = 0, lost = 1, nic = 0;
  double factor = 1.0;
  Seconds from;
  std::optional<Seconds> until;
  std::string where;  // "file:line" of the entry, for reports
};
const char* to_string(FaultSpec::Kind k);
const char* to_string(FaultSpec::Link l);

// Failures over a whole run and the checkpoints that recover from them (`reliability:`),
// for the goodput part of the whole-run figures (model/training_run.h).
struct ReliabilitySpec {
  // Mean time between job-interrupting failures per GPU. Default: the Llama 3 paper's
  // 16,384-GPU pre-training, 419 unexpected interruptions in a 54-day snapshot
  // (arXiv:2407.21783, section 3.3.4, Table 5): 54 x 24 h x 16384 / 419 = 50,677 h per
  // GPU, assuming interruptions scale with the GPU count.
  Seconds gpu_mtbf = Seconds(54.0 * 24 * 3600 * 16384 / 419);
  Bandwidth checkpoint_bandwidth;    // aggregate write bandwidth to checkpoint storage
  Seconds restart_time;              // detect, re-queue, restart and reload, per failure
  std::optional<Seconds> checkpoint_interval;  // default: Daly's optimum
};

struct CostSpec {
  std::optional<double> usd_per_gpu_hour;
  Watts gpu_power;  // average draw used for energy; defaults to the GPU's TDP
  // With an idle draw, a GPU draws idle + (gpu_power - idle) * u, u the fraction of the
  // step its stage computes (a linear utilization model); without, a constant gpu_power.
  std::optional<Watts> gpu_idle_power;
  Watts node_power;  // per node besides its GPUs (CPUs, NICs, fans); 0: not counted
  double pue = 1.0; // facility power usage effectiveness
  std::optional<double> grid_gco2_per_kwh;  // grid carbon intensity, for CO2
  // Owning the cluster (total cost of ownership, model/training_run.h): the purchase
  // (cluster.price) written off over amortization_years, the facility's capacity rent per
  // kW of peak facility power and month, and the electricity the run draws.
  std::optional<double> amortization_years;
  double facility_usd_per_kw_month = 0;  // 0: not counted (the site is owned)
  std::optional<double> electricity_usd_per_kwh;
};

// A published measurement the scenario reproduces, for `orrery validate`.
enum class Metric {
  step_time_s,
  tokens_per_s,
  tokens_per_s_per_gpu,
  tflops_per_gpu_model,
  tflops_per_gpu_hardware,
  mfu,
  // A ratio of two runs: this scenario's tokens per second over those of the scenario
  // named by Measured::over (for two runs of one global batch and sequence length, the
  // other's step time over this one's). `orrery validate` predicts both.
  speedup
};
const char* to_string(Metric m);

// What a published memory figure counts (the totals `orrery check` prints by definition):
// the tensors alone (torch.cuda.max_memory_allocated), the caching allocator's reserve
// (torch.cuda.max_memory_reserved), or all the process holds on the device (nvidia-smi,
// NVML's used memory: the reserve, the CUDA context and NCCL's buffers).
enum class MemoryPeak { allocated, reserved, device };
const char* to_string(MemoryPeak p);

// measured.memory: a published peak memory per GPU and its definition.
struct MeasuredMemory {
  MemoryPeak peak = MemoryPeak::device;
  Bytes value;
};

struct Measured {
  // false: the source printed a memory figure only (measured.memory without a metric).
  bool rate = true;
  Metric metric = Metric::step_time_s;
  double value = 0;
  std::string source;
  // metric speedup only: the other run's scenario file, as written (relative paths are
  // taken from the directory of the file that names it).
  std::string over;
  // measured.log: the Megatron-LM training log `value` is the median of (the path
  // relative to the working directory), "" when the value is written in the scenario.
  std::string log;
  // The run's peak memory per GPU as the source printed it, if it did.
  std::optional<MeasuredMemory> memory;
};

struct Scenario {
  std::string file;  // where it was read from
  std::string name;
  ClusterSpec cluster;
  ModelSpec model;
  ParallelismSpec parallelism;
  TrainingSpec training;
  CostSpec cost;
  std::optional<ReliabilitySpec> reliability;
  std::vector<FaultSpec> faults;
  SimulationSpec simulation;
  std::optional<Measured> measured;
  // Where each set value came from, by key path ("parallelism.tp"): the user's file and
  // line, or a built-in preset. Keys left at their default have no entry.
  std::map<std::string, InputLocation> origin;

  // The location to blame for a key: its origin, else the scenario file itself.
  InputLocation where(const std::string& key) const;
};

}  // namespace orrery
