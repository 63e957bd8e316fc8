#pragma once
// Templates in scenario strings: "a-${user.id}", "/api/stream/${task}". Compiled once at load
// time into literal and variable parts, rendered per request with no parsing.
//
// Variables: user.id, user.token, vu, iter, uuid, prompt, env.NAME (resolved at load time), and
// any name captured by an earlier step (setup captures are per user, flow captures per iteration).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lab::harness {

enum class VarKind { kUserId, kUserToken, kVu, kIter, kUuid, kPrompt, kCaptured };

struct TemplatePart {
  bool literal = true;
  std::string text;  ///< the literal text, or the captured variable's name
  VarKind kind = VarKind::kCaptured;
};

/// How substituted values are written: as-is, or escaped for the inside of a JSON string.
enum class Escape { kNone, kJsonString };

class Template {
 public:
  Template() = default;
  /// Compiles `text`. On a syntax error ("${" without "}", empty name) returns nullopt and sets
  /// `error`. env.NAME is resolved now (unset → error).
  static std::optional<Template> compile(std::string_view text, Escape escape, std::string* error);
  /// A template with no variables.
  static Template literal(std::string text);

  const std::vector<TemplatePart>& parts() const { return parts_; }
  bool is_literal() const { return parts_.size() <= 1 && (parts_.empty() || parts_[0].literal); }
  Escape escape() const { return escape_; }
  /// Captured variable names this template reads.
  std::vector<std::string> captured_names() const;

 private:
  std::vector<TemplatePart> parts_;
  Escape escape_ = Escape::kNone;
};

/// What a template is rendered against. Captured values are looked up iteration first, then user.
struct TemplateContext {
  std::string_view user_id;
  std::string_view user_token;
  std::int64_t vu = 0;
  std::int64_t iter = 0;
  const std::vector<std::pair<std::string, std::string>>* user_vars = nullptr;
  const std::vector<std::pair<std::string, std::string>>* iter_vars = nullptr;
  /// Called for ${uuid} and ${prompt}, which are fresh per use.
  std::string (*uuid)(void* state) = nullptr;
  std::string_view (*prompt)(void* state) = nullptr;
  void* state = nullptr;
};

/// Renders into `out` (cleared first). Returns the name of the first unset captured variable, if
/// any (the output is then incomplete and must not be sent).
std::optional<std::string> render(const Template& t, const TemplateContext& ctx, std::string& out);

}  // namespace lab::harness
