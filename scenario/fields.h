// A section's field table: one row per key the section accepts, saying how its value is
// read (kind, unit, range) and where it goes (a member of the section's spec, or a
// hand-written reader for nested sections, lists and keys that depend on each other).
// The table is the only place a key is spelt: the section's accepted keys (unknown-key
// errors, their did-you-mean hints, presets, scenario_keys()) are its rows in order, and
// the reader reads the rows in order. Private to the scenario component.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/units.h"
#include "scenario/names.h"
#include "scenario/yaml_reader.h"

namespace orrery::detail {

// Where each value read came from: "cluster.gpu.memory" -> file and line.
using Origin = std::map<std::string, InputLocation>;

// Reads `key` from `r` into `spec` when present; records in `origin` what it read.
template <class Spec>
using ReadFn =
    std::function<void(MapReader& r, const std::string& key, Origin* origin, Spec& spec)>;

template <class Spec>
struct Field {
  using Read = ReadFn<Spec>;
  std::string key;
  Read read;
  // Rows are read in increasing `late` (most tables use 0 and true, i.e. 1), in table
  // order among equals: the order in which the reader meets errors differs from the
  // order the keys are listed in.
  int late = 0;
  // Set for a key that only some settings of the section use: the error for giving it
  // where `spec` does not use it, "" where it does (refuse_misplaced).
  std::function<std::string(const Spec& spec)> misplaced = nullptr;
  // Set for a key that only some settings of the section require: true where `spec`
  // needs it (refuse_missing).
  std::function<bool(const Spec& spec)> needed = nullptr;
};

template <class Spec>
using FieldTable = std::vector<Field<Spec>>;

// The keys a table accepts, in its order.
template <class Spec>
std::vector<std::string> keys_of(const FieldTable<Spec>& table) {
  std::vector<std::string> keys;
  for (const auto& f : table) keys.push_back(f.key);
  return keys;
}

// Reads the rows of `table` from the `first`th on, present in `r`, into `spec`, in
// increasing `late`.
template <class Spec>
void read_fields(MapReader& r, Origin* origin, const FieldTable<Spec>& table, Spec& spec,
                 std::size_t first = 0) {
  int last = 0;
  for (const auto& f : table) last = std::max(last, f.late);
  for (int late = 0; late <= last; ++late)
    for (std::size_t i = first; i < table.size(); ++i)
      if (table[i].late == late) table[i].read(r, table[i].key, origin, spec);
}

// Fails at the first row given in `r` that `spec` (the section's settings read so far)
// does not use, the rows taken in table order or, with `by_name`, in order of their keys.
template <class Spec>
void refuse_misplaced(const MapReader& r, const FieldTable<Spec>& table, const Spec& spec,
                      bool by_name = false) {
  std::vector<const Field<Spec>*> rows;
  for (const auto& f : table) rows.push_back(&f);
  if (by_name) {
    std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->key < b->key; });
  }
  for (const Field<Spec>* f : rows) {
    if (!f->misplaced || !r.has(f->key)) continue;
    if (const std::string why = f->misplaced(spec); !why.empty()) r.fail(f->key, why);
  }
}

// Fails ("missing key") at the first row, in table order, that `spec` (the section's
// settings read so far) needs and `r` lacks.
template <class Spec>
void refuse_missing(const MapReader& r, const FieldTable<Spec>& table, const Spec& spec) {
  for (const auto& f : table) {
    if (f.needed && f.needed(spec) && !r.has(f.key)) {
      throw InputError(r.where(), r.key_path(f.key), "", "missing key");
    }
  }
}

// Reads a section whose first row (a scheme, a kind) decides which of the others may or
// must be given: that row is read, the others are refused where misplaced (see
// refuse_misplaced for `by_name`) or missing, then the rest are read as read_fields does.
template <class Spec>
void read_keyed_by_first(MapReader& r, Origin* origin, const FieldTable<Spec>& table, Spec& spec,
                         bool by_name) {
  table.front().read(r, table.front().key, origin, spec);
  refuse_misplaced(r, table, spec, by_name);
  refuse_missing(r, table, spec);
  read_fields(r, origin, table, spec, 1);
}

