#include "core/units.h"

#include <cmath>
#include <cstdlib>
#include <fmt/format.h>
#include <utility>

namespace orrery {
namespace {

struct UnitEntry {
  const char* name;
  double factor;  // multiply the number by this to get SI base units
};

// Byte sizes. "GB" is 10^9 bytes, "GiB" 2^30 bytes.
constexpr UnitEntry kBytes[] = {
    {"B", 1.0},         {"kB", 1e3},           {"KB", 1e3},
    {"MB", 1e6},        {"GB", 1e9},           {"TB", 1e12},
    {"PB", 1e15},       {"KiB", 1024.0},       {"MiB", 1048576.0},
    {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
};

constexpr UnitEntry kSeconds[] = {
    {"s", 1.0},   {"ms", 1e-3},  {"us", 1e-6},  {"\xC2\xB5s", 1e-6},  // µs
    {"ns", 1e-9}, {"min", 60.0}, {"h", 3600.0}, {"d", 86400.0},      {"days", 86400.0},
};

constexpr UnitEntry kFlopRate[] = {
    {"FLOP/s", 1.0},     {"GFLOP/s", 1e9},  {"TFLOP/s", 1e12}, {"PFLOP/s", 1e15},
    {"FLOPS", 1.0},      {"GFLOPS", 1e9},   {"TFLOPS", 1e12},  {"PFLOPS", 1e15},
};

// Rates: upper-case B is bytes, lower-case b is bits (divide by 8).
constexpr UnitEntry kBandwidth[] = {
    {"B/s", 1.0},      {"kB/s", 1e3},     {"MB/s", 1e6},      {"GB/s", 1e9},
    {"TB/s", 1e12},    {"KiB/s", 1024.0}, {"MiB/s", 1048576.0}, {"GiB/s", 1073741824.0},
    {"b/s", 0.125},    {"kb/s", 125.0},   {"Mb/s", 1.25e5},   {"Gb/s", 1.25e8},
    {"Tb/s", 1.25e11}, {"Gbps", 1.25e8},  {"Mbps", 1.25e5},   {"Tbps", 1.25e11},
};

constexpr UnitEntry kPower[] = {{"W", 1.0}, {"kW", 1e3}, {"MW", 1e6}};

template <size_t N>
std::pair<const UnitEntry*, size_t> span(const UnitEntry (&a)[N]) {
  return {a, N};
}

std::pair<const UnitEntry*, size_t> units_of(Dimension d) {
  switch (d) {
    case Dimension::bytes: return span(kBytes);
    case Dimension::seconds: return span(kSeconds);
    case Dimension::flop_rate: return span(kFlopRate);
    case Dimension::bandwidth: return span(kBandwidth);
    case Dimension::power: return span(kPower);
  }
  return span(kPower);
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

}  // namespace

const char* dimension_name(Dimension d) {
  switch (d) {
    case Dimension::bytes: return "a size";
    case Dimension::seconds: return "a duration";
    case Dimension::flop_rate: return "a compute rate";
    case Dimension::bandwidth: return "a bandwidth";
    case Dimension::power: return "a power";
  }
  return "?";
}

const char* accepted_units(Dimension d) {
  switch (d) {
    case Dimension::bytes: return "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB";
    case Dimension::seconds: return "s, ms, us, ns, min, h";
    case Dimension::flop_rate: return "FLOP/s, GFLOP/s, TFLOP/s, PFLOP/s";
    case Dimension::bandwidth: return "GB/s, TB/s, GiB/s (bytes) or Mb/s, Gb/s, Tb/s (bits)";
    case Dimension::power: return "W, kW";
  }
  return "?";
}

bool parse_quantity(const std::string& text, Dimension dim, double& value_si,
                    std::string& why) {
  const std::string t = trim(text);
  if (t.empty()) {
    why = "empty value";
    return false;
  }
  const char* begin = t.c_str();
  char* end = nullptr;
  const double number = std::strtod(begin, &end);
  if (end == begin) {
    why = fmt::format("expected {} like \"<number> <unit>\" with unit one of {}",
                      dimension_name(dim), accepted_units(dim));
    return false;
  }
  if (!std::isfinite(number)) {
    why = "the number is not finite";
    return false;
  }
  const std::string unit = trim(std::string(end));
  if (unit.empty()) {
    why = fmt::format("missing unit: write {} with one of {}", dimension_name(dim),
                      accepted_units(dim));
    return false;
  }
  auto [table, n] = units_of(dim);
  for (size_t i = 0; i < n; ++i) {
    if (unit == table[i].name) {
      value_si = number * table[i].factor;
      if (!std::isfinite(value_si)) {
        why = "the value overflows";
        return false;
      }
      return true;
    }
  }
  why = fmt::format("unit \"{}\" is not {}; use one of {}", unit, dimension_name(dim),
                    accepted_units(dim));
  return false;
}

namespace {
std::string scaled(double v, const char* const* names, int count, double step,
                   int precision) {
  int i = 0;
  double a = std::fabs(v);
  while (i + 1 < count && a >= step) {
    a /= step;
    v /= step;
    ++i;
  }
  if (names[i][0] == '\0') return fmt::format("{:.{}f}", v, precision);
  return fmt::format("{:.{}f} {}", v, precision, names[i]);
}
}  // namespace

std::string format_bytes(Bytes b) {
  static const char* names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  return scaled(b.v, names, 6, 1024.0, 2);
}

std::string format_bandwidth(Bandwidth bw) {
  static const char* names[] = {"B/s", "kB/s", "MB/s", "GB/s", "TB/s", "PB/s"};
  return scaled(bw.v, names, 6, 1000.0, 2);
}

std::string format_flop_rate(FlopRate r) {
  static const char* names[] = {"FLOP/s", "kFLOP/s", "MFLOP/s", "GFLOP/s", "TFLOP/s",
                                "PFLOP/s", "EFLOP/s"};
  return scaled(r.v, names, 7, 1000.0, 1);
}

std::string format_seconds(Seconds s) {
  const double v = s.v;
  if (v == 0) return "0 s";
  if (std::fabs(v) >= 1.0) return fmt::format("{:.3f} s", v);
  if (std::fabs(v) >= 1e-3) return fmt::format("{:.3f} ms", v * 1e3);
  if (std::fabs(v) >= 1e-6) return fmt::format("{:.3f} us", v * 1e6);
  return fmt::format("{:.1f} ns", v * 1e9);
}

std::string format_long_duration(Seconds s) {
  const double v = s.v;
  if (std::fabs(v) < 3600.0) return format_seconds(s);
  if (std::fabs(v) < 48 * 3600.0) return fmt::format("{:.1f} h", v / 3600.0);
  return fmt::format("{:.1f} days", v / 86400.0);
}

std::string format_watts(Watts w) {
  static const char* names[] = {"W", "kW", "MW"};
  return scaled(w.v, names, 3, 1000.0, 1);
}

std::string format_count(double n) {
  static const char* names[] = {"", "K", "M", "B", "T"};
  return scaled(n, names, 5, 1000.0, 2);
}

}  // namespace orrery
