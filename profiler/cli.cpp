#include "profiler/cli.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "core/env.h"
#include "core/error.h"
#include "profiler/measurements.h"
#include "profiler/sweep.h"
#include "profiler/summary.h"

namespace orrery::profiler {

namespace {

const InputLocation kCommandLine{"command line", std::nullopt};

[[noreturn]] void bad(const std::string& flag, const std::string& value, const std::string& why) {
  throw InputError(kCommandLine, flag, value, why);
}

int parse_int(const std::string& flag, const std::string& value, int lo, int hi) {
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno == ERANGE)
    bad(flag, value, "expected a whole number");
  if (v < lo || v > hi) bad(flag, value, fmt::format("must be between {} and {}", lo, hi));
  return static_cast<int>(v);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

template <class Enum, std::size_t N>
std::set<Enum> parse_enum_list(const std::string& flag, const std::string& value,
                               const Enum (&all)[N]) {
  std::vector<std::string> names;
  for (Enum e : all) names.push_back(to_string(e));
  std::set<Enum> out;
  for (const auto& item : split_list(value)) {
    bool found = false;
    for (Enum e : all)
      if (item == to_string(e)) {
        out.insert(e);
        found = true;
      }
    if (!found) {
      std::string accepted;
      for (const auto& n : names) accepted += (accepted.empty() ? "" : ", ") + n;
      const std::string hint = closest_match(item, names);
      bad(flag, value,
          fmt::format("unknown item '{}'{}; accepted: {}", item,
                      hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint), accepted));
    }
  }
  return out;
}

// "MxNxK,MxNxK,...": whole numbers from 1 to 2^31 - 1 (cuBLASLt's layouts take 64-bit
// sizes, but a dimension above that is no GEMM this profiler could hold in memory).
std::vector<LinearShape> parse_shapes(const std::string& flag, const std::string& value) {
  std::vector<LinearShape> out;
  for (const auto& item : split_list(value)) {
    std::int64_t dims[3] = {0, 0, 0};
    std::size_t start = 0;
    for (int i = 0; i < 3; ++i) {
      const std::size_t x = i < 2 ? item.find('x', start) : item.size();
      const std::string part =
          x == std::string::npos ? std::string() : item.substr(start, x - start);
      errno = 0;
      char* end = nullptr;
      const long long v = std::strtoll(part.c_str(), &end, 10);
      if (part.empty() || *end != '\0' || part[0] == '-' || part[0] == '+' || errno == ERANGE ||
          v < 1 || v > INT32_MAX)
        bad(flag, value,
            fmt::format("item '{}' is not MxNxK with whole numbers from 1 to {}", item, INT32_MAX));
      dims[i] = v;
      start = x + 1;
    }
    out.push_back({dims[0], dims[1], dims[2]});
  }
  return out;
}

const std::vector<std::string> kFlags = {
    "--out",    "--quick",       "--quiet",       "--help",      "--version",
    "--warmup", "--repetitions", "--max-gpus",    "--only",      "--dtypes",
    "--mpi",    "--dry-run",     "--gemm-shapes", "--sustained", "--fp8-accumulation"};
const std::set<std::string> kValueFlags = {"--out",         "--warmup",    "--repetitions",
                                           "--max-gpus",    "--only",      "--dtypes",
                                           "--gemm-shapes", "--sustained", "--fp8-accumulation"};

}  // namespace

Repetitions CliOptions::reps() const {
  return {warmup.value_or(quick ? 3 : 5), repetitions.value_or(quick ? 10 : 20)};
}

std::string usage() {
  return "usage: orrery-profile [--out FILE] [--quick] [--only SECTIONS] [--dtypes TYPES]\n"
         "                      [--gemm-shapes LIST] [--fp8-accumulation MODE]\n"
         "                      [--sustained SECONDS] [--warmup N] [--repetitions N]\n"
         "                      [--max-gpus N] [--quiet] [--mpi] [--dry-run]\n"
         "Measures GEMMs, memory-bound kernels, attention, the launch floor and NCCL\n"
         "collectives on this host's GPUs and writes a measurement file\n"
         "(docs/calibration-format.md).\n"
         "  --out FILE         where to write (default orrery-measurements.yaml)\n"
         "  --quick            a short sweep (about 3 minutes on one H100)\n"
         "  --only SECTIONS    comma list of gemm, memory_bound, attention, launch, collectives\n"
         "  --dtypes TYPES     comma list of fp32, tf32, bf16, fp16, fp8 (GEMMs)\n"
         "  --gemm-shapes LIST comma list of MxNxK: the GEMM shapes to measure instead of\n"
         "                     the sweep's\n"
         "  --fp8-accumulation MODE\n"
         "                     fast, split (default) or both: cuBLASLt's FAST_ACCUM for\n"
         "                     fp8 GEMMs\n"
         "  --sustained SECONDS\n"
         "                     run each GEMM back to back this long (1-3600) before its\n"
         "                     timed repetitions, and record the SM clock\n"
         "  --warmup N         untimed repetitions per case (default 5, 3 with --quick)\n"
         "  --repetitions N    timed repetitions per case (default 20, 10 with --quick)\n"
         "  --max-gpus N       use at most N local GPUs for collectives\n"
         "  --quiet            no progress on stderr\n"
         "  --mpi              collectives across every rank of an MPI job (one GPU per\n"
         "                     rank, as nccl-tests); rank 0 writes\n"
         "  --dry-run          list the cases and touch no GPU (collectives for --max-gpus\n"
         "                     GPUs, default 1)\n"
         "exit codes: 0 written, 1 cannot write / internal error, 2 bad command line,\n"
         "            3 no GPU to measure\n";
}

