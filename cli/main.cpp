// The `orrery` command line: a thin layer over the libraries. It parses flags, calls
// one library entry point, writes the finished output in one piece, and decides the
// exit code: 0 success, 2 bad input (scenario, flag), 1 an internal error.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "core/error.h"
#include "model/analysis.h"
#include "report/check_report.h"
#include "scenario/load.h"

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

  CLI::App* presets = app.add_subcommand("presets", "List the built-in GPU, system and model presets.");

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
    if (*presets) return run_presets();
  } catch (const orrery::InputError& e) {
    std::cerr << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 1;
}
