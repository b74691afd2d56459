// Physical quantities with their dimension in the type, so a bandwidth can never be
// passed where a byte count is expected. All values are stored in SI base units as
// double: bytes, seconds, FLOP, FLOP/s, bytes/s, watts. double represents every
// integer byte count below 2^53 (8 PiB) exactly, which covers any per-GPU figure.
#pragma once

#include <string>

namespace orrery {

template <class Tag>
struct Quantity {
  double v = 0.0;  // value in the SI base unit named by Tag::base_unit

  constexpr Quantity() = default;
  constexpr explicit Quantity(double value) : v(value) {}
  constexpr double value() const { return v; }

  constexpr Quantity operator+(Quantity o) const { return Quantity(v + o.v); }
  constexpr Quantity operator-(Quantity o) const { return Quantity(v - o.v); }
  constexpr Quantity operator*(double k) const { return Quantity(v * k); }
  constexpr Quantity operator/(double k) const { return Quantity(v / k); }
  constexpr double operator/(Quantity o) const { return v / o.v; }
  Quantity& operator+=(Quantity o) { v += o.v; return *this; }
  Quantity& operator-=(Quantity o) { v -= o.v; return *this; }
  constexpr auto operator<=>(const Quantity&) const = default;
};

template <class Tag>
constexpr Quantity<Tag> operator*(double k, Quantity<Tag> q) { return q * k; }

struct BytesTag { static constexpr const char* base_unit = "B"; };
struct SecondsTag { static constexpr const char* base_unit = "s"; };
struct FlopTag { static constexpr const char* base_unit = "FLOP"; };
struct FlopRateTag { static constexpr const char* base_unit = "FLOP/s"; };
struct BandwidthTag { static constexpr const char* base_unit = "B/s"; };
struct PowerTag { static constexpr const char* base_unit = "W"; };

using Bytes = Quantity<BytesTag>;          // a size in bytes
using Seconds = Quantity<SecondsTag>;      // a duration
using Flop = Quantity<FlopTag>;            // a count of floating-point operations
using FlopRate = Quantity<FlopRateTag>;    // FLOP per second
using Bandwidth = Quantity<BandwidthTag>;  // bytes per second
using Watts = Quantity<PowerTag>;          // power

constexpr Seconds operator/(Flop f, FlopRate r) { return Seconds(f.v / r.v); }
constexpr Seconds operator/(Bytes b, Bandwidth bw) { return Seconds(b.v / bw.v); }

// The dimensions a quantity string may carry; used by the parser to say what it wanted.
enum class Dimension { bytes, seconds, flop_rate, bandwidth, power };

const char* dimension_name(Dimension d);
// Units accepted for a dimension, for error messages ("GB/s, Gb/s, ...").
const char* accepted_units(Dimension d);

// Parses "<number> <unit>" (space optional) into a value in SI base units of `dim`.
// Decimal prefixes (k, M, G, T, P) are powers of 1000, binary prefixes (Ki, Mi, Gi, Ti)
// powers of 1024; a lower-case `b` in a rate means bits ("200 Gb/s" = 25e9 B/s).
// Returns false and fills `why` on a missing or wrong unit, a non-finite or
// unparsable number. Negative values parse; range checks belong to the caller.
bool parse_quantity(const std::string& text, Dimension dim, double& value_si,
                    std::string& why);

// Human-readable forms used by reports: "80.0 GiB", "3.35 TB/s", "989.4 TFLOP/s", "2.50 us".
std::string format_bytes(Bytes b);
std::string format_bandwidth(Bandwidth bw);
std::string format_flop_rate(FlopRate r);
std::string format_seconds(Seconds s);
// A long duration in human units: as format_seconds under an hour, hours under two
// days ("36.0 h"), days beyond ("41.3 days").
std::string format_long_duration(Seconds s);
std::string format_watts(Watts w);
// Scaled count with an SI suffix: 174.6e9 -> "174.60 B" (billions), 25.6e6 -> "25.56 M".
std::string format_count(double n);

}  // namespace orrery
