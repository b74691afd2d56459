// The `orrery` command line: a thin layer over the libraries. It parses flags, calls
// one library entry point, writes the finished output in one piece, and decides the
// exit code: 0 success, 2 bad input (scenario, flag), 1 an internal error.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstring>
#include <optional>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>

#include "calibrate/calibrate.h"
#include "calibrate/fit_runs.h"
#include "calibrate/profile_model.h"
#include "core/allocator.h"
#include "core/env.h"
#include "core/error.h"
#include "model/analysis.h"
#include "report/check_report.h"
#include "report/run_report.h"
#include "report/trace.h"
#include "report/validate_report.h"
#include "scenario/import_megatron.h"
#include "scenario/import_nemo.h"
#include "scenario/import_torchtitan.h"
#include "scenario/load.h"
#include "scenario/schema.h"
#include "simulator/predict.h"
#include "simulator/step.h"
#include "sweep/html.h"
#include "sweep/output.h"
#include "sweep/sweep.h"
#ifdef ORRERY_HAVE_MPI
#include "sweep/mpi.h"
#endif

#include <algorithm>
#include <filesystem>

namespace {

constexpr int kExitBadInput = 2;

int run_check(const std::string& path, const std::string& format) {
  const orrery::Scenario s = orrery::load_scenario_file(path);
  const orrery::StepFigures f = orrery::analyse_step(s);
  const std::string out = format == "json" ? orrery::render_check_json(s, f)
                                           : orrery::render_check_table(s, f);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// Writes `text` to `path` whole (core/env.h: nothing half-written on failure).
void write_file(const std::string& path, const std::string& text) {
  orrery::write_file_or_throw(orrery::default_env(), path, text);
}

int run_run(const std::string& path, const std::string& format, const std::string& trace,
            bool full, bool explain) {
  if (explain && format != "table") {
    throw orrery::InputError({"orrery run", std::nullopt}, "--explain", format,
                             "--explain goes with --format table");
  }
  const orrery::Scenario s = orrery::load_scenario_file(path);
  orrery::SimulationOptions opt;
  opt.full = full;
  const orrery::Prediction p = orrery::predict(s, opt);
  std::string out = format == "json"  ? orrery::render_run_json(s, p)
                          : format == "csv" ? orrery::render_run_csv(s, p)
                                            : orrery::render_run_table(s, p);
  if (!trace.empty()) {
    const orrery::Trace tr = orrery::render_trace(s, p, full);
    write_file(trace, tr.json);
    if (tr.note) std::fprintf(stderr, "note: %s: %s\n", trace.c_str(), tr.note->c_str());
  }
  if (explain) {
    out += orrery::render_explanation(*p.hardware.model);
    out += orrery::render_stack_explanation(s);
    out += orrery::render_op_explanation(s, *p.hardware.model);
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// Fits a profile from the inputs and writes it whole to `out`; prints one line per family.
// Scenario files (and directories of them) are the user's measured runs: their
// parameters are fitted instead (calibrate/fit_runs.h), `fit` naming which, comma-separated.
// `gpn` (--gpus-per-node, if given): the traced job's GPUs per node, for the node span of a
// trace's NCCL process groups. `traced` (--traced-scenario, if given): the scenario the
// traces were taken from, which sizes their optimizer kernels.
int run_calibrate(const std::vector<std::string>& paths, const std::string& out,
                  const std::string& op, const std::string& fit, std::optional<int> gpn,
                  const std::string& traced) {
  const int gpus_per_node = gpn.value_or(0);
  // Read now, so that a bad one is reported whatever the traces hold.
  if (!traced.empty()) (void)orrery::load_scenario_file(traced);
  if (gpn && (*gpn < 1 || *gpn > 1024)) {
    throw orrery::InputError({"orrery calibrate", std::nullopt}, "--gpus-per-node",
                             std::to_string(*gpn),
                             "expected the traced job's GPUs per node, a whole number from 1 to "
                             "1024");
  }
  std::vector<orrery::CalibrationInput> inputs;
  std::vector<orrery::Scenario> runs;
  for (const auto& file : orrery::scenario_files(paths)) {
    const std::string text =
        orrery::read_file_or_throw(orrery::default_env(), file, "the input file");
    const std::string ext = std::filesystem::path(file).extension().string();
    if ((ext == ".yaml" || ext == ".yml") && orrery::looks_like_scenario(text)) {
      runs.push_back(orrery::load_scenario_file(file));
    } else {
      inputs.push_back({file, op, gpus_per_node, traced});
    }
  }
  if (!runs.empty() && !inputs.empty()) {
    throw orrery::InputError({inputs.front().path, std::nullopt}, "", "",
                             "measurement input given with scenario files (measured runs): fit "
                             "a profile from the measurements first, name it in the scenarios' "
                             "cluster.calibration, then calibrate on the runs");
  }
  if (!runs.empty() && gpus_per_node > 0) {
    throw orrery::InputError({"orrery calibrate", std::nullopt}, "--gpus-per-node",
                             std::to_string(gpus_per_node),
                             "--gpus-per-node gives the node span of a Kineto trace's NCCL "
                             "groups: give traces, not scenario files");
  }
  if (!runs.empty() && !traced.empty()) {
    throw orrery::InputError({"orrery calibrate", std::nullopt}, "--traced-scenario", traced,
                             "--traced-scenario sizes a Kineto trace's optimizer kernels: give "
                             "traces, not scenario files");
  }
  if (!runs.empty()) {
    std::vector<std::string> only;
    for (std::size_t start = 0; start < fit.size();) {
      std::size_t end = fit.find(',', start);
      if (end == std::string::npos) end = fit.size();
      if (end > start) only.push_back(fit.substr(start, end - start));
      start = end + 1;
    }
    const orrery::RunFit f = orrery::fit_runs(runs, only);
    write_file(out, orrery::render_profile(f.profile));
    const std::string summary = orrery::render_run_fit(f) + "wrote " + out + "\n";
    std::fwrite(summary.data(), 1, summary.size(), stdout);
    return 0;
  }
  if (!fit.empty()) {
    throw orrery::InputError({"orrery calibrate", std::nullopt}, "--fit", fit,
                             "--fit chooses parameters fitted to measured runs: give scenario "
                             "files with measured: blocks");
  }
  const orrery::Profile profile = orrery::calibrate(inputs);
  write_file(out, orrery::render_profile(profile));
  const std::string summary = orrery::render_profile_summary(profile) + "wrote " + out + "\n";
  std::fwrite(summary.data(), 1, summary.size(), stdout);
  return 0;
}

int run_validate(const std::vector<std::string>& paths, const std::string& format) {
  const std::vector<orrery::ValidationCase> cases = orrery::validation_cases(orrery::scenario_files(paths));
  const std::string out = format == "json"  ? orrery::render_validation_json(cases)
                          : format == "csv" ? orrery::render_validation_csv(cases)
                                            : orrery::render_validation_table(cases);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

std::string join(const std::vector<std::string>& v) {
  std::string o;
  for (const auto& x : v) o += (o.empty() ? "" : ", ") + x;
  return o;
}

int run_presets() {
  std::string out;
  out += "GPUs:    " + join(orrery::gpu_preset_names()) + "\n";
  out += "systems: " + join(orrery::system_preset_names()) + "\n";
  out += "models:  " + join(orrery::model_preset_names()) + "\n";
  out += "fabrics: " + join(orrery::fabric_preset_names()) + "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// A progress bar with the rate and an estimate of the time left, on stderr when it is a
// terminal; nothing when piped or redirected. Each phase ("screened", "decided") starts
// its own clock. With `lines` (rank 0 of an MPI job, whose stderr mpirun forwards through
// a pipe), a line every 10 s instead, on stderr whatever it is; the counts are every
// rank's, so the rate and the time left are the job's.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled, bool lines = false)
      : enabled_(enabled && (lines || isatty(STDERR_FILENO))), lines_(lines) {}
  bool enabled() const { return enabled_; }
  void operator()(const char* what, std::size_t done, std::size_t total) {
    if (!enabled_ || total == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (what != what_) {
      what_ = what;
      start_ = now;
      printed_ = now;
    }
    if (lines_) {
      if (now - printed_ < std::chrono::seconds(10) && done != total) return;
      printed_ = now;
      const double elapsed = std::chrono::duration<double>(now - start_).count();
      const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
      const double f = static_cast<double>(done) / static_cast<double>(total);
      if (elapsed < 1) {  // too short a time for a rate
        std::fprintf(stderr, "sweep: %5.1f %% %zu/%zu %s\n", 100 * f, done, total, what);
      } else {
        std::fprintf(stderr, "sweep: %5.1f %% %zu/%zu %s, %.0f/s, ETA %.0f s\n", 100 * f, done,
                     total, what, rate, elapsed * (1 - f) / f);
      }
      return;
    }
    const double f = static_cast<double>(done) / static_cast<double>(total);
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    const double eta = f > 0 ? elapsed * (1 - f) / f : 0;
    const int width = 30;
    const int filled = static_cast<int>(f * width);
    std::fprintf(stderr, "\r[%s%s] %5.1f %% %zu/%zu %s, %.0f/s, ETA %.0f s ",
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 std::string(static_cast<std::size_t>(width - filled), '.').c_str(), 100 * f, done,
                 total, what, rate, eta);
    if (done == total) std::fprintf(stderr, "\r%*s\r", 100, "");
    std::fflush(stderr);
  }

 private:
  bool enabled_, lines_;
  const char* what_ = nullptr;
  std::chrono::steady_clock::time_point start_, printed_;
};

// A file written piece by piece as the sweep makes it. A failed write is one error naming
// the file, the bytes written and why (a full disk says what to leave out); the partial
// file is removed when it is a regular file.
class StreamFile {
 public:
  explicit StreamFile(std::string path) : path_(std::move(path)) {
    f_ = std::fopen(path_.c_str(), "wb");
    if (!f_) fail(errno);
  }
  StreamFile(const StreamFile&) = delete;
  StreamFile& operator=(const StreamFile&) = delete;
  ~StreamFile() {
    if (f_) std::fclose(f_);
  }
  void write(const std::string& text) {
    if (std::fwrite(text.data(), 1, text.size(), f_) != text.size()) fail(errno);
    written_ += text.size();
  }
  void close() {
    const bool bad = std::fflush(f_) != 0 || std::ferror(f_);
    const int err = errno;
    const bool closed = std::fclose(f_) == 0;
    f_ = nullptr;
    if (bad || !closed) fail(err);
  }

 private:
  [[noreturn]] void fail(int err) {
    if (f_) std::fclose(f_);
    f_ = nullptr;
    std::error_code ec;
    if (written_ > 0 && std::filesystem::is_regular_file(path_, ec))
      std::filesystem::remove(path_, ec);
    const bool full = err == ENOSPC || err == EDQUOT || err == EFBIG;
    throw orrery::InputError(
        {path_, std::nullopt}, "", "",
        fmt::format("cannot write the file after {} bytes: {}{}", written_, std::strerror(err),
                    full ? " (out of disk: write it where there is room, leave out --csv or "
                           "--json, or split the sweep with --shard i/N)"
                         : ""));
  }
  std::string path_;
  std::FILE* f_ = nullptr;
  std::size_t written_ = 0;
};

struct SweepOutputs {
  std::string csv, json, best;
};

// The output files sweep and merge both write.
void add_sweep_outputs(CLI::App& command, SweepOutputs& o) {
  command.add_option("--csv", o.csv, "Write every candidate as CSV");
  command.add_option("--json", o.json, "Write every candidate as JSON");
  command.add_option("--best", o.best, "Write the best candidate as a scenario YAML");
}

void write_sweep_outputs(const orrery::SweepInput& in, const orrery::SweepResult& r,
                         const SweepOutputs& o) {
  // What can be refused is made before anything is written, so bad input writes nothing;
  // the CSV and JSON then stream to their files in one pass over the candidates.
  const std::string table = orrery::render_sweep_table(in, r);
  const std::string best = o.best.empty() ? "" : orrery::best_scenario_yaml(in, r);
  std::optional<StreamFile> csv, json;
  if (!o.csv.empty()) csv.emplace(o.csv);
  if (!o.json.empty()) json.emplace(o.json);
  orrery::Sink to_csv, to_json;
  if (csv) to_csv = [&](const std::string& t) { csv->write(t); };
  if (json) to_json = [&](const std::string& t) { json->write(t); };
  if (csv || json) orrery::write_sweep_streams(in, r, to_csv, to_json);
  if (csv) csv->close();
  if (json) json->close();
  if (!o.best.empty()) write_file(o.best, best);
  std::fwrite(table.data(), 1, table.size(), stdout);
}

// "--shard i/N": share i of N, i counted from `base` (0, or 1 for job arrays numbered
// from 1: --shard-base 1), so base <= i < base + N; returned counted from 0.
std::pair<int, int> parse_shard(const std::string& text, int base) {
  const auto slash = text.find('/');
  int i = -1, n = 0;
  bool parsed = false;
  try {
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    std::size_t a = 0, b = 0;
    i = std::stoi(text.substr(0, slash), &a);
    n = std::stoi(text.substr(slash + 1), &b);
    parsed = a == slash && b == text.size() - slash - 1;
  } catch (const std::exception&) {
    parsed = false;
  }
  if (!parsed || n < 1) {
    throw orrery::InputError({"orrery sweep", std::nullopt}, "--shard", text,
                             fmt::format("expected i/N, share i of N counted from {} "
                                         "(--shard-base), e.g. {}/4",
                                         base, base));
  }
  if (i < base || i - base >= n) {
    throw orrery::InputError(
        {"orrery sweep", std::nullopt}, "--shard", text,
        fmt::format("share {} is outside {}..{}: shares of {} count from {} (--shard-base {}; "
                    "give --shard-base {} for job arrays numbered from {})",
                    i, base, base + n - 1, n, base, base, base == 0 ? 1 : 0, base == 0 ? 1 : 0));
  }
  return {i - base, n};
}

std::string read_text(const std::string& path) {
  return orrery::read_file_or_throw(orrery::default_env(), path, "the file");
}

// What --dry-run prints: the candidate count and the time it should take.
int print_estimate(const orrery::SweepInput& in, const orrery::SweepOptions& o) {
  const orrery::SweepEstimate e = orrery::estimate_sweep(in, o);
  const double threads = o.threads;
  const double share = static_cast<double>(e.candidates) / o.shards;
  const double open = e.sampled ? static_cast<double>(e.sampled_open) / e.sampled : 0.0;
  const double screen = share * e.screen_s / threads;
  std::string out = fmt::format("sweep       {}\n", in.baseline.name);
  out += fmt::format("candidates  {}{}\n", e.candidates,
                     o.shards > 1 ? fmt::format(" ({:.0f} in this share of {})", share, o.shards)
                                  : std::string());
  out += fmt::format(
      "sample      {} screened, spread over the space: {} ({:.1f} %) pass validation, the "
      "constraints and memory, to be simulated or pruned by the bound\n",
      e.sampled, e.sampled_open, 100 * open);
  out += fmt::format("estimate    screening about {:.0f} s on {} thread(s) ({:.0f} candidates/s)",
                     screen, o.threads, e.screen_s > 0 ? threads / e.screen_s : 0.0);
  if (e.simulate_s > 0) {
    out += fmt::format(
        "; one simulation took {:.3f} s, so at most about {:.0f} s more if the bound pruned "
        "none of the {:.0f} left (it usually prunes most)",
        e.simulate_s, share * open * e.simulate_s / threads, share * open);
  }
  out += "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

struct SweepRun {
  std::string path, shard, shard_out, checkpoint;
  int threads = 0, shard_base = 0;
  bool progress = true, dry_run = false, resume = false;
};

// --checkpoint: the results so far, written (whole, atomically) at most every few seconds
// and at the end; --resume takes them instead of simulating again.
struct Checkpointer {
  const orrery::SweepInput& in;
  std::string file;
  void operator()(const orrery::SweepResult& partial) const {
    if (!file.empty())
      write_file(file, orrery::write_shard(in, partial, partial.shard, partial.shards));
  }
};

std::optional<orrery::SweepResult> read_checkpoint(const orrery::SweepInput& in,
                                                   const SweepRun& run, int shard, int shards) {
  if (!run.resume) return std::nullopt;
  if (run.checkpoint.empty()) {
    throw orrery::InputError({"orrery sweep", std::nullopt}, "--resume", "",
                             "needs --checkpoint FILE, the file to resume from");
  }
  orrery::SweepResult r = orrery::read_shard(in, read_text(run.checkpoint), run.checkpoint);
  if (r.shard != shard || r.shards != shards) {
    throw orrery::InputError({run.checkpoint, std::nullopt}, "shard",
                             fmt::format("{}/{}", r.shard, r.shards),
                             fmt::format("the checkpoint of another share than this run's {}/{}",
                                         shard, shards));
  }
  return r;
}

void warn_objective(const orrery::SweepInput& in) {
  if (const std::string w = orrery::objective_warning(in); !w.empty())
    std::fprintf(stderr, "warning: %s\n", w.c_str());
}

// One process's sweep (or rank 0's, with o.queue): the checkpoint read back with
// --resume, the progress bar, the run, then the shard file or the outputs.
int sweep_here(const orrery::SweepInput& in, orrery::SweepOptions& o, const SweepRun& run,
               const SweepOutputs& outputs) {
  warn_objective(in);
  const std::optional<orrery::SweepResult> before = read_checkpoint(in, run, o.shard, o.shards);
  if (before) o.resume = &*before;
  Checkpointer checkpoint{in, run.checkpoint};
  if (!run.checkpoint.empty()) {
    o.checkpoint = [&](const orrery::SweepResult& partial) { checkpoint(partial); };
  }
  ProgressBar bar(run.progress, o.queue != nullptr);
  if (bar.enabled()) {
    std::fprintf(stderr, "sweep: %lld candidates\n",
                 static_cast<long long>(orrery::count_candidates(in)));
  }
  o.progress = [&](const char* what, std::size_t done, std::size_t total) {
    bar(what, done, total);
  };
  const orrery::SweepResult r = orrery::run_sweep(in, o);
  checkpoint(r);
  if (!run.shard.empty()) {
    write_file(run.shard_out, orrery::write_shard(in, r, o.shard, o.shards));
    std::printf("shard %d/%d: %zu candidates, %zu simulated here; wrote %s\n", o.shard, o.shards,
                r.total, r.simulated, run.shard_out.c_str());
    return 0;
  }
  write_sweep_outputs(in, r, outputs);
  return 0;
}

#ifdef ORRERY_HAVE_MPI
// Under mpirun: rank 0 runs the sweep as one process would (checkpoint, --resume and the
// progress bar included) and hands ranges of candidates to screen and candidates to
// simulate to whichever rank asks next (sweep/mpi.h); the other ranks serve it. Only rank
// 0 reports bad input (every rank reads the same file and meets the same error before any
// message is sent).
int run_sweep_mpi(const SweepRun& run, const SweepOutputs& outputs) {
  orrery::MpiJob job(nullptr, nullptr);
  orrery::MpiQueue queue(job);
  try {
    const orrery::SweepInput in = orrery::load_sweep_file(run.path);
    orrery::SweepOptions o;
    o.threads = run.threads > 0 ? run.threads : 1;
    o.keep_candidates = false;
    if (run.dry_run) {
      o.shards = job.size();  // the estimate of one rank's part of the work
      return job.rank() == 0 ? print_estimate(in, o) : 0;
    }
    if (job.rank() != 0) {
      orrery::SweepWorker worker(in, o);
      queue.serve([&](const std::string& task) { return worker(task); });
      return 0;
    }
    // However rank 0 ends, the other ranks stop serving.
    struct StopAtEnd {
      orrery::MpiQueue& q;
      ~StopAtEnd() { q.stop(); }
    } stop_at_end{queue};
    o.queue = &queue;
    return sweep_here(in, o, run, outputs);
  } catch (const orrery::InputError&) {
    if (job.rank() == 0) throw;
    return kExitBadInput;
  }
}
#endif

int run_sweep_cmd(const SweepRun& run, const SweepOutputs& outputs) {
#ifdef ORRERY_HAVE_MPI
  if (orrery::launched_by_mpi()) {
    if (!run.shard.empty()) {
      throw orrery::InputError({"orrery sweep", std::nullopt}, "--shard", run.shard,
                               "under mpirun the ranks share the work of one sweep; leave "
                               "--shard out");
    }
    return run_sweep_mpi(run, outputs);
  }
#endif
  const orrery::SweepInput in = orrery::load_sweep_file(run.path);
  orrery::SweepOptions o;
  o.threads = run.threads > 0
                  ? run.threads
                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.keep_candidates = false;
  if (!run.shard.empty()) {
    if (run.shard_out.empty() && !run.dry_run) {
      throw orrery::InputError({"orrery sweep", std::nullopt}, "--shard", run.shard,
                               "a shard writes its results to a file: give -o FILE");
    }
    std::tie(o.shard, o.shards) = parse_shard(run.shard, run.shard_base);
  }
  if (run.dry_run) return print_estimate(in, o);
  return sweep_here(in, o, run, outputs);
}

int run_report(const std::string& results, const std::string& out) {
  write_file(out, orrery::render_sweep_html(read_text(results), results));
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int run_merge(const std::string& path, const std::vector<std::string>& shard_files,
              const SweepOutputs& outputs) {
  const orrery::SweepInput in = orrery::load_sweep_file(path);
  std::vector<orrery::SweepResult> shards;
  for (const auto& f : shard_files) shards.push_back(orrery::read_shard(in, read_text(f), f));
  orrery::SweepOptions o;
  o.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.keep_candidates = false;
  const orrery::SweepResult r = orrery::merge_shards(in, shards, o);
  write_sweep_outputs(in, r, outputs);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  orrery::keep_freed_memory();
  CLI::App app{
      "orrery: predicts what a deep-learning training run costs on a cluster - parameters, "
      "FLOPs and memory per GPU for any parallel split, precision and recompute mode."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("orrery ") + ORRERY_VERSION);

  std::string scenario_path;
  std::string format = "table";
  CLI::App* check = app.add_subcommand(
      "check", "Validate a scenario and print the resolved configuration, parameter counts, "
               "FLOPs per step and memory per GPU with a fits / out-of-memory verdict.");
  check->add_option("scenario", scenario_path, "Scenario YAML file")->required();
  check->add_option("--format", format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  std::string run_path, run_format = "table", trace_path;
  bool full = false, explain = false;
  CLI::App* run = app.add_subcommand(
      "run", "Simulate one training step: step time and its breakdown (compute, recompute, "
             "exposed TP/PP/DP communication, bubble, optimizer), tokens/s, TFLOP/s, MFU, "
             "memory per GPU and bytes per link class; with training.target the whole run "
             "(time to train, GPU-hours, cost, energy, and with reliability: failures and "
             "goodput); with faults: their impact on the step.");
  run->add_option("scenario", run_path, "Scenario YAML file")->required();
  run->add_option("--format", run_format, "Output format")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();
  run->add_option("--trace", trace_path,
                  "Write the simulated timeline as Chrome trace-event JSON (opens in Perfetto)");
  run->add_flag("--full", full,
                "Simulate every GPU and every collective explicitly instead of one GPU per "
                "pipeline stage standing for its symmetric peers");
  run->add_flag("--explain", explain,
                "Say what times each op class: the calibration profile entry the scenario "
                "names (cluster.calibration) or the roofline default, with its constants");

  std::vector<std::string> validate_paths;
  std::string validate_format = "table";
  CLI::App* validate = app.add_subcommand(
      "validate", "Run scenarios that carry a measured: block and compare prediction with "
                  "the published figure; print each error, whether the memory model says the "
                  "case fits, and the mean and max |error|. --format csv writes the residual "
                  "table the prediction band is drawn from.");
  validate->add_option("paths", validate_paths, "Scenario files or directories")->required();
  validate->add_option("--format", validate_format, "Output format")
      ->check(CLI::IsMember({"table", "json", "csv"}))
      ->capture_default_str();

  CLI::App* presets =
      app.add_subcommand("presets", "List the built-in GPU, system, model and fabric presets.");

  std::vector<std::string> calibrate_inputs;
  std::string calibrate_out, calibrate_op, calibrate_fit;
  int calibrate_gpus_per_node = 0;
  std::string calibrate_traced;
  CLI::App* calibrate =
      app.add_subcommand("calibrate",
                         "Fit a hardware profile from measurements: orrery-profile measurement "
                         "files, nccl-tests logs and PyTorch/Kineto traces; every fitted family "
                         "reports its leave-one-out held-out error. Or from the user's own runs: "
                         "scenarios with measured: blocks, to which the uncertain efficiencies are "
                         "fitted, with each run's leave-one-run-out error.");
  calibrate->add_option("inputs", calibrate_inputs, "Input files (scenarios: files or directories)")
      ->required();
  calibrate->add_option("-o,--output", calibrate_out, "Profile file to write")->required();
  calibrate->add_option("--op", calibrate_op,
                        "Collective of nccl-tests logs that do not name their program "
                        "(all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, "
                        "send_recv)");
  CLI::Option* calibrate_gpn =
      calibrate->add_option("--gpus-per-node", calibrate_gpus_per_node,
                            "GPUs per node of the job a Kineto trace recorded (torchrun's "
                            "--nproc-per-node): with each NCCL kernel's process group ranks, the "
                            "nodes the group spans, so that the trace times the scenario's "
                            "collectives");
  calibrate->add_option("--traced-scenario", calibrate_traced,
                        "The scenario the Kineto traces were taken from: orrery's model of its "
                        "optimizer step gives the bytes the traces' optimizer kernels moved, and "
                        "so the optimizer bandwidth the profile times optimizers with");
  calibrate->add_option("--fit", calibrate_fit,
                        "With scenario inputs: the parameters to fit, comma-separated "
                        "(default: every one the runs' predictions depend on)");

  SweepRun sweep_run;
  bool no_progress = false;
  SweepOutputs sweep_outputs;
  CLI::App* sweep = app.add_subcommand(
      "sweep", "Search the scenario's sweep: section: expand the candidates, drop invalid and "
               "out-of-memory ones, simulate those whose lower bound can still win, rank them "
               "(or give the Pareto front); CSV/JSON of every candidate, the best as a "
               "scenario and as Megatron-LM arguments.");
  sweep->add_option("scenario", sweep_run.path, "Scenario YAML file with a sweep: section")
      ->required();
  sweep->add_option("-j,--threads", sweep_run.threads, "Threads (default: every core)");
  add_sweep_outputs(*sweep, sweep_outputs);
  CLI::Option* shard_opt = sweep->add_option("--shard", sweep_run.shard,
                    "Simulate only share i of N (i/N, i from 0 unless --shard-base) and write it "
                    "with -o for orrery merge");
  sweep->add_option("--shard-base", sweep_run.shard_base,
                    "What --shard's i counts from: 0 (default) or 1 (job arrays numbered from 1, "
                    "e.g. --shard $SLURM_ARRAY_TASK_ID/N --shard-base 1)")
      ->check(CLI::Range(0, 1))
      ->needs(shard_opt);
  sweep->add_option("-o,--output", sweep_run.shard_out, "The shard file (with --shard)");
  sweep->add_flag("--no-progress", no_progress, "No progress bar even on a terminal");
  sweep->add_flag("--dry-run", sweep_run.dry_run,
                  "Print the candidate count and an estimate of the time, then stop");
  CLI::Option* checkpoint_opt =
      sweep->add_option("--checkpoint", sweep_run.checkpoint,
                        "Record the results so far in FILE (every few seconds and at the end)");
  sweep->add_flag("--resume", sweep_run.resume,
                  "Take the results --checkpoint FILE holds instead of simulating them again")
      ->needs(checkpoint_opt);

  std::string merge_path;
  std::vector<std::string> merge_shards;
  SweepOutputs merge_outputs;
  CLI::App* merge = app.add_subcommand(
      "merge", "Combine the shard files of orrery sweep --shard i/N into the output one "
               "process would have written, byte for byte.");
  merge->add_option("scenario", merge_path, "The scenario the shards swept")->required();
  merge->add_option("shards", merge_shards, "Shard files")->required();
  add_sweep_outputs(*merge, merge_outputs);

  std::string report_in, report_out;
  CLI::App* report = app.add_subcommand(
      "report", "Write one self-contained HTML page with charts (step-time breakdown, memory "
                "against capacity, time against cost with the Pareto front, scaling) from the "
                "JSON of orrery sweep --json.");
  report->add_option("results", report_in, "JSON written by orrery sweep --json")->required();
  report->add_option("-o,--output", report_out, "HTML file to write")->required();

  CLI::App* schema = app.add_subcommand(
      "schema",
      "Print a JSON Schema of the scenario format (for an editor's YAML language "
      "server): every key the reader accepts, with its unit, default and range.");

  std::string import_framework, import_cluster;
  int import_nodes = 1;
  std::int64_t import_vocab = 0;
  std::string import_hf_config;
  std::vector<std::string> import_arguments;
  CLI::App* import_cmd = app.add_subcommand(
      "import",
      "Write a scenario (model, parallel layout, precision, recompute, batch) from a "
      "training launch: 'orrery import megatron --cluster dgx-h100 --nodes 12 -- "
      "<pretrain_gpt.py arguments>', or a NeMo 1.x training config: 'orrery import nemo "
      "CONFIG.yaml --cluster dgx-h100 --vocab-size 128256', or a torchtitan job config: "
      "'orrery import torchtitan JOB.toml --cluster dgx-h100 --nodes 8', or the arguments "
      "header of a Megatron-LM log: 'orrery import megatron-log train.log --cluster "
      "dgx-h100'. Each value names "
      "its source; what it could not map is listed.");
  import_cmd->add_option("framework", import_framework, "The launcher the arguments are for")
      ->check(CLI::IsMember({"megatron", "megatron-log", "nemo", "torchtitan"}))
      ->required();
  import_cmd->add_option("--cluster", import_cluster, "System preset the scenario runs on")
      ->required();
  import_cmd->add_option("--nodes", import_nodes, "Nodes of that system")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  import_cmd
      ->add_option("--vocab-size", import_vocab,
                   "nemo, megatron-log: the tokenizer's vocabulary size (the tokenizer is not "
                   "read; a log's padded-vocab line wins)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  import_cmd->add_option("--hf-config", import_hf_config,
                         "torchtitan: the model's Hugging Face config.json, in place of the "
                         "llama3 flavor table (written into the scenario as given)");
  import_cmd
      ->add_option("arguments", import_arguments,
                   "megatron: the launch arguments, after --; nemo, torchtitan: the config "
                   "file; megatron-log: the log")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n" << "run 'orrery --help' for usage\n";
    return kExitBadInput;
  }

  try {
    if (*check) return run_check(scenario_path, format);
    if (*run) return run_run(run_path, run_format, trace_path, full, explain);
    if (*validate) return run_validate(validate_paths, validate_format);
    if (*presets) return run_presets();
    if (*calibrate)
      return run_calibrate(
          calibrate_inputs, calibrate_out, calibrate_op, calibrate_fit,
          calibrate_gpn->count() > 0 ? std::optional<int>(calibrate_gpus_per_node) : std::nullopt,
          calibrate_traced);
    if (*sweep) {
      sweep_run.progress = !no_progress;
      return run_sweep_cmd(sweep_run, sweep_outputs);
    }
    if (*merge) return run_merge(merge_path, merge_shards, merge_outputs);
    if (*report) return run_report(report_in, report_out);
    if (*import_cmd) {
      std::string out;
      if (import_framework == "nemo") {
        if (import_arguments.size() != 1) {
          throw orrery::InputError({"orrery import nemo", std::nullopt}, "CONFIG",
                                   fmt::format("{}", fmt::join(import_arguments, " ")),
                                   "expected one NeMo training config file");
        }
        if (import_cmd->count("--nodes") > 0) {
          throw orrery::InputError({"orrery import nemo", std::nullopt}, "--nodes",
                                   std::to_string(import_nodes),
                                   "the nodes are the config's trainer.num_nodes");
        }
        if (import_cmd->count("--hf-config") > 0) {
          throw orrery::InputError({"orrery import nemo", std::nullopt}, "--hf-config",
                                   import_hf_config, "the model is the config's");
        }
        out = orrery::import_nemo(import_arguments[0], import_cluster, import_vocab);
      } else if (import_framework == "megatron-log") {
        if (import_arguments.size() != 1) {
          throw orrery::InputError({"orrery import megatron-log", std::nullopt}, "LOG",
                                   fmt::format("{}", fmt::join(import_arguments, " ")),
                                   "expected one Megatron-LM log file");
        }
        if (import_cmd->count("--nodes") > 0) {
          throw orrery::InputError({"orrery import megatron-log", std::nullopt}, "--nodes",
                                   std::to_string(import_nodes),
                                   "the nodes are the log's world_size over the GPUs per node");
        }
        if (import_cmd->count("--hf-config") > 0) {
          throw orrery::InputError({"orrery import megatron-log", std::nullopt}, "--hf-config",
                                   import_hf_config, "the model is the log's");
        }
        out = orrery::import_megatron_log(import_arguments[0], import_cluster, import_vocab);
      } else if (import_framework == "torchtitan") {
        if (import_arguments.size() != 1) {
          throw orrery::InputError({"orrery import torchtitan", std::nullopt}, "JOB",
                                   fmt::format("{}", fmt::join(import_arguments, " ")),
                                   "expected one torchtitan job config file");
        }
        if (import_cmd->count("--vocab-size") > 0) {
          throw orrery::InputError({"orrery import torchtitan", std::nullopt}, "--vocab-size",
                                   std::to_string(import_vocab),
                                   "the vocabulary is the model flavor's");
        }
        out = orrery::import_torchtitan(import_arguments[0], import_cluster, import_nodes,
                                        import_hf_config);
      } else {
        if (import_cmd->count("--vocab-size") > 0) {
          throw orrery::InputError({"orrery import megatron", std::nullopt}, "--vocab-size",
                                   std::to_string(import_vocab),
                                   "give Megatron-LM's --vocab-size after --");
        }
        if (import_cmd->count("--hf-config") > 0) {
          throw orrery::InputError({"orrery import megatron", std::nullopt}, "--hf-config",
                                   import_hf_config, "the model is the launch arguments'");
        }
        // The launch arguments exactly as given after "--": CLI11 splits a value written
        // "[a,b]" (a --moe-layer-freq list) into its items.
        std::vector<std::string> launch;
        for (int i = 1; i < argc; ++i) {
          if (std::string(argv[i]) != "--") continue;
          launch.assign(argv + i + 1, argv + argc);
          break;
        }
        out = orrery::import_megatron(launch.empty() ? import_arguments : launch, import_cluster,
                                      import_nodes);
      }
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    }
    if (*schema) {
      const std::string out = orrery::scenario_schema();
      std::fwrite(out.data(), 1, out.size(), stdout);
      return 0;
    }
  } catch (const orrery::InputError& e) {
    std::cerr << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 1;
}
