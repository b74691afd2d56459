#include "sweep/html.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace orrery {
namespace {

using nlohmann::json;

constexpr double kGiB = 1073741824.0;
constexpr int kTop = 20;  // configurations in the bar charts
constexpr double kW = 760, kH = 420, kLeft = 70, kRight = 70, kTop_ = 20, kBottom = 175;

const std::vector<std::pair<std::string, std::string>> kParts = {
    {"compute_s", "#4e79a7"},      {"recompute_s", "#a0cbe8"}, {"tp_exposed_s", "#f28e2b"},
    {"ep_exposed_s", "#ffbe7d"},   {"cp_exposed_s", "#8cd17d"}, {"pp_exposed_s", "#b6992d"},
    {"dp_exposed_s", "#e15759"},   {"bubble_s", "#bab0ac"},     {"optimizer_s", "#76b7b2"},
    {"offload_exposed_s", "#d37295"}};

std::string esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

// A configuration's label; with several GPUs in the sweep (`gpu`) it names its GPU.
std::string label(const json& c, bool gpu) {
  std::string s;
  if (gpu) s = c.at("gpu").get<std::string>() + " ";
  if (c.contains("nodes")) s += fmt::format("{}n ", c.at("nodes").get<int>());
  s += fmt::format("tp{} pp{} dp{}", c.at("tp").get<int>(), c.at("pp").get<int>(),
                   c.at("dp").get<int>());
  if (c.at("vp").get<int>() > 1) s += fmt::format(" vp{}", c.at("vp").get<int>());
  if (c.contains("vp_layout") && c.at("vp_layout").get<std::string>() == "embedding+loss")
    s += " E+L";
  s += fmt::format(" mb{} z{} {}", c.at("microbatch").get<int>(), c.at("zero_stage").get<int>(),
                   c.at("recompute").get<std::string>());
  return s;
}

// A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above v.
double nice_max(double v) {
  if (v <= 0) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double f : {1.0, 2.0, 5.0, 10.0})
    if (f * p >= v) return f * p;
  return 10 * p;
}

struct Axes {
  double x0, x1, y0, y1;  // data ranges
  double px(double x) const { return kLeft + (x - x0) / (x1 - x0) * (kW - kLeft - kRight); }
  double py(double y) const { return kH - kBottom - (y - y0) / (y1 - y0) * (kH - kTop_ - kBottom); }
};

std::string open_svg(const std::string& id, const std::string& title) {
  return fmt::format(
      "<h2>{}</h2>\n<svg class=\"chart\" id=\"{}\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" font-size=\"11\">\n",
      esc(title), id, kW, kH, kW, kH);
}

std::string y_axis(const Axes& a, const std::string& unit, bool right = false) {
  std::string out;
  const double x = right ? kW - kRight : kLeft;
  out += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#333\"/>\n",
                     x, a.py(a.y0), x, a.py(a.y1));
  for (int i = 0; i <= 4; ++i) {
    const double v = a.y0 + (a.y1 - a.y0) * i / 4;
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{:.4g}</text>\n",
                       right ? x + 4 : x - 4, a.py(v) + 4, right ? "start" : "end", v);
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"12\" text-anchor=\"{}\">{}</text>\n",
                     right ? kW - 4 : 4.0, right ? "end" : "start", esc(unit));
  return out;
}

std::string x_axis_numeric(const Axes& a, const std::string& unit) {
  std::string out = fmt::format(
      "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#333\"/>\n", a.px(a.x0),
      a.py(a.y0), a.px(a.x1), a.py(a.y0));
  for (int i = 0; i <= 4; ++i) {
    const double v = a.x0 + (a.x1 - a.x0) * i / 4;
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{:.4g}</text>\n",
                       a.px(v), a.py(a.y0) + 14, v);
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n",
                     (kLeft + kW - kRight) / 2, a.py(a.y0) + 32, esc(unit));
  return out;
}

