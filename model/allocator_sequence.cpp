// The allocation sequence of one rank's micro-batches on PyTorch's caching allocator
// (model/caching_allocator.h): what model/memory.cpp reports as the allocator's waste.
#include "model/allocator_sequence.h"

#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/caching_allocator.h"
#include "model/workload.h"

namespace orrery {

namespace {

// A request's bytes as the allocator takes them (0: no block).
std::uint64_t request_bytes(Bytes b) {
  return b.value() > 0 ? static_cast<std::uint64_t>(std::llround(b.value())) : 0;
}

// The micro-batches' requests of allocator_sequence_waste (after the states) on `ca`.
void microbatch_sequence(CachingAllocator& ca, const std::vector<const Layer*>& layers,
                         const std::vector<GatherRequest>& gathered, int prefetch, int microbatches,
                         bool more, Recompute recompute, unsigned modules) {
  auto alloc = [&ca](Bytes b) { return ca.allocate(request_bytes(b)); };
  const unsigned m = recompute == Recompute::selective ? modules : 0u;
  auto full = [recompute](const Layer& l) {
    return recompute == Recompute::full && l.kind == LayerKind::transformer;
  };
  ORRERY_CHECK(gathered.empty() || gathered.size() == layers.size(),
               "one gather request a layer, or none");
  for (const GatherRequest& g : gathered) {
    for (const int k : {g.take_forward, g.take_backward})
      ORRERY_CHECK(k < static_cast<int>(gathered.size()), "a take names a layer of the sequence");
  }
  std::deque<int> live_gathers;
  std::vector<int> held(gathered.size(), -1);  // a held gather's block while it is live
  auto take = [&](std::size_t k) {             // entry k's held gather, when not live
    if (held[k] < 0 && gathered[k].bytes.value() > 0) held[k] = alloc(gathered[k].bytes);
  };
  auto gather = [&](std::size_t k, bool forward) {
    if (gathered.empty()) return;
    const GatherRequest& g = gathered[k];
    const int first = forward ? g.take_forward : g.take_backward;
    if (first >= 0) take(static_cast<std::size_t>(first));
    if (g.hold != GatherRequest::Hold::window) {
      take(k);
      return;
    }
    live_gathers.push_back(alloc(g.bytes));
    while (live_gathers.size() > static_cast<std::size_t>(1 + prefetch)) {
      ca.release(live_gathers.front());
      live_gathers.pop_front();
    }
  };
  // A gather held until its layer's backward is freed once that backward has run.
  auto free_held = [&](std::size_t k) {
    if (gathered.empty() || held[k] < 0 || gathered[k].hold != GatherRequest::Hold::backward)
      return;
    ca.release(held[k]);
    held[k] = -1;
  };
  auto drop_gathers = [&] {
    for (const int g : live_gathers) ca.release(g);
    live_gathers.clear();
  };
  // Per micro-batch in flight, the handles kept for backward, layer after layer (layer
  // k's from start[k] to start[k + 1]), in the order they were taken.
  struct Kept {
    std::vector<int> handles;
    std::vector<std::size_t> start;
  };
  auto forward = [&] {
    Kept kept;
    kept.start.reserve(layers.size() + 1);
    int out = -1;
    for (std::size_t k = 0; k < layers.size(); ++k) {
      kept.start.push_back(kept.handles.size());
      gather(k, true);
      const Layer& l = *layers[k];
      if (full(l)) kept.handles.push_back(alloc(l.input));
      for (const Op& op : l.ops) {
        if (!full(l)) {
          if ((op.saved_dropped_by & m) == 0) kept.handles.push_back(alloc(op.saved));
          if ((op.recompute_in & m) == 0) kept.handles.push_back(alloc(op.saved_selective));
        }
        if (op.in_place) continue;
        const int next = alloc(op.fwd_written);
        if (out >= 0) ca.release(out);
        out = next;
      }
    }
    kept.start.push_back(kept.handles.size());
    if (out >= 0) ca.release(out);
    drop_gathers();
    return kept;
  };
  std::vector<int> rebuilt;  // what a layer's recompute rebuilds before its backward
  auto backward = [&](const Kept& kept) {
    int grad = -1;
    for (std::size_t k = layers.size(); k-- > 0;) {
      gather(k, false);
      const Layer& l = *layers[k];
      rebuilt.clear();
      for (const Op& op : l.ops) {
        if (full(l) || (op.saved_dropped_by & m) != 0) rebuilt.push_back(alloc(op.saved));
        if (full(l) || (op.recompute_in & m) != 0) rebuilt.push_back(alloc(op.saved_selective));
      }
      for (std::size_t j = l.ops.size(); j-- > 0;) {
        const int next = alloc(l.ops[j].bwd_written);
        if (grad >= 0) ca.release(grad);
        grad = next;
      }
      for (const int h : rebuilt) ca.release(h);
      for (std::size_t h = kept.start[k]; h < kept.start[k + 1]; ++h) ca.release(kept.handles[h]);
      free_held(k);
    }
    if (grad >= 0) ca.release(grad);
    drop_gathers();
  };
  std::deque<Kept> in_flight;
  for (int i = 0; i < microbatches; ++i) in_flight.push_back(forward());
  if (more) {
    backward(in_flight.front());
    in_flight.pop_front();
    in_flight.push_back(forward());
  }
  for (const Kept& k : in_flight) backward(k);
}

CachingAllocator::Mode mode_of(MemorySpec::Allocator allocator) {
  return allocator == MemorySpec::Allocator::expandable_segments
             ? CachingAllocator::Mode::expandable
             : CachingAllocator::Mode::segments;
}

// The smallest rounded request of each pool ([small]) among every size the micro-batches
// might ask for (some may not be asked for: that only lowers the minimum).
void smallest_requests(const std::vector<const Layer*>& layers,
                       const std::vector<GatherRequest>& gathered, std::uint64_t smallest[2]) {
  smallest[0] = smallest[1] = UINT64_MAX;
  auto see = [&](Bytes b) {
    const std::uint64_t v = request_bytes(b);
    if (v == 0) return;
    const std::uint64_t size = CachingAllocator::round_size(v);
    std::uint64_t& m = smallest[size <= CachingAllocator::kSmallSize ? 1 : 0];
    m = std::min(m, size);
  };
  for (const GatherRequest& g : gathered) see(g.bytes);
  for (const Layer* l : layers) {
    see(l->input);
    for (const Op& op : l->ops) {
      see(op.saved);
      see(op.saved_selective);
      if (!op.in_place) see(op.fwd_written);
      see(op.bwd_written);
    }
  }
}

// The micro-batches' part of the waste in segments mode, from the allocator after the
// states (CachingAllocator::remainder): the bytes its segments grow by and its requested
// peak.
struct SplitPeaks {
  std::uint64_t grown = 0, requested = 0;
};
SplitPeaks split_peaks(const CachingAllocator& remainder, const std::vector<const Layer*>& layers,
                       const std::vector<GatherRequest>& gathered, int prefetch, int microbatches,
                       bool more, Recompute recompute, unsigned modules) {
  CachingAllocator ca = remainder;
  const std::uint64_t start = ca.reserved();
  microbatch_sequence(ca, layers, gathered, prefetch, microbatches, more, recompute, modules);
  return {ca.peak_reserved() - start, ca.peak_requested()};
}

// The states on a fresh allocator (held for the whole run).
CachingAllocator after_states(MemorySpec::Allocator allocator, const std::vector<Bytes>& states) {
  CachingAllocator ca(mode_of(allocator));
  for (const Bytes b : states) ca.allocate(request_bytes(b));
  return ca;
}

// The waste from the states' allocator and the micro-batches' split peaks: the peak
// reserved (reserved only grows) less the peak requested (the states' requested bytes
// stay, so the peak is theirs plus the micro-batches' own).
Bytes split_waste(const CachingAllocator& states, const SplitPeaks& p) {
  return Bytes(
      static_cast<double>((states.reserved() + p.grown) - (states.requested() + p.requested)));
}

}  // namespace

Bytes allocator_sequence_waste_whole(MemorySpec::Allocator allocator,
                                     const std::vector<Bytes>& states,
                                     const std::vector<const Layer*>& layers,
                                     const std::vector<GatherRequest>& gathered, int prefetch,
                                     int microbatches, bool more, Recompute recompute,
                                     unsigned modules) {
  if (allocator == MemorySpec::Allocator::none) return Bytes(0);
  CachingAllocator ca = after_states(allocator, states);
  microbatch_sequence(ca, layers, gathered, prefetch, microbatches, more, recompute, modules);
  return Bytes(static_cast<double>(ca.peak_reserved() - ca.peak_requested()));
}

Bytes allocator_sequence_waste(MemorySpec::Allocator allocator, const std::vector<Bytes>& states,
                               const std::vector<const Layer*>& layers,
                               const std::vector<GatherRequest>& gathered, int prefetch,
                               int microbatches, bool more, Recompute recompute, unsigned modules) {
  if (allocator != MemorySpec::Allocator::caching) {
    return allocator_sequence_waste_whole(allocator, states, layers, gathered, prefetch,
                                          microbatches, more, recompute, modules);
  }
  const CachingAllocator ca = after_states(allocator, states);
  std::uint64_t smallest[2];
  smallest_requests(layers, gathered, smallest);
  return split_waste(ca, split_peaks(ca.remainder(smallest), layers, gathered, prefetch,
                                     microbatches, more, recompute, modules));
}

namespace {

// Simulated sequences, remembered across the stages and scenarios the process analyses
// (shared by its threads: a sweep's screening threads live for one chunk of candidates): a
// pipeline's middle stages often run the same sequence, and so do a sweep's candidates
// that differ only in what leaves a stage's allocation sequence alone (nodes, the global
// batch, overlap switches, ...); the simulation costs more than the rest of a candidate's
// screening (perf on the GPT-3 sweep). With the default allocator the key is the
// micro-batches' part only (split_peaks: the remainder the states leave, as the sizes of
// its free blocks in order, and every input of the micro-batches' requests), whose
// result is the same whatever states left that remainder, so candidates whose ZeRO
// sharding changes only the states' sizes share it; with expandable segments it holds
// every input of allocator_sequence_waste. Either way a hit returns exactly what the
// simulation would; the map is emptied when it reaches kMaxRemembered sequences, to bound
// its memory.
struct KeyHash {
  std::size_t operator()(const std::vector<double>& key) const {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the doubles' bits
    for (const double d : key) {
      std::uint64_t bits = 0;
      std::memcpy(&bits, &d, sizeof bits);
      h = (h ^ bits) * 1099511628211ull;
    }
    return static_cast<std::size_t>(h);
  }
};
constexpr std::size_t kMaxRemembered = 32768;
struct Remembered {
  std::mutex lock;
  // Default allocator: split_peaks's two figures; expandable: {the waste's bytes, 0}.
  std::unordered_map<std::vector<double>, SplitPeaks, KeyHash> peaks;
  // The layers' entries the keys name by number: a layer's entries (hundreds of doubles)
  // recur across most keys, so each is held once (a key was about 600 bytes, the
  // layers' entries most of it). Emptied with `peaks`; `generation` counts the emptyings,
  // so a key numbered before one is never stored after it (its numbers would name other
  // layers then).
  std::unordered_map<std::vector<double>, double, KeyHash> layers;
  std::uint64_t generation = 0;
  void clear() {
    peaks.clear();
    layers.clear();
    ++generation;
  }
  // The number of `entries` (entered if new).
  double layer_id(const std::vector<double>& entries) {
    return layers.try_emplace(entries, static_cast<double>(layers.size())).first->second;
  }
};
Remembered& remembered() {
  static Remembered r;
  return r;
}
std::atomic<bool> allocator_reference{false};

}  // namespace

void set_allocator_reference(bool on) { allocator_reference = on; }

namespace detail {

Bytes remembered_sequence_waste(MemorySpec::Allocator allocator, const std::vector<Bytes>& states,
                                const std::vector<const Layer*>& layers,
                                const std::vector<GatherRequest>& gathered, int prefetch,
                                int microbatches, bool more, Recompute recompute,
                                unsigned modules) {
  if (allocator_reference) {
    return allocator_sequence_waste_whole(allocator, states, layers, gathered, prefetch,
                                          microbatches, more, recompute, modules);
  }
  const bool split = allocator == MemorySpec::Allocator::caching;
  const CachingAllocator ca = after_states(allocator, states);
  std::optional<CachingAllocator> rest;
  // The sequence's sizes, to find a stage already simulated.
  std::vector<double> key;
  if (split) {
    std::uint64_t smallest[2];
    smallest_requests(layers, gathered, smallest);
    rest = ca.remainder(smallest);
    rest->describe(key);
  } else {
    for (const Bytes b : states) key.push_back(b.value());
  }
  // The layers in runs of equal ones (a stage's transformer layers are alike): each run
  // as its length and its layer's entries (kind, input, each op's sizes and recompute
  // sets, the layer's GatherRequest when there are gathers), the entries by their number
  // in the store (Remembered::layer_id). Equal entries make the same requests, so the
  // runs stand for the sequence exactly, in a key a fraction of its length.
  key.push_back(gathered.empty() ? 0.0 : 1.0);
  std::vector<std::pair<double, std::vector<double>>> runs;
  std::vector<double> layer;
  for (std::size_t k = 0; k < layers.size(); ++k) {
    const Layer* l = layers[k];
    layer.clear();
    layer.push_back(static_cast<double>(l->kind));
    layer.push_back(l->input.value());
    if (!gathered.empty()) {
      const GatherRequest& g = gathered[k];
      layer.insert(layer.end(), {g.bytes.value(), static_cast<double>(g.hold),
                                 static_cast<double>(g.take_forward),
                                 static_cast<double>(g.take_backward)});
    }
    for (const Op& op : l->ops) {
      layer.insert(layer.end(),
                   {op.saved.value(), op.saved_selective.value(), op.fwd_written.value(),
                    op.bwd_written.value(), static_cast<double>(op.saved_dropped_by),
                    static_cast<double>(op.recompute_in), op.in_place ? 1.0 : 0.0});
    }
    if (!runs.empty() && layer == runs.back().second) {
      ++runs.back().first;
    } else {
      runs.emplace_back(1.0, layer);
    }
  }
  Remembered& mem = remembered();
  std::unique_lock<std::mutex> hold(mem.lock);
  const std::uint64_t generation = mem.generation;
  for (auto& [run, entries] : runs) key.insert(key.end(), {run, mem.layer_id(entries)});
  key.insert(key.end(), {static_cast<double>(microbatches), more ? 1.0 : 0.0,
                         static_cast<double>(allocator), static_cast<double>(prefetch),
                         static_cast<double>(recompute), static_cast<double>(modules)});
  auto result = [&](const SplitPeaks& r) {
    return split ? split_waste(ca, r) : Bytes(static_cast<double>(r.grown));
  };
  if (const auto r = mem.peaks.find(key); r != mem.peaks.end()) return result(r->second);
  hold.unlock();
  SplitPeaks r;
  if (split) {
    r = split_peaks(*rest, layers, gathered, prefetch, microbatches, more, recompute, modules);
  } else {
    r.grown = static_cast<std::uint64_t>(
        allocator_sequence_waste_whole(allocator, states, layers, gathered, prefetch, microbatches,
                                       more, recompute, modules)
            .value());
  }
  hold.lock();
  if (mem.generation == generation) {
    if (mem.peaks.size() >= kMaxRemembered || mem.layers.size() >= kMaxRemembered)
      mem.clear();
    else
      mem.peaks.emplace(std::move(key), r);
  }
  return result(r);
}

}  // namespace detail
}  // namespace orrery
