#include "harness/scenario/diagnostics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace lab::harness {

void Diagnostics::error(const YAML::Node& at, std::string field, std::string message) {
  int line = 0, column = 0;
  if (at.IsDefined()) {
    auto mark = at.Mark();
    if (!mark.is_null()) {
      line = mark.line + 1;
      column = mark.column + 1;
    }
  }
  error_at(line, column, std::move(field), std::move(message));
}

void Diagnostics::error_at(int line, int column, std::string field, std::string message) {
  items_.push_back(Diagnostic{file_, line, column, std::move(field), std::move(message)});
}

std::string Diagnostics::format() const {
  std::ostringstream os;
  for (const auto& d : items_) {
    os << d.file;
    if (d.line > 0) os << ':' << d.line << ':' << d.column;
    os << ": ";
    if (!d.field.empty()) os << d.field << ": ";
    os << d.message << '\n';
  }
  return os.str();
}

std::string where(const YAML::Node& n) {
  auto m = n.Mark();
  if (m.is_null()) return "?";
  return std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string Fields::path(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

bool Fields::has(std::string_view key) const {
  const YAML::Node& n = node_;  // const: a non-const operator[] would insert the key
  return n.IsMap() && n[std::string(key)].IsDefined() && !n[std::string(key)].IsNull();
}

std::optional<YAML::Node> Fields::scalar(std::string_view key, bool required, std::string_view what) {
  const YAML::Node& n = node_;  // const: a non-const operator[] would insert the key
  if (!n.IsMap()) return std::nullopt;
  YAML::Node v = n[std::string(key)];
  if (!v.IsDefined() || v.IsNull()) {
    if (required) diag_.error(node_, path(key), "missing (" + std::string(what) + " required)");
    return std::nullopt;
  }
  if (!v.IsScalar()) {
    diag_.error(v, path(key), "expected " + std::string(what) + ", got a " +
                                  (v.IsMap() ? "mapping" : "list"));
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> Fields::string(std::string_view key, bool required) {
  auto v = scalar(key, required, "a string");
  if (!v) return std::nullopt;
  return v->Scalar();
}

std::optional<double> Fields::number(std::string_view key, bool required, double min_value) {
  auto v = scalar(key, required, "a number");
  if (!v) return std::nullopt;
  const std::string& s = v->Scalar();
  double d = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(d)) {
    diag_.error(*v, path(key), "'" + s + "' is not a number");
    return std::nullopt;
  }
  if (d < min_value) {
    diag_.error(*v, path(key), "'" + s + "' is below the minimum " + std::to_string(min_value));
    return std::nullopt;
  }
  return d;
}

std::optional<std::int64_t> Fields::integer(std::string_view key, bool required, std::int64_t min_value) {
  auto v = scalar(key, required, "an integer");
  if (!v) return std::nullopt;
  const std::string& s = v->Scalar();
  std::int64_t i = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    diag_.error(*v, path(key), "'" + s + "' is not an integer");
    return std::nullopt;
  }
  if (i < min_value) {
    diag_.error(*v, path(key), "'" + s + "' is below the minimum " + std::to_string(min_value));
    return std::nullopt;
  }
  return i;
}

std::optional<bool> Fields::boolean(std::string_view key, bool required) {
  auto v = scalar(key, required, "true or false");
  if (!v) return std::nullopt;
  const std::string& s = v->Scalar();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  diag_.error(*v, path(key), "'" + s + "' is not true or false");
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> Fields::duration(std::string_view key, bool required, bool scaled) {
  auto v = scalar(key, required, "a duration like 30s or 250ms");
  if (!v) return std::nullopt;
  auto d = units::parse_duration(v->Scalar());
  if (!d) {
    diag_.error(*v, path(key), "'" + v->Scalar() + "' is not a duration (e.g. 250ms, 30s, 5m, 1h)");
    return std::nullopt;
  }
  if (scaled)
    d = std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(static_cast<double>(d->count()) * time_scale_)));
  return d;
}

std::optional<units::DurationRange> Fields::duration_range(std::string_view key, bool required, bool scaled) {
  auto v = scalar(key, required, "a duration or range like 1s..3s");
  if (!v) return std::nullopt;
  auto r = units::parse_duration_range(v->Scalar());
  if (!r) {
    diag_.error(*v, path(key), "'" + v->Scalar() + "' is not a duration or a range lo..hi (e.g. 1s..3s)");
    return std::nullopt;
  }
  if (scaled) {
    auto scale = [&](std::chrono::nanoseconds d) {
      return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(static_cast<double>(d.count()) * time_scale_)));
    };
    r->lo = scale(r->lo);
    r->hi = scale(r->hi);
  }
  return r;
}

std::optional<units::IntRange> Fields::int_range(std::string_view key, bool required) {
  auto v = scalar(key, required, "an integer or range like 50..200");
  if (!v) return std::nullopt;
  auto r = units::parse_int_range(v->Scalar());
  if (!r) {
    diag_.error(*v, path(key), "'" + v->Scalar() + "' is not an integer or a range lo..hi (e.g. 50..200)");
    return std::nullopt;
  }
  return r;
}

std::optional<double> Fields::rate(std::string_view key, bool required) {
  auto v = scalar(key, required, "a rate like 500 or 500/s");
  if (!v) return std::nullopt;
  auto r = units::parse_rate_per_second(v->Scalar());
  if (!r) {
    diag_.error(*v, path(key), "'" + v->Scalar() + "' is not a positive rate (e.g. 500, 500/s, 30/m)");
    return std::nullopt;
  }
  return r;
}

void Fields::reject_unknown(std::initializer_list<std::string_view> known) {
  if (!node_.IsMap()) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      diag_.error(it->first, path(key), "unknown field (known: " + list + ")");
    }
  }
}

}  // namespace lab::harness