// Bars for the top configurations; `stack(c)` gives (value, colour) segments.
template <class Stack>
std::string bars(const std::vector<const json*>& rows, bool gpu, double ymax, Stack stack) {
  Axes a{0, static_cast<double>(rows.size()), 0, ymax};
  std::string out;
  const double slot = (kW - kLeft - kRight) / std::max<std::size_t>(1, rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    double y = 0;
    for (const auto& [v, colour] : stack(*rows[i])) {
      if (v <= 0) continue;
      out += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n",
          kLeft + slot * i + slot * 0.15, a.py(y + v), slot * 0.7, a.py(y) - a.py(y + v), colour);
      y += v;
    }
    const double cx = kLeft + slot * (i + 0.5);
    out += fmt::format(
        "<text transform=\"translate({:.1f},{:.1f}) rotate(-65)\" text-anchor=\"end\" "
        "font-size=\"9\">{}</text>\n",
        cx, kH - kBottom + 10, esc(label(*rows[i], gpu)));
  }
  return out;
}

// The page's head and the sweep's summary.
std::string page_head(const json& j) {
  const json& sum = j["summary"];
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>orrery sweep: " +
      esc(sum.at("scenario").get<std::string>()) +
      "</title>\n<style>body{font-family:sans-serif;margin:24px;max-width:820px}"
      "h2{font-size:15px;margin:22px 0 4px}td,th{padding:2px 8px;text-align:right}"
      "svg{border:1px solid #ddd;background:#fff}.legend span{display:inline-block;"
      "margin-right:10px;font-size:11px}.legend i{display:inline-block;width:10px;"
      "height:10px;margin-right:3px}</style>\n</head>\n<body data-status=\"loading\">\n";
  html += fmt::format("<h1 style=\"font-size:18px\">{}</h1>\n",
                      esc(sum.at("scenario").get<std::string>()));
  html += fmt::format(
      "<p>{} candidates: {} invalid, {} out of memory, {} pruned by the lower bound, {} "
      "simulated. Objective: {}.</p>\n",
      sum.at("candidates").get<long>(), sum.at("invalid").get<long>(),
      sum.at("out_of_memory").get<long>(), sum.at("pruned").get<long>(),
      sum.at("simulated").get<long>(), esc(sum.at("objectives").dump()));
  if (j.contains("best_megatron_arguments")) {
    html += "<p>Best as Megatron-LM arguments: <code>" +
            esc(j["best_megatron_arguments"].get<std::string>()) + "</code></p>\n";
  }
  return html;
}

// The best configurations' prediction bands and validated-region flags (report/band.h):
// measured = predicted / (1 + e) over the family's step-time residuals. JSON written
// before bands existed has none: no table.
std::string band_table(const std::vector<const json*>& top, bool gpu) {
  if (top.empty() || !top.front()->contains("band")) return "";
  std::string html =
      "<h2>Prediction band and validated region, best configurations</h2>\n<table>\n<tr>"
      "<th>configuration</th><th>predicted step</th><th>measured likely</th><th>MFU</th>"
      "<th>band from</th><th style=\"text-align:left\">outside the validated region</th></tr>\n";
  for (const json* c : top) {
    const json& b = c->at("band");
    const double t = c->at("figures").at("step_time_s").get<double>();
    const double e_min = b.at("step_time_error_min").get<double>();
    const double e_max = b.at("step_time_error_max").get<double>();
    std::string outside;
    for (const auto& f : c->at("outside_validated_region")) {
      outside += (outside.empty() ? "" : "<br>") + esc(f.at("text").get<std::string>());
    }
    html += fmt::format(
        "<tr><td>{}</td><td>{:.3f} s</td><td>{}</td><td>{:.1f} %</td><td>{}</td>"
        "<td style=\"text-align:left\">{}</td></tr>\n",
        esc(label(*c, gpu)), t,
        b.at("cases").get<int>() > 0
            ? fmt::format("{:.3f} - {:.3f} s", t / (1 + e_max), t / (1 + e_min))
            : std::string("-"),
        100 * c->at("figures").at("mfu").get<double>(), esc(b.at("describe").get<std::string>()),
        outside.empty() ? std::string("inside") : outside);
  }
  return html + "</table>\n";
}

