#pragma once
// Scenario validation collects every problem, each with file, line, column and field, so a user
// fixes them all in one pass. Nothing starts while any problem remains (exit code 2).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/text/units.hpp"

namespace lab::harness {

struct Diagnostic {
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based; 0 when unknown
  std::string field;
  std::string message;
};

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}
  void error(const YAML::Node& at, std::string field, std::string message);
  void error_at(int line, int column, std::string field, std::string message);
  bool ok() const { return items_.empty(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  const std::string& file() const { return file_; }
  /// "file:line:col: field: message" one per line.
  std::string format() const;

 private:
  std::string file_;
  std::vector<Diagnostic> items_;
};

/// Typed readers for one mapping node. Each reports a missing required key or a bad value to
/// the diagnostics with the full field path ("phases[1].duration") and returns nullopt.
class Fields {
 public:
  Fields(const YAML::Node& node, std::string path, Diagnostics& diag, double time_scale = 1.0)
      : node_(node), path_(std::move(path)), diag_(diag), time_scale_(time_scale) {}

  const YAML::Node& node() const { return node_; }
  std::string path(std::string_view key) const;
  Diagnostics& diag() const { return diag_; }
  double time_scale() const { return time_scale_; }
  bool has(std::string_view key) const;

  std::optional<std::string> string(std::string_view key, bool required);
  std::optional<double> number(std::string_view key, bool required, double min_value);
  std::optional<std::int64_t> integer(std::string_view key, bool required, std::int64_t min_value);
  std::optional<bool> boolean(std::string_view key, bool required);
  /// A duration; `scaled` multiplies it by the run's --time-scale.
  std::optional<std::chrono::nanoseconds> duration(std::string_view key, bool required, bool scaled);
  std::optional<units::DurationRange> duration_range(std::string_view key, bool required, bool scaled);
  std::optional<units::IntRange> int_range(std::string_view key, bool required);
  std::optional<double> rate(std::string_view key, bool required);
  /// Reports keys of this mapping that are not in `known` ("unknown field 'durration'").
  void reject_unknown(std::initializer_list<std::string_view> known);

 private:
  std::optional<YAML::Node> scalar(std::string_view key, bool required, std::string_view what);
  YAML::Node node_;
  std::string path_;
  Diagnostics& diag_;
  double time_scale_;
};

/// The node's "line:col" as text for messages.
std::string where(const YAML::Node& n);

}  // namespace lab::harness
