// The `orrery` command line: a thin layer over the libraries. It parses flags, calls
// one library entry point, writes the finished output in one piece, and decides the
// exit code: 0 success, 2 bad input (scenario, flag), 1 an internal error.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "calibrate/profile.h"
#include "calibrate/profile_model.h"
#include "core/error.h"
#include "model/analysis.h"
#include "report/check_report.h"
#include "report/run_report.h"
#include "report/validate_report.h"
#include "scenario/load.h"
#include "simulator/step.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

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

// Writes `text` to `path` whole: to a temporary file first, renamed into place, so a
// failure never leaves a half-written file behind.
void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw orrery::InputError({path, std::nullopt}, "", "", "cannot write the file");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out) throw orrery::InputError({path, std::nullopt}, "", "", "cannot write the file");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw orrery::InputError({path, std::nullopt}, "", "", "cannot write the file");
  }
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
  const orrery::StepResult r = orrery::simulate_step(s, opt);
  std::string out = format == "json"  ? orrery::render_run_json(s, r)
                          : format == "csv" ? orrery::render_run_csv(s, r)
                                            : orrery::render_run_table(s, r);
  if (!trace.empty()) write_file(trace, orrery::render_trace(s, r));
  if (explain) out += orrery::render_explanation(*orrery::make_compute_model(s));
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

// Fits a profile from the inputs and writes it whole to `out`; prints one line per family.
int run_calibrate(const std::vector<std::string>& paths, const std::string& out,
                  const std::string& op) {
  std::vector<orrery::CalibrationInput> inputs;
  for (const auto& p : paths) inputs.push_back({p, op});
  const orrery::Profile profile = orrery::calibrate(inputs);
  write_file(out, orrery::render_profile(profile));
  const std::string summary = orrery::render_profile_summary(profile) + "wrote " + out + "\n";
  std::fwrite(summary.data(), 1, summary.size(), stdout);
  return 0;
}

// Scenario files named on the command line, directories searched for *.yaml, sorted.
std::vector<std::string> expand(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".yaml") found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        throw orrery::InputError({p, std::nullopt}, "", "", "no .yaml scenario in this directory");
      }
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(p);
    }
  }
  return files;
}

int run_validate(const std::vector<std::string>& paths, const std::string& format) {
  std::vector<orrery::ValidationCase> cases;
  for (const std::string& file : expand(paths)) {
    const orrery::Scenario s = orrery::load_scenario_file(file);
    if (!s.measured) {
      throw orrery::InputError({file, std::nullopt}, "measured", "",
                               "missing key: a validation case needs a measured: block "
                               "(metric, value, source)");
    }
    const orrery::StepResult r = orrery::simulate_step(s);
    orrery::ValidationCase c;
    c.id = s.name;
    c.file = file;
    c.metric = s.measured->metric;
    c.measured = s.measured->value;
    c.source = s.measured->source;
    c.predicted = orrery::metric_value(r, s, c.metric);
    cases.push_back(c);
  }
  const std::string out = format == "json" ? orrery::render_validation_json(cases)
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
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
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
             "memory per GPU and bytes per link class.");
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
                  "the published figure; print each error and the mean and max |error|.");
  validate->add_option("paths", validate_paths, "Scenario files or directories")->required();
  validate->add_option("--format", validate_format, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();

  CLI::App* presets = app.add_subcommand("presets", "List the built-in GPU, system and model presets.");

  std::vector<std::string> calibrate_inputs;
  std::string calibrate_out, calibrate_op;
  CLI::App* calibrate = app.add_subcommand(
      "calibrate", "Fit a hardware profile from measurements: orrery-profile measurement "
                   "files, nccl-tests logs and PyTorch/Kineto traces; every fitted family "
                   "reports its leave-one-out held-out error.");
  calibrate->add_option("inputs", calibrate_inputs, "Input files")->required();
  calibrate->add_option("-o,--output", calibrate_out, "Profile file to write")->required();
  calibrate->add_option("--op", calibrate_op,
                        "Collective of nccl-tests logs that do not name their program "
                        "(all_reduce, all_gather, reduce_scatter, all_to_all, broadcast, "
                        "send_recv)");

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
    if (*calibrate) return run_calibrate(calibrate_inputs, calibrate_out, calibrate_op);
  } catch (const orrery::InputError& e) {
    std::cerr << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 1;
}