// 1. Breakdown.
std::string breakdown_chart(const std::vector<const json*>& top, bool gpu) {
  std::string html;
  double tmax = 0;
  for (const json* c : top) tmax = std::max(tmax, c->at("figures").at("step_time_s").get<double>());
  Axes a1{0, 1, 0, nice_max(tmax)};
  html += open_svg("breakdown", fmt::format("Step time and where it goes, best {} configurations",
                                            top.size()));
  html += y_axis(a1, "seconds per step");
  html += bars(top, gpu, a1.y1, [](const json& c) {
    std::vector<std::pair<double, std::string>> s;
    for (const auto& [key, colour] : kParts)
      s.emplace_back(c.at("figures").at("breakdown").at(key).get<double>(), colour);
    return s;
  });
  html += "</svg>\n<div class=\"legend\">";
  for (const auto& [key, colour] : kParts) {
    html += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", colour,
                        key.substr(0, key.size() - 2));
  }
  html += "</div>\n";
  return html;
}

// 2. Memory.
std::string memory_chart(const std::vector<const json*>& top, bool gpu) {
  std::string html;
  double cap = 0, mmax = 0;
  for (const json* c : top) {
    cap = std::max(cap, c->value("capacity_bytes", 0.0) / kGiB);  // the tallest
    mmax = std::max(mmax, c->value("memory_bytes", 0.0) / kGiB);
  }
  Axes a2{0, 1, 0, nice_max(std::max(cap, mmax) * 1.05)};
  html += open_svg("memory", "Memory per GPU (busiest stage) against each GPU's capacity");
  html += y_axis(a2, "GiB per GPU");
  html += bars(top, gpu, a2.y1, [](const json& c) {
    return std::vector<std::pair<double, std::string>>{
        {c.value("memory_bytes", 0.0) / kGiB, "#59a14f"}};
  });
  // Each configuration's own GPU capacity, a dashed mark over its bar (a sweep over GPUs
  // has several), labelled once per distinct capacity.
  const double slot = (kW - kLeft - kRight) / std::max<std::size_t>(1, top.size());
  std::map<long, bool> labelled;
  for (std::size_t i = 0; i < top.size(); ++i) {
    const double c = top[i]->value("capacity_bytes", 0.0) / kGiB;
    html += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e15759\" "
        "stroke-dasharray=\"4 2\" stroke-width=\"2\"/>\n",
        kLeft + slot * i + slot * 0.05, a2.py(c), kLeft + slot * (i + 1) - slot * 0.05, a2.py(c));
    if (!labelled[std::lround(c * 10)]) {
      labelled[std::lround(c * 10)] = true;
      html += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#e15759\">capacity {:.1f} "
          "GiB</text>\n",
          kLeft + slot * i + 2, a2.py(c) - 4, c);
    }
  }
  html += "</svg>\n";
  return html;
}

// The points no other point beats in both coordinates (smaller is better), by x.
std::vector<std::pair<double, double>> lower_left_front(
    std::vector<std::pair<double, double>> sorted) {
  std::vector<std::pair<double, double>> front;
  std::sort(sorted.begin(), sorted.end());
  double best = INFINITY;
  for (const auto& p : sorted) {
    if (p.second < best) {
      front.push_back(p);
      best = p.second;
    }
  }
  return front;
}