// How a row's value is read. Each returns a Field::Read for a member `m` of the spec; a
// std::optional member is set only when the key is present.
namespace field {

template <class T>
struct Unwrap {
  using type = T;
};
template <class T>
struct Unwrap<std::optional<T>> {
  using type = T;
};
template <class M>
using ValueOf = typename Unwrap<M>::type;

// Reads a value of the member's type with `read_as(r, key, value)` (false: absent) and
// stores it.
template <class Spec, class M, class ReadAs>
typename Field<Spec>::Read into(M Spec::*m, ReadAs read_as) {
  return [m, read_as](MapReader& r, const std::string& key, Origin*, Spec& s) {
    ValueOf<M> v{};
    if (read_as(r, key, v)) s.*m = v;
  };
}

// A whole number in [lo, hi].
template <class Spec, class M>
requires std::integral<ValueOf<M>>
typename Field<Spec>::Read whole(M Spec::*m, std::type_identity_t<ValueOf<M>> lo,
                                 std::type_identity_t<ValueOf<M>> hi) {
  return into(m, [lo, hi](MapReader& r, const std::string& key, ValueOf<M>& v) {
    return r.read_int(key, lo, hi, v);
  });
}

// A number without a unit in [lo, hi].
template <class Spec, class M>
requires std::same_as < ValueOf<M>,
double > typename Field<Spec>::Read number(M Spec::*m, double lo, double hi) {
  return into(m, [lo, hi](MapReader& r, const std::string& key, double& v) {
    return r.read_double(key, lo, hi, v);
  });
}

// A quantity with a unit of `dim`, in [lo, hi] SI units.
template <class Spec, class M>
typename Field<Spec>::Read quantity(M Spec::*m, Dimension dim, double lo, double hi) {
  return into(m, [dim, lo, hi](MapReader& r, const std::string& key, ValueOf<M>& v) {
    return r.read_quantity(key, dim, lo, hi, v);
  });
}

// true or false.
template <class Spec, class M>
requires std::same_as < ValueOf<M>,
bool > typename Field<Spec>::Read flag(M Spec::*m) {
  return into(m, [](MapReader& r, const std::string& key, bool& v) { return r.read_bool(key, v); });
}

// Any text.
template <class Spec>
typename Field<Spec>::Read text(std::string Spec::*m) {
  return into(m, [](MapReader& r, const std::string& key, std::string& v) {
    return r.read_string(key, v);
  });
}

// One of the enum's names (scenario/names.h).
template <class Spec, class M>
requires std::is_enum_v<ValueOf<M>>
typename Field<Spec>::Read choice(M Spec::*m) {
  return into(m, [](MapReader& r, const std::string& key, ValueOf<M>& v) {
    return r.read_enum(key, names_of<ValueOf<M>>(), v);
  });
}

// One of `names`, for a value that is not an enum's whole table.
template <class Spec, class M>
typename Field<Spec>::Read choice(M Spec::*m,
                                  std::vector<std::pair<std::string, ValueOf<M>>> names) {
  return into(m, [names = std::move(names)](MapReader& r, const std::string& key, ValueOf<M>& v) {
    return r.read_enum(key, names, v);
  });
}

// `read`, but an absent key is an error at the section ("missing key").
template <class Spec>
ReadFn<Spec> required(ReadFn<Spec> read) {
  return [read = std::move(read)](MapReader& r, const std::string& key, Origin* origin, Spec& s) {
    if (!r.has(key)) throw InputError(r.where(), r.key_path(key), "", "missing key");
    read(r, key, origin, s);
  };
}

// A nested mapping read with `table` into the member `m` (created when an absent
// std::optional); with `mark`, the nested section's own key records where it was written.
template <class Spec, class M>
ReadFn<Spec> nested(M Spec::*m, const FieldTable<ValueOf<M>>& (*table)(), bool mark) {
  return [m, table, mark](MapReader& r, const std::string& key, Origin* origin, Spec& s) {
    if (!r.has(key)) return;
    ValueOf<M>* sub = nullptr;
    if constexpr (std::is_same_v<M, ValueOf<M>>) {
      sub = &(s.*m);
    } else {
      if (!(s.*m)) s.*m = ValueOf<M>{};
      sub = &*(s.*m);
    }
    MapReader nr(r.node(key), r.file(), r.key_path(key), keys_of(table()), origin);
    read_fields(nr, origin, table(), *sub);
    if (mark) r.mark(key);
  };
}
// The same for a nested mapping whose keys are settings of the spec itself.
template <class Spec>
ReadFn<Spec> nested(const FieldTable<Spec>& (*table)(), bool mark) {
  return [table, mark](MapReader& r, const std::string& key, Origin* origin, Spec& s) {
    if (!r.has(key)) return;
    MapReader nr(r.node(key), r.file(), r.key_path(key), keys_of(table()), origin);
    read_fields(nr, origin, table(), s);
    if (mark) r.mark(key);
  };
}

// A key read by the caller before the table (a section's `preset:`, apply_section).
template <class Spec>
typename Field<Spec>::Read by_caller() {
  return [](MapReader&, const std::string&, Origin*, Spec&) {};
}

}  // namespace field
}  // namespace orrery::detail