CliOptions parse_cli(const std::vector<std::string>& args) {
  CliOptions o;
  bool only_given = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> value;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    if (std::find(kFlags.begin(), kFlags.end(), flag) == kFlags.end()) {
      const std::string hint = closest_match(flag, kFlags);
      bad(flag, "",
          flag.rfind("-", 0) == 0
              ? "unknown flag" + (hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint))
              : "unexpected argument (orrery-profile takes only flags)");
    }
    if (kValueFlags.count(flag)) {
      if (!value) {
        if (i + 1 >= args.size()) bad(flag, "", "needs a value");
        value = args[++i];
      }
    } else if (value) {
      bad(flag, *value, "takes no value");
    }
    if (flag == "--out") {
      if (value->empty()) bad(flag, *value, "needs a file name");
      o.out = *value;
    } else if (flag == "--quick") {
      o.quick = true;
    } else if (flag == "--quiet") {
      o.quiet = true;
    } else if (flag == "--help") {
      o.help = true;
    } else if (flag == "--version") {
      o.version = true;
    } else if (flag == "--mpi") {
      o.mpi = true;
    } else if (flag == "--dry-run") {
      o.dry_run = true;
    } else if (flag == "--warmup") {
      o.warmup = parse_int(flag, *value, 0, 1000);
    } else if (flag == "--repetitions") {
      o.repetitions = parse_int(flag, *value, 1, 10000);
    } else if (flag == "--max-gpus") {
      o.max_gpus = parse_int(flag, *value, 1, 1024);
    } else if (flag == "--only") {
      o.sections = parse_enum_list(flag, *value, kAllSections);
      only_given = true;
    } else if (flag == "--dtypes") {
      o.dtypes = parse_enum_list(flag, *value, kGemmDtypes);
    } else if (flag == "--gemm-shapes") {
      o.gemm_shapes = parse_shapes(flag, *value);
    } else if (flag == "--sustained") {
      o.sustained = parse_int(flag, *value, 1, 3600);
    } else if (flag == "--fp8-accumulation") {
      if (*value == "both") {
        o.fp8_accumulation = {std::begin(kAllFp8Accumulations), std::end(kAllFp8Accumulations)};
      } else if (*value == "fast" || *value == "split") {
        o.fp8_accumulation = {*value == "fast" ? Fp8Accumulation::fast : Fp8Accumulation::split};
      } else {
        const std::string hint = closest_match(*value, {"fast", "split", "both"});
        bad(flag, *value,
            fmt::format("expected fast, split or both{}",
                        hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
      }
    }
  }
  if (o.mpi) {
    for (Section sec : only_given ? o.sections : std::set<Section>{})
      if (sec != Section::collectives)
        bad("--mpi", "",
            fmt::format("an MPI run measures collectives only, and --only asks for {}",
                        to_string(sec)));
    if (o.max_gpus) bad("--mpi", "", "does not combine with --max-gpus (the MPI job sets the ranks)");
    if (o.sustained)
      bad("--mpi", "", "does not combine with --sustained (an MPI run measures no GEMMs)");
    o.sections = {Section::collectives};
  }
  return o;
}

