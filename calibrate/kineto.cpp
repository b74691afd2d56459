#include "calibrate/kineto.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace orrery {

namespace {

using nlohmann::json;

// 1-based line of byte offset `pos` in `text`.
int line_at(const std::string& text, std::size_t pos) {
  pos = std::min(pos, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(pos), '\n'));
}

[[noreturn]] void fail(const std::string& file, const std::string& key, const json& value,
                       const std::string& why) {
  std::string v = value.is_string() ? value.get<std::string>() : value.dump();
  if (v.size() > 60) v = v.substr(0, 57) + "...";
  throw InputError({file, std::nullopt}, key, v, why);
}

// An integer argument of an event (`External id`, `correlation`), if any.
std::optional<std::int64_t> int_arg(const json& args, const char* key) {
  if (!args.is_object()) return std::nullopt;
  const auto it = args.find(key);
  if (it == args.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<std::int64_t>();
}
std::optional<std::int64_t> external_id(const json& args) { return int_arg(args, "External id"); }

// The group's global ranks from "Process Group Ranks": a JSON list of whole numbers, or a
// string holding one (as Kineto writes it); empty for anything else.
std::vector<std::int64_t> group_ranks(const json& args) {
  const auto it = args.find("Process Group Ranks");
  if (it == args.end()) return {};
  json list = *it;
  if (list.is_string()) {
    list = json::parse(list.get<std::string>(), nullptr, /*allow_exceptions=*/false);
  }
  std::vector<std::int64_t> out;
  if (!list.is_array()) return {};
  for (const json& r : list) {
    if (!r.is_number_integer() || r.get<std::int64_t>() < 0) return {};
    out.push_back(r.get<std::int64_t>());
  }
  return out;
}

struct CpuOp {
  std::string name;
  std::vector<std::vector<std::int64_t>> dims;
  std::vector<std::string> types;
};

}  // namespace

bool looks_like_chrome_trace(const std::string& text) {
  const auto b = text.find_first_not_of(" \t\r\n");
  return b != std::string::npos && text[b] == '{' &&
         text.find("\"traceEvents\"") != std::string::npos;
}

