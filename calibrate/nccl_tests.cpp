#include "calibrate/nccl_tests.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"

namespace orrery {

namespace {

// nccl-tests program name -> the collective it runs.
const std::vector<std::pair<std::string, CollectiveOp>> kPrograms = {
    {"all_reduce_perf", CollectiveOp::all_reduce},
    {"all_gather_perf", CollectiveOp::all_gather},
    {"reduce_scatter_perf", CollectiveOp::reduce_scatter},
    {"alltoall_perf", CollectiveOp::all_to_all},
    {"sendrecv_perf", CollectiveOp::send_recv},
    {"broadcast_perf", CollectiveOp::broadcast}};

// The collective of the first program in kPrograms that `line` names, if any.
std::optional<CollectiveOp> op_named_in(const std::string& line) {
  for (const auto& [program, op] : kPrograms)
    if (line.find(program) != std::string::npos) return op;
  return std::nullopt;
}

std::vector<std::string> tokens(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string t;
  while (in >> t) out.push_back(t);
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// The line without its leading '#' marks and blanks.
std::string body_of(const std::string& line) {
  std::string t = trim(line);
  std::size_t i = 0;
  while (i < t.size() && t[i] == '#') ++i;
  return trim(t.substr(i));
}

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno != ERANGE && std::isfinite(out);
}

// The most ranks a run may have: the profile's bound on a collective's GPU count.
constexpr std::int64_t kMaxRanks = std::int64_t{1} << 24;

struct Pending {
  NcclTestsRun run;            // its op is set by finish
  std::optional<CollectiveOp> op;  // named by a line of the run, before its rows
  int nthread = 0, ngpus = 0;
  std::set<int> ranks;
  std::set<std::string> hosts;
  std::vector<std::string> columns;  // normalized column names; empty before the header
};

[[noreturn]] void fail(const std::string& file, int line, const std::string& key,
                       const std::string& value, const std::string& why) {
  throw InputError({file, line}, key, value, why);
}

int header_value(const std::vector<std::string>& t, const std::string& name,
                 const std::string& file, int line) {
  for (std::size_t i = 0; i + 1 < t.size(); ++i) {
    if (t[i] == name) {
      if (!all_digits(t[i + 1]) || t[i + 1].size() > 6)
        fail(file, line, name, t[i + 1], "expected a whole number");
      return std::atoi(t[i + 1].c_str());
    }
  }
  fail(file, line, name, "", "the nccl-tests header lacks this field");
}

void parse_rank_line(Pending& p, const std::vector<std::string>& t, const std::string& body) {
  // "Rank  0 Group  0 Pid  1887 on  worker-1 device  0 [0x8d] NVIDIA H100 80GB HBM3"
  if (t.size() < 2 || !all_digits(t[1]) || t[1].size() > 8) return;
  const int rank = std::atoi(t[1].c_str());
  p.ranks.insert(rank);
  for (std::size_t i = 0; i + 1 < t.size(); ++i) {
    if (t[i] == "on") {
      p.hosts.insert(t[i + 1]);
      break;
    }
  }
  if (rank == 0) {
    const auto b = body.find(']');
    if (b != std::string::npos) p.run.gpu = trim(body.substr(b + 1));
  }
}

void parse_row(Pending& p, const std::vector<std::string>& t, const std::string& file, int line) {
  const auto& cols = p.columns;
  std::string expected;
  for (const auto& c : cols) expected += (expected.empty() ? "" : " ") + c;
  if (t.size() != cols.size()) {
    fail(file, line, "", "",
         fmt::format("truncated or malformed row: expected {} columns ({}), found {}",
                     cols.size(), expected, t.size()));
  }
  NcclTestsRow row;
  row.line = line;
  bool in_place = false;
  NcclTestsTiming g;
  bool group_na = false;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const std::string& c = cols[i];
    const std::string& v = t[i];
    double x = 0;
    const bool na = v == "N/A";
    const bool number = parse_number(v, x);
    if (c == "size" || c == "count") {
      if (!all_digits(v)) fail(file, line, c, v, "expected a whole number of bytes or elements");
      if (c == "size") row.size = Bytes(std::strtod(v.c_str(), nullptr));
      else row.count = std::strtoll(v.c_str(), nullptr, 10);
    } else if (c == "type") {
      row.type = v;
    } else if (c == "redop") {
      row.redop = v;
    } else if (c == "root") {
      if (!number) fail(file, line, c, v, "expected a rank number");
    } else if (c == "time" || c == "algbw" || c == "busbw") {
      if (na) {
        group_na = true;
      } else if (!number || x < 0) {
        fail(file, line, c, v, c == "time" ? "expected a time in microseconds"
                                           : "expected a bandwidth in GB/s");
      } else if (c == "time") {
        g.time = Seconds(x * 1e-6);
      } else if (c == "algbw") {
        g.algbw = Bandwidth(x * 1e9);
      } else {
        g.busbw = Bandwidth(x * 1e9);
      }
    } else if (c == "wrong" || c == "error") {
      if (!na) {
        if (!number || x < 0) fail(file, line, c, v, "expected a count of wrong results");
        if (c == "wrong" && x > 0) {
          fail(file, line, "#wrong", v,
               "nccl-tests found wrong results in this row; timings of a run that computes "
               "wrong results are not used (rerun it, or cut the row out)");
        }
        g.wrong = x;
      }
      // A group ends with its #wrong / error column.
      if (!group_na) {
        if (g.time.value() <= 0 && row.size.value() > 0)
          fail(file, line, "time", "0", "a non-empty transfer cannot take zero time");
        (in_place ? row.in_place : row.out_of_place) = g;
      }
      in_place = true;
      g = NcclTestsTiming{};
      group_na = false;
    }
  }
  p.run.rows.push_back(row);
}

NcclTestsRun finish(Pending& p, const std::string& file,
                    std::optional<CollectiveOp> op_hint) {
  NcclTestsRun& r = p.run;
  std::optional<CollectiveOp> op = p.op ? p.op : op_hint;
  if (!op) op = op_named_in(std::filesystem::path(file).filename().string());
  if (!op) {
    fail(file, r.line, "op", "",
         "cannot tell which collective this nccl-tests run measured: the log names no "
         "program (all_reduce_perf, ...) and neither does the file name; pass --op");
  }
  r.op = *op;
  if (p.columns.empty() || r.rows.empty()) {
    fail(file, r.line, "", "", "this nccl-tests run has no result rows (the log ends early?)");
  }
  // nThread and nGpus are each below 10^6 (header_value), so their product fits in 64 bits.
  const std::int64_t ranks =
      p.ranks.empty() ? std::int64_t{p.nthread} * p.ngpus : static_cast<std::int64_t>(p.ranks.size());
  if (ranks > kMaxRanks) {
    fail(file, r.line, "nThread x nGpus", std::to_string(ranks),
         fmt::format("more ranks than any cluster orrery models (at most {})", kMaxRanks));
  }
  r.gpus = static_cast<int>(ranks);
  r.nodes = p.hosts.empty() ? 1 : static_cast<int>(p.hosts.size());
  if (r.gpus < 1) fail(file, r.line, "nGpus", "0", "a run needs at least one GPU");
  // busbw = algbw x factor for this op and rank count: a check that the op is right.
  const double f = busbw_factor(r.op, r.gpus);
  for (const auto& row : r.rows) {
    for (const auto* g : {&row.out_of_place, &row.in_place}) {
      if (!*g || (*g)->algbw.value() < 1e9) continue;  // printed with two decimals
      const double ratio = (*g)->busbw / (*g)->algbw;
      if (std::abs(ratio - f) > 0.02 * f + 0.01 * ratio) {
        fail(file, row.line, "busbw",
             fmt::format("{:.2f}", (*g)->busbw.value() / 1e9),
             fmt::format("busbw / algbw = {:.3f}, but {} on {} ranks has the factor {:.3f}: "
                         "is the op ({}) or the rank count right?",
                         ratio, to_string(r.op), r.gpus, f, to_string(r.op)));
      }
    }
  }
  return r;
}

}  // namespace