// 3. Time against cost, with the Pareto front.
std::string pareto_chart(const std::vector<const json*>& simulated, const json& objectives) {
  std::string html;
  auto wants = [&](const char* o) {
    for (const auto& x : objectives)
      if (x.get<std::string>() == o) return true;
    return false;
  };
  const json* first = simulated.empty() ? nullptr : &simulated.front()->at("figures");
  // x: time to train (days) when the run is modelled, else seconds per step; y: the money
  // objective asked for (TCO, else rent), else energy when that is the objective, else
  // GPU-hours per step.
  const bool run = first && first->contains("time_to_train_s");
  const char* ykey = nullptr;
  if (first && wants("tco") && first->contains("tco_usd"))
    ykey = "tco_usd";
  else if (first && first->contains("cost_usd"))
    ykey = "cost_usd";
  else if (first && wants("energy") && first->contains("energy_kwh"))
    ykey = "energy_kwh";
  const bool dollars = ykey && std::string(ykey) != "energy_kwh";
  auto cost_of = [&](const json& c) {
    const json& f = c.at("figures");
    return ykey ? f.value(ykey, 0.0)
                : c.at("gpus").get<double>() * f.at("step_time_s").get<double>() / 3600.0;
  };
  auto time_of = [&](const json& c) {
    const json& f = c.at("figures");
    return run ? f.value("time_to_train_s", 0.0) / 86400.0 : f.at("step_time_s").get<double>();
  };
  std::vector<std::pair<double, double>> pts;
  for (const json* c : simulated) pts.emplace_back(time_of(*c), cost_of(*c));
  double xmax = 0, ymax = 0;
  for (const auto& [x, y] : pts) {
    xmax = std::max(xmax, x);
    ymax = std::max(ymax, y);
  }
  Axes a3{0, nice_max(xmax), 0, nice_max(ymax)};
  const std::string xname = run ? "Time to train" : "Step time";
  const std::string yname = !ykey                            ? "GPU-hours per step"
                            : std::string(ykey) == "tco_usd" ? "the run's cost of ownership"
                            : dollars                        ? "the whole run's rent"
                                                             : "the run's energy";
  html += open_svg("pareto", xname + " against " + yname + "; Pareto front in red");
  html += y_axis(a3, !ykey     ? "GPU-hours per step"
                     : dollars ? "US$ for the run"
                               : "kWh for the run");
  html += x_axis_numeric(a3, run ? "days to train" : "seconds per step");
  for (const auto& [x, y] : pts) {
    html += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2\" fill=\"#4e79a7\" "
                        "fill-opacity=\"0.5\"/>\n",
                        a3.px(x), a3.py(y));
  }
  const std::vector<std::pair<double, double>> front = lower_left_front(pts);
  std::string path;
  for (const auto& [x, y] : front) {
    path += fmt::format("{}{:.1f},{:.1f} ", path.empty() ? "M" : "L", a3.px(x), a3.py(y));
    html += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"#e15759\"/>\n",
                        a3.px(x), a3.py(y));
  }
  if (!path.empty()) {
    html += "<path d=\"" + path + "\" fill=\"none\" stroke=\"#e15759\"/>\n";
  }
  html += "</svg>\n";
  return html;
}

// 4. Scaling: the best throughput at each GPU count, and per-GPU efficiency relative
// to the smallest count.
// Colours of the systems' series, in order.
const char* const kSeries[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2"};

// 4. Scaling: per system (GPU), the best throughput at each GPU count, and per-GPU
// efficiency relative to that system's smallest count. No chart (a note instead) when
// no system was simulated at two GPU counts: one point makes no line.
std::string scaling_chart(const std::vector<const json*>& simulated) {
  std::string html;
  std::map<std::string, std::map<int, double>> best;  // GPU -> GPUs -> tokens/s
  std::vector<std::string> order;
  for (const json* c : simulated) {
    const std::string gpu = c->at("gpu").get<std::string>();
    if (!best.count(gpu)) order.push_back(gpu);
    const int g = c->at("gpus").get<int>();
    double& t = best[gpu][g];
    t = std::max(t, c->at("figures").at("tokens_per_s").get<double>());
  }
  double gmax = 0, tpsmax = 0;
  std::size_t counts = 0;
  for (const auto& [gpu, series] : best) {
    counts = std::max(counts, series.size());
    for (const auto& [g, t] : series) {
      gmax = std::max(gmax, static_cast<double>(g));
      tpsmax = std::max(tpsmax, t);
    }
  }
  if (counts < 2) {
    return "<p>One GPU count was simulated per system: no scaling chart (sweep "
           "<code>nodes</code> for one).</p>\n";
  }
  Axes a4{0, nice_max(gmax), 0, nice_max(tpsmax)};
  Axes a4e{0, nice_max(gmax), 0, 120};
  html += open_svg("scaling",
                   "Throughput (circles, solid) and scaling efficiency (squares, "
                   "dashed) against GPUs, per system");
  html += y_axis(a4, "tokens/s (best split)");
  html += y_axis(a4e, "efficiency %", true);
  html += x_axis_numeric(a4, "GPUs");
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::map<int, double>& series = best[order[k]];
    const char* colour = kSeries[k % std::size(kSeries)];
    std::string tline, eline;
    const double base = series.begin()->second / series.begin()->first;
    for (const auto& [g, t] : series) {
      const double eff = 100 * (t / g) / base;
      tline += fmt::format("{}{:.1f},{:.1f} ", tline.empty() ? "M" : "L", a4.px(g), a4.py(t));
      eline += fmt::format("{}{:.1f},{:.1f} ", eline.empty() ? "M" : "L", a4e.px(g), a4e.py(eff));
      html += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"/>\n", a4.px(g),
                          a4.py(t), colour);
      html +=
          fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"7\" height=\"7\" fill=\"{}\"/>\n",
                      a4e.px(g) - 3.5, a4e.py(eff) - 3.5, colour);
    }
    html += "<path d=\"" + tline + "\" fill=\"none\" stroke=\"" + colour + "\"/>\n";
    html += "<path d=\"" + eline + "\" fill=\"none\" stroke=\"" + colour +
            "\" stroke-dasharray=\"5 3\"/>\n";
  }
  html += "</svg>\n<div class=\"legend\">";
  for (std::size_t k = 0; k < order.size(); ++k) {
    html += fmt::format("<span><i style=\"background:{}\"></i>{}</span>",
                        kSeries[k % std::size(kSeries)], esc(order[k]));
  }
  html += "</div>\n";
  return html;
}