namespace {

class SystemEnvironment : public Environment {
 public:
  std::string utc_now_iso8601() override {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  std::string hostname() override {
    char buf[HOST_NAME_MAX + 1] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
  }
  bool stderr_is_terminal() override { return isatty(STDERR_FILENO) == 1; }
};

}  // namespace

std::unique_ptr<Environment> system_environment() { return std::make_unique<SystemEnvironment>(); }

int profile_main(const std::vector<std::string>& args, const DeviceFactory& open_device,
                 Environment& env, std::ostream& out, std::ostream& err) {
  CliOptions o;
  try {
    o = parse_cli(args);
  } catch (const InputError& e) {
    err << "error: flag '" << e.key() << "'" << (e.value().empty() ? "" : " = '" + e.value() + "'")
        << ": " << e.why() << "\n"
        << "run 'orrery-profile --help' for the flags\n";
    return kExitBadInput;
  }
  if (o.help) {
    out << usage();
    return kExitOk;
  }
  if (o.version) {
    out << "orrery-profile " << kToolVersion << "\n";
    return kExitOk;
  }

  if (o.dry_run) {
    PlanOptions po;
    po.quick = o.quick;
    po.gpus = o.max_gpus.value_or(1);
    po.sections = o.sections;
    po.dtypes = o.dtypes;
    po.fp8_accumulation = o.fp8_accumulation;
    po.gemm_shapes = o.gemm_shapes;
    if (o.sustained) po.gemm_sustained = Seconds(*o.sustained);
    po.whole_group_only = o.mpi;
    const Plan plan = make_plan(po);
    for (const auto& c : plan.gemm) out << describe(c) << "\n";
    for (const auto& c : plan.memory_bound) out << describe(c) << "\n";
    for (const auto& c : plan.attention) out << describe(c) << "\n";
    if (plan.launch) out << "launch empty\n";
    for (const auto& c : plan.collectives) out << describe(c) << "\n";
    for (const auto& sk : plan.skipped) out << sk.what << ": skipped: " << sk.reason << "\n";
    out << fmt::format("{} cases, {} repetitions each after {} warm-up", plan.size(),
                       o.reps().timed, o.reps().warmup);
    if (o.sustained && !plan.gemm.empty())
      out << fmt::format("; GEMMs after {} s back to back each ({} s of load)", *o.sustained,
                         std::int64_t{*o.sustained} * static_cast<std::int64_t>(plan.gemm.size()));
    out << "\n";
    return kExitOk;
  }

  // A sweep can take long: refuse an output nobody can write before it starts.
  {
    const std::filesystem::path dir = std::filesystem::path(o.out).parent_path();
    const std::string d = dir.empty() ? "." : dir.string();
    std::error_code ec;
    if (!std::filesystem::is_directory(d, ec) || access(d.c_str(), W_OK) != 0) {
      err << "error: cannot write '" << o.out << "': '" << d
          << "' is not a writable directory\n";
      return kExitInternal;
    }
  }

  std::unique_ptr<Device> device;
  try {
    device = open_device(o);
  } catch (const DeviceUnavailable& e) {
    err << "error: no GPU to measure: " << e.what() << "\n";
    return kExitNoDevice;
  } catch (const InputError& e) {
    err << "error: flag '" << e.key() << "': " << e.why() << "\n";
    return kExitBadInput;
  }

  DeviceInfo info = device->info();
  const RunInfo run = {fmt::format("orrery-profile {}", kToolVersion), env.utc_now_iso8601(),
                       env.hostname(), o.reps()};
  if (o.max_gpus) info.gpu_count = std::min(info.gpu_count, *o.max_gpus);
  MeasurementFile f;
  f.provenance = provenance(run, info);

  PlanOptions po;
  po.quick = o.quick;
  po.gpus = info.gpu_count;
  po.sections = o.sections;
  po.dtypes = o.dtypes;
  po.fp8_accumulation = o.fp8_accumulation;
  po.gemm_shapes = o.gemm_shapes;
  if (o.sustained) po.gemm_sustained = Seconds(*o.sustained);
  po.nodes = info.nodes;
  po.whole_group_only = o.mpi;
  const Plan plan = make_plan(po);

  // Every MPI rank runs the same plan (the collectives need all of them); only the
  // primary shows progress and writes.
  const bool primary = device->is_primary();
  Progress progress(err, primary && !o.quiet && env.stderr_is_terminal());
  run_sweep(*device, plan, run.reps, progress, f);
  if (!primary) return kExitOk;

  if (const auto why = default_env().write_file_atomically(o.out, render_measurements(f))) {
    err << "error: " << *why << "\n";
    return kExitInternal;
  }
  out << render_summary(f);
  if (!o.quiet) {
    const std::size_t measured = f.gemm.size() + f.memory_bound.size() + f.attention.size() +
                                 f.launch.size() + f.collectives.size();
    err << fmt::format("orrery-profile: wrote {}: {} measured, {} skipped\n", o.out, measured,
                       f.skipped.size());
  }
  return kExitOk;
}

}  // namespace orrery::profiler