bool looks_like_nccl_tests(const std::string& text) {
  const auto t = text.find("nThread");
  return t != std::string::npos && text.find("nGpus", t) != std::string::npos;
}

std::vector<NcclTestsRun> read_nccl_tests_text(const std::string& text, const std::string& file,
                                               const std::string& op_hint_name) {
  const std::optional<CollectiveOp> op_hint =
      op_hint_name.empty() ? std::nullopt : parse_collective(op_hint_name);
  if (!op_hint_name.empty() && !op_hint) {
    throw InputError({file, std::nullopt}, "--op", op_hint_name,
                     "expected all_reduce, all_gather, reduce_scatter, all_to_all, broadcast "
                     "or send_recv");
  }
  require_utf8(text, file);  // host and GPU names go into the profile
  std::vector<NcclTestsRun> runs;
  std::optional<Pending> p;
  std::optional<CollectiveOp> named_op;  // op named by a line since the last run started
  std::istringstream in(text);
  std::string raw;
  int line = 0;
  while (std::getline(in, raw)) {
    ++line;
    const std::string trimmed = trim(raw);
    const bool comment = !trimmed.empty() && trimmed[0] == '#';
    const std::string body = body_of(raw);
    const std::vector<std::string> t = tokens(body);
    if (t.empty()) continue;
    if (!comment && all_digits(t[0])) {
      if (!p || p->columns.empty()) {
        fail(file, line, "", trimmed, "a result row before the nccl-tests column header");
      }
      parse_row(*p, t, file, line);
      continue;
    }
    if (std::find(t.begin(), t.end(), "nThread") != t.end() &&
        std::find(t.begin(), t.end(), "nGpus") != t.end()) {
      if (p) runs.push_back(finish(*p, file, op_hint));
      p.emplace();
      p->run.file = file;
      p->run.line = line;
      p->op = named_op;
      named_op.reset();
      p->nthread = header_value(t, "nThread", file, line);
      p->ngpus = header_value(t, "nGpus", file, line);
      continue;
    }
    if (t[0] == "Rank" && p) {
      parse_rank_line(*p, t, body);
      continue;
    }
    const bool has_time = std::find(t.begin(), t.end(), "time") != t.end();
    if (t[0] == "size" && has_time) {
      if (!p) fail(file, line, "", "", "a column header before any '# nThread' header line");
      std::vector<std::string> cols;
      for (std::string c : t) cols.push_back(c == "#wrong" ? "wrong" : c);
      std::vector<std::size_t> times;
      for (std::size_t i = 0; i < cols.size(); ++i)
        if (cols[i] == "time") times.push_back(i);
      const std::size_t width = times.size() == 2 ? times[1] - times[0] : 0;
      if (times.size() != 2 || times[0] + 2 * width != cols.size() || width != 4) {
        fail(file, line, "", body,
             "expected the nccl-tests column header with an out-of-place and an in-place "
             "group of 'time algbw busbw #wrong'");
      }
      p->columns = cols;
      continue;
    }
    const auto avg = body.find("Avg bus bandwidth");
    if (avg != std::string::npos && p) {
      const auto colon = body.find(':', avg);
      double x = 0;
      const std::string v = colon == std::string::npos ? "" : trim(body.substr(colon + 1));
      if (!parse_number(v, x) || x < 0)
        fail(file, line, "Avg bus bandwidth", v, "expected a bandwidth in GB/s");
      p->run.avg_busbw = Bandwidth(x * 1e9);
      continue;
    }
    const std::optional<CollectiveOp> op = op_named_in(body);
    if (op) {
      if (p && p->run.rows.empty()) {
        if (!p->op) p->op = op;
      } else {
        named_op = op;
      }
    }
  }
  if (p) runs.push_back(finish(*p, file, op_hint));
  if (runs.empty()) {
    throw InputError({file, std::nullopt}, "", "",
                     "no nccl-tests run found (no '# nThread .. nGpus ..' header line)");
  }
  return runs;
}

std::vector<NcclTestsRun> read_nccl_tests_file(const std::string& path,
                                               const std::string& op_hint, Env& env) {
  return read_nccl_tests_text(read_file_or_throw(env, path, "the nccl-tests log"), path, op_hint);
}

}  // namespace orrery