// The buyer's answer (orrery sweep's per-system table), one row per system.
std::string systems_table(const json& j) {
  if (!j.contains("systems") || j["systems"].empty()) return "";
  const json& cands = j["candidates"];
  std::string html =
      "<h2>Per system: the smallest cluster meeting the constraints, its best split</h2>\n"
      "<table>\n<tr><th style=\"text-align:left\">system</th><th>nodes</th><th>GPUs</th>"
      "<th>split</th><th>days</th><th>GPU-hours</th><th>rent</th><th>TCO</th><th>MWh</th>"
      "<th>peak MW</th><th>days, band</th></tr>\n";
  for (const auto& sc : j["systems"]) {
    std::string name = sc.at("gpu").get<std::string>();
    if (!sc.at("system").get<std::string>().empty())
      name = sc.at("system").get<std::string>() + " / " + name;
    if (sc.at("best").is_null()) {
      html += fmt::format(
          "<tr class=\"system\"><td style=\"text-align:left\">{}</td><td "
          "colspan=\"10\">no candidate meets the constraints</td></tr>\n",
          esc(name));
      continue;
    }
    const json& c = cands.at(sc.at("best").get<std::size_t>());
    const json& f = c.at("figures");
    const double days = f.value("time_to_train_s", 0.0) / 86400.0;
    std::string band = "-";
    if (c.contains("band") && c.at("band").at("cases").get<int>() > 0) {
      const double e_min = c.at("band").at("step_time_error_min").get<double>();
      const double e_max = c.at("band").at("step_time_error_max").get<double>();
      band = fmt::format("{:.1f} - {:.1f}", days / (1 + e_max), days / (1 + e_min));
    }
    auto usd = [&](const char* key) {
      return f.contains(key) ? fmt::format("${:.2f}M", f.at(key).get<double>() / 1e6)
                             : std::string("-");
    };
    html += fmt::format(
        "<tr class=\"system\"><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{:.1f}</td><td>{:.0f}</td><td>{}</td><td>{}</td><td>{:.0f}</td>"
        "<td>{:.2f}</td><td>{}</td></tr>\n",
        esc(name), c.at("nodes").get<int>(), c.at("gpus").get<int>(), esc(label(c, false)), days,
        sc.value("gpu_hours", 0.0), usd("cost_usd"), usd("tco_usd"),
        f.value("energy_kwh", 0.0) / 1e3, f.value("peak_power_w", 0.0) / 1e6, band);
  }
  return html + "</table>\n";
}

