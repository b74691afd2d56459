// The Python module `orrery`: check, run, sweep, validate and schema as functions that return
// what the commands print with --format json, as plain dicts and lists. Each result is
// the JSON text the command's writer produces (report/, sweep/output.h), read by
// Python's json module, so its fields, names and numbers are the command's. A scenario
// is a path (str without a newline, or os.PathLike), YAML text (str with a newline) or
// a dict (written as JSON, which YAML reads, and read like a file named "<dict>").
// Failures raise orrery.Error with the message the command prints and its parts; the
// GIL is released while a scenario is read and simulated.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "model/analysis.h"
#include "report/check_report.h"
#include "report/run_report.h"
#include "report/validate_report.h"
#include "scenario/load.h"
#include "scenario/schema.h"
#include "scenario/sweep_spec.h"
#include "simulator/predict.h"
#include "sweep/output.h"
#include "sweep/sweep.h"

namespace py = pybind11;

namespace {

// orrery.Error, created once at import; the module holds the reference.
PyObject* error_type = nullptr;

// Where a scenario comes from: a file, or text named `name` in messages.
struct Source {
  bool is_text = false;
  std::string path_or_text;
  std::string name;
};

Source source_of(const py::handle& s) {
  if (py::isinstance<py::dict>(s)) {
    const py::object text = py::module_::import("json").attr("dumps")(s, py::arg("indent") = 1);
    return {true, text.cast<std::string>(), "<dict>"};
  }
  if (py::isinstance<py::str>(s)) {
    std::string v = s.cast<std::string>();
    if (v.find('\n') != std::string::npos) return {true, std::move(v), "<string>"};
    return {false, std::move(v), ""};
  }
  if (py::hasattr(s, "__fspath__")) {
    return {false, py::module_::import("os").attr("fspath")(s).cast<std::string>(), ""};
  }
  throw py::type_error(
      "a scenario is a path (str or os.PathLike), YAML text (str with a "
      "newline) or a dict, not " +
      py::str(py::type::of(s).attr("__name__")).cast<std::string>());
}

py::object from_json(const std::string& text) {
  return py::module_::import("json").attr("loads")(text);
}

// Raises orrery.Error: args[0] is the message the command prints; kind is "input" (the
// command's exit code 2: file, line, key and value as given) or "internal" (exit code 1).
[[noreturn]] void raise(const std::string& message, const orrery::InputError* input) {
  py::object err = py::reinterpret_borrow<py::object>(error_type)(message);
  err.attr("kind") = input ? "input" : "internal";
  err.attr("exit_code") = input ? 2 : 1;
  err.attr("file") = input ? py::object(py::str(input->where().file)) : py::none();
  err.attr("line") =
      input && input->where().line ? py::object(py::int_(*input->where().line)) : py::none();
  err.attr("key") = input ? py::object(py::str(input->key())) : py::none();
  err.attr("value") = input ? py::object(py::str(input->value())) : py::none();
  err.attr("why") = input ? py::object(py::str(input->why())) : py::none();
  PyErr_SetObject(error_type, err.ptr());
  throw py::error_already_set();
}

// Runs `work` without the GIL and turns orrery's exceptions into orrery.Error.
template <typename F>
std::string guarded(F work) {
  try {
    py::gil_scoped_release unlocked;
    return work();
  } catch (const orrery::InputError& e) {
    raise(e.what(), &e);
  } catch (const std::exception& e) {
    raise(e.what(), nullptr);
  }
}

orrery::Scenario load(const Source& s) {
  return s.is_text ? orrery::load_scenario_text(s.path_or_text, s.name)
                   : orrery::load_scenario_file(s.path_or_text);
}

py::object check(const py::handle& scenario) {
  const Source s = source_of(scenario);
  return from_json(guarded([&] {
    const orrery::Scenario sc = load(s);
    return orrery::render_check_json(sc, orrery::analyse_step(sc));
  }));
}

py::object run(const py::handle& scenario, bool full) {
  const Source s = source_of(scenario);
  return from_json(guarded([&] {
    const orrery::Scenario sc = load(s);
    orrery::SimulationOptions opt;
    opt.full = full;
    return orrery::render_run_json(sc, orrery::predict(sc, opt));
  }));
}

py::object sweep(const py::handle& scenario, std::optional<int> threads) {
  const Source s = source_of(scenario);
  if (threads && *threads < 1) throw py::value_error("threads must be at least 1");
  return from_json(guarded([&] {
    const orrery::SweepInput in = s.is_text ? orrery::load_sweep_text(s.path_or_text, s.name)
                                            : orrery::load_sweep_file(s.path_or_text);
    orrery::SweepOptions o;
    o.threads =
        threads ? *threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    return orrery::render_sweep_json(in, orrery::run_sweep(in, o));
  }));
}

py::object validate(const py::handle& paths) {
  std::vector<std::string> given;
  if (py::isinstance<py::str>(paths) || py::hasattr(paths, "__fspath__")) {
    given.push_back(py::module_::import("os").attr("fspath")(paths).cast<std::string>());
  } else {
    for (const py::handle p : paths) {
      given.push_back(py::module_::import("os").attr("fspath")(p).cast<std::string>());
    }
  }
  return from_json(guarded([&] {
    return orrery::render_validation_json(
        orrery::validation_cases(orrery::scenario_files(given)));
  }));
}

py::object schema() { return from_json(orrery::scenario_schema()); }

}  // namespace

PYBIND11_MODULE(orrery, m) {
  m.doc() =
      "orrery: predicts what a deep-learning training run costs on a cluster. check, run, "
      "sweep and validate return what `orrery COMMAND --format json` prints, as dicts and "
      "lists. A scenario is a path, YAML text (a str with a newline) or a dict.";
  m.attr("__version__") = ORRERY_VERSION;
  error_type = PyErr_NewExceptionWithDoc(
      "orrery.Error",
      "A failure of orrery: str(e) is the message the command prints. kind is 'input' (bad "
      "input: the command's exit code 2, exit_code) with file, line, key, value and why, or "
      "'internal' (exit code 1) with those None.",
      PyExc_Exception, nullptr);
  if (error_type == nullptr) throw py::error_already_set();
  m.attr("Error") = py::reinterpret_borrow<py::object>(error_type);

  m.def("check", &check, py::arg("scenario"),
        "Resolved configuration, parameters, FLOPs per step and memory per GPU: what "
        "`orrery check --format json` prints.");
  m.def("run", &run, py::arg("scenario"), py::arg("full") = false,
        "One simulated training step (and the whole run with training.target): what "
        "`orrery run --format json` prints; full=True simulates every GPU (--full).");
  m.def("sweep", &sweep, py::arg("scenario"), py::arg("threads") = py::none(),
        "The scenario's sweep: section searched: what `orrery sweep --json` writes. threads "
        "defaults to every core.");
  m.def("validate", &validate, py::arg("paths"),
        "Scenarios with a measured: block against their published figures: what `orrery "
        "validate --format json` prints. paths: a file or directory, or a list of them.");
  m.def("schema", &schema, "The JSON Schema of the scenario format: what `orrery schema` prints.");
}