KinetoTrace read_kineto_text(const std::string& text, const std::string& file) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    throw InputError({file, line_at(text, e.byte == 0 ? 0 : e.byte - 1)}, "", "",
                     fmt::format("malformed JSON (byte {})", e.byte));
  } catch (const json::out_of_range& e) {
    // A well-formed number too large for a double ("1e400"): nlohmann_json's 406.
    std::string why = e.what();
    const auto b = why.find("] ");
    if (b != std::string::npos) why = why.substr(b + 2);
    throw InputError({file, std::nullopt}, "", "", "unreadable JSON: " + why);
  }
  if (!root.is_object() || !root.contains("traceEvents")) {
    throw InputError({file, std::nullopt}, "traceEvents", "",
                     "expected a Chrome trace: a JSON object with a traceEvents list");
  }
  const json& events = root["traceEvents"];
  if (!events.is_array()) fail(file, "traceEvents", events, "expected a list of events");

  KinetoTrace t;
  t.file = file;
  if (root.contains("deviceProperties") && root["deviceProperties"].is_array() &&
      !root["deviceProperties"].empty() && root["deviceProperties"][0].is_object() &&
      root["deviceProperties"][0].contains("name") &&
      root["deviceProperties"][0]["name"].is_string()) {
    t.gpu = root["deviceProperties"][0]["name"].get<std::string>();
  }
  if (root.contains("distributedInfo") && root["distributedInfo"].is_object()) {
    const auto r = int_arg(root["distributedInfo"], "rank");
    if (r && *r >= 0) t.rank = *r;
  }
  std::map<std::int64_t, CpuOp> ops;
  std::vector<std::pair<double, double>> optimizer_spans, profiler_steps;  // [start, end] in us
  std::vector<std::pair<std::int64_t, std::size_t>> links;  // external id, kernel index
  // Kernels without an External id are linked through the runtime call that launched
  // them: same `correlation`, and the runtime event carries the op's External id.
  std::map<std::int64_t, std::int64_t> runtime_external;     // correlation -> external id
  std::vector<std::pair<std::int64_t, std::size_t>> by_correlation;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    const std::string at = fmt::format("traceEvents[{}]", i);
    if (!e.is_object()) fail(file, at, e, "expected an event object");
    const auto cat = e.find("cat");
    if (cat == e.end() || !cat->is_string()) continue;  // metadata, flow and counter events
    const std::string c = cat->get<std::string>();
    const auto ph = e.find("ph");
    if (ph == e.end() || *ph != "X") continue;
    const json args = e.contains("args") ? e["args"] : json::object();
    if (c == "kernel" || c == "Kernel") {
      TraceKernel k;
      const auto name = e.find("name");
      if (name == e.end() || !name->is_string())
        fail(file, at + ".name", name == e.end() ? json() : *name, "a kernel needs a name");
      k.name = name->get<std::string>();
      const auto dur = e.find("dur");
      if (dur == e.end() || !dur->is_number())
        fail(file, at + ".dur", dur == e.end() ? json() : *dur,
             "a kernel needs a duration in microseconds");
      const double us = dur->get<double>();
      if (!std::isfinite(us) || us < 0)
        fail(file, at + ".dur", *dur, "a duration must be zero or positive");
      k.duration = Seconds(us * 1e-6);
      k.event = static_cast<int>(i);
      if (args.is_object() && args.contains("Collective name") &&
          args["Collective name"].is_string()) {
        k.collective = args["Collective name"].get<std::string>();
        k.in_nelems = int_arg(args, "In msg nelems").value_or(-1);
        k.out_nelems = int_arg(args, "Out msg nelems").value_or(-1);
        k.group_size = static_cast<int>(
            std::clamp<std::int64_t>(int_arg(args, "Group size").value_or(0), 0, 1 << 24));
        if (args.contains("dtype") && args["dtype"].is_string())
          k.comm_dtype = args["dtype"].get<std::string>();
        k.group_ranks = group_ranks(args);
        if (static_cast<std::int64_t>(k.group_ranks.size()) != k.group_size) k.group_ranks.clear();
        const auto peer = int_arg(args, k.collective == "recv" ? "Src Rank" : "Dst Rank");
        if ((k.collective == "send" || k.collective == "recv") && peer && *peer >= 0)
          k.peer = *peer;
      }
      if (const auto id = external_id(args)) {
        links.emplace_back(*id, t.kernels.size());
      } else if (const auto corr = int_arg(args, "correlation")) {
        by_correlation.emplace_back(*corr, t.kernels.size());
      }
      t.kernels.push_back(std::move(k));
    } else if (c == "user_annotation") {
      const auto name = e.find("name");
      const auto ts = e.find("ts");
      const auto dur = e.find("dur");
      if (name == e.end() || !name->is_string() || ts == e.end() || !ts->is_number() ||
          dur == e.end() || !dur->is_number())
        continue;
      const std::string n = name->get<std::string>();
      const std::pair<double, double> span{ts->get<double>(),
                                           ts->get<double>() + dur->get<double>()};
      if (n.rfind("Optimizer.step#", 0) == 0) optimizer_spans.push_back(span);
      if (n.rfind("ProfilerStep#", 0) == 0) profiler_steps.push_back(span);
    } else if (c == "cuda_runtime" || c == "cuda_driver") {
      const auto corr = int_arg(args, "correlation");
      const auto id = external_id(args);
      if (corr && id) runtime_external[*corr] = *id;
    } else if (c == "cpu_op") {
      const auto id = external_id(args);
      if (!id) continue;
      CpuOp op;
      if (e.contains("name") && e["name"].is_string()) op.name = e["name"].get<std::string>();
      if (args.contains("Input Dims")) {
        const json& d = args["Input Dims"];
        if (!d.is_array()) fail(file, at + ".args.Input Dims", d, "expected a list of shapes");
        const auto whole = [&](const json& x) {
          if (!x.is_number_integer() || x.get<std::int64_t>() < 0)
            fail(file, at + ".args.Input Dims", x, "a dimension must be a whole number");
          return x.get<std::int64_t>();
        };
        for (const json& shape : d) {
          std::vector<std::int64_t> s;
          if (!shape.is_array()) fail(file, at + ".args.Input Dims", shape, "expected a shape");
          // A TensorList input (aten::cat's first, "Input type" TensorList) is recorded as
          // the list of its tensors' shapes ([[8, 1024, 768], [8, 1024, 768]], seen in
          // PyTorch 2.11's traces): checked, and kept as no shape, as no kernel class sizes
          // itself from a list.
          const bool list = !shape.empty() && shape.front().is_array();
          for (const json& x : shape) {
            if (!list) {
              s.push_back(whole(x));
              continue;
            }
            if (!x.is_array()) fail(file, at + ".args.Input Dims", x, "expected a shape");
            for (const json& y : x) whole(y);
          }
          op.dims.push_back(std::move(s));
        }
      }
      if (args.contains("Input type") && args["Input type"].is_array()) {
        for (const json& x : args["Input type"])
          op.types.push_back(x.is_string() ? x.get<std::string>() : "");
      }
      ops[*id] = std::move(op);  // the last op with an id wins, as ids are unique per op
    }
  }
  if (profiler_steps.empty()) {
    t.optimizer_steps = static_cast<int>(optimizer_spans.size());
  } else {
    for (const auto& [start, end] : profiler_steps) {
      const bool holds = std::any_of(
          optimizer_spans.begin(), optimizer_spans.end(),
          [&, s0 = start, e0 = end](const auto& o) { return o.first >= s0 && o.first <= e0; });
      if (holds) ++t.optimizer_steps;
    }
  }
  for (const auto& [corr, k] : by_correlation) {
    const auto it = runtime_external.find(corr);
    if (it != runtime_external.end()) links.emplace_back(it->second, k);
  }
  for (const auto& [id, k] : links) {
    const auto it = ops.find(id);
    if (it == ops.end()) continue;
    t.kernels[k].op_id = id;
    t.kernels[k].op = it->second.name;
    t.kernels[k].dims = it->second.dims;
    t.kernels[k].types = it->second.types;
  }
  if (t.kernels.empty()) {
    throw InputError({file, std::nullopt}, "traceEvents", "",
                     "the trace holds no GPU kernel events (cat \"kernel\"): was it recorded "
                     "with ProfilerActivity.CUDA?");
  }
  return t;
}

KinetoTrace read_kineto_file(const std::string& path, Env& env) {
  return read_kineto_text(read_file_or_throw(env, path, "the trace"), path);
}

}  // namespace orrery