// 5. The best configuration's timeline: a row per simulated GPU and stream.
std::string timeline_chart(const json& tl) {
  std::string html;
  std::map<std::pair<int, std::string>, int> rows;
  double end = 0;
  for (const auto& t : tl) {
    rows.emplace(std::make_pair(t.at(0).get<int>(), t.at(1).get<std::string>()), 0);
    end = std::max(end, t.at(4).get<double>());
  }
  int n = 0;
  for (auto& [key, row] : rows) row = n++;
  const double row_h = std::min(18.0, 520.0 / n), height = 40 + row_h * n + 40;
  const double x0 = 110, x1 = kW - 20;
  html += fmt::format(
      "<h2>Timeline of the best configuration (one simulated GPU per pipeline stage)</h2>\n"
      "<svg class=\"chart\" id=\"timeline\" width=\"{}\" height=\"{:.0f}\" viewBox=\"0 0 {} "
      "{:.0f}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"sans-serif\" "
      "font-size=\"10\">\n",
      kW, height, kW, height);
  const std::map<std::string, std::string> colour = {
      {"forward", "#4e79a7"}, {"backward", "#f28e2b"}, {"recompute", "#a0cbe8"},
      {"optimizer", "#76b7b2"}};
  for (const auto& [key, row] : rows) {
    html += fmt::format("<text x=\"4\" y=\"{:.1f}\">GPU {} {}</text>\n",
                        30 + row_h * row + row_h * 0.75, key.first, esc(key.second));
  }
  for (const auto& t : tl) {
    const int row = rows.at({t.at(0).get<int>(), t.at(1).get<std::string>()});
    const double a = t.at(3).get<double>(), b = t.at(4).get<double>();
    auto c = colour.find(t.at(2).get<std::string>());
    html += fmt::format(
        "<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"{}\"/>\n",
        x0 + a / end * (x1 - x0), 30 + row_h * row, std::max(0.3, (b - a) / end * (x1 - x0)),
        row_h * 0.8, c == colour.end() ? "#e15759" : c->second);
  }
  html += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\">0 s</text><text x=\"{:.1f}\" y=\"{:.1f}\" "
      "text-anchor=\"end\">{:.3f} s</text>\n</svg>\n",
      x0, height - 20, x1, height - 20, end);
  html += "<div class=\"legend\"><span><i style=\"background:#4e79a7\"></i>forward</span>"
          "<span><i style=\"background:#f28e2b\"></i>backward</span><span><i "
          "style=\"background:#a0cbe8\"></i>recompute</span><span><i "
          "style=\"background:#76b7b2\"></i>optimizer</span><span><i "
          "style=\"background:#e15759\"></i>communication</span></div>\n";
  return html;
}

// The page checks itself: every chart drew marks, and no script error happened.
constexpr const char* kSelfCheck = R"(<script>
window.onerror = function (m) { document.body.setAttribute('data-status', 'error: ' + m); };
(function () {
  var charts = document.querySelectorAll('svg.chart'), bad = [];
  for (var i = 0; i < charts.length; i++) {
    var marks = charts[i].querySelectorAll('rect, circle, path');
    var drawn = 0;
    for (var k = 0; k < marks.length; k++) {
      var b = marks[k].getBBox();
      if (b.width > 0 || b.height > 0) drawn++;
    }
    if (drawn === 0) bad.push(charts[i].id);
  }
  document.body.setAttribute('data-status',
      bad.length ? 'error: empty ' + bad.join(' ') : 'ok ' + charts.length);
})();
</script>
</body></html>
)";

}  // namespace

std::string render_sweep_html(const std::string& text, const std::string& file) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw InputError({file, std::nullopt}, "", "", std::string("not JSON: ") + e.what());
  }
  if (!j.is_object() || !j.contains("summary") || !j.contains("candidates") ||
      !j.contains("ranked")) {
    throw InputError({file, std::nullopt}, "", "",
                     "not the JSON of orrery sweep --json (no summary, ranked, candidates)");
  }
  try {
    const json& cands = j["candidates"];
    std::vector<const json*> top;
    for (const auto& idx : j["ranked"]) {
      if (top.size() >= static_cast<std::size_t>(kTop)) break;
      top.push_back(&cands.at(idx.get<std::size_t>()));
    }
    std::vector<const json*> simulated;
    for (const auto& c : cands)
      if (c.contains("figures") && c.at("status") == "simulated") simulated.push_back(&c);

    std::map<std::string, int> gpus;
    for (const auto& c : cands) gpus[c.value("gpu", std::string())] = 1;
    const bool several = gpus.size() > 1;  // labels name the GPU
    std::string html = page_head(j);
    html += systems_table(j);
    html += band_table(top, several);
    html += breakdown_chart(top, several);
    html += memory_chart(top, several);
    html += pareto_chart(simulated, j["summary"]["objectives"]);
    html += scaling_chart(simulated);
    if (j.contains("best_timeline") && !j["best_timeline"].empty()) {
      html += timeline_chart(j["best_timeline"]);
    }
    html += kSelfCheck;
    return html;
  } catch (const json::exception& e) {
    throw InputError({file, std::nullopt}, "", "",
                     std::string("not the JSON of orrery sweep --json: ") + e.what());
  }
}

}  // namespace orrery