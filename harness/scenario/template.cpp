#include "harness/scenario/template.hpp"

#include <cstdlib>

#include "common/text/json_util.hpp"

namespace lab::harness {

std::optional<Template> Template::compile(std::string_view text, Escape escape, std::string* error) {
  Template t;
  t.escape_ = escape;
  std::string literal;
  std::size_t i = 0;
  auto flush = [&] {
    if (!literal.empty()) t.parts_.push_back(TemplatePart{true, std::move(literal), VarKind::kCaptured});
    literal.clear();
  };
  while (i < text.size()) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      auto close = text.find('}', i + 2);
      if (close == std::string_view::npos) {
        if (error) *error = "unterminated '${' in \"" + std::string(text) + "\"";
        return std::nullopt;
      }
      std::string_view name = text.substr(i + 2, close - i - 2);
      while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
      while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
      if (name.empty()) {
        if (error) *error = "empty '${}' in \"" + std::string(text) + "\"";
        return std::nullopt;
      }
      if (name.starts_with("env.")) {
        std::string var(name.substr(4));
        const char* value = std::getenv(var.c_str());
        if (!value) {
          if (error) *error = "environment variable " + var + " is not set";
          return std::nullopt;
        }
        // Environment values are substituted now, escaped as the template requires.
        if (escape == Escape::kJsonString) json::append_escaped(literal, value);
        else literal += value;
      } else {
        flush();
        TemplatePart part{false, std::string(name), VarKind::kCaptured};
        if (name == "user.id") part.kind = VarKind::kUserId;
        else if (name == "user.token") part.kind = VarKind::kUserToken;
        else if (name == "vu") part.kind = VarKind::kVu;
        else if (name == "iter") part.kind = VarKind::kIter;
        else if (name == "uuid") part.kind = VarKind::kUuid;
        else if (name == "prompt") part.kind = VarKind::kPrompt;
        else if (name.find_first_of(" .${") != std::string_view::npos) {
          if (error) *error = "unknown variable '${" + std::string(name) + "}'";
          return std::nullopt;
        }
        t.parts_.push_back(std::move(part));
      }
      i = close + 1;
    } else {
      literal += text[i++];
    }
  }
  flush();
  return t;
}

Template Template::literal(std::string text) {
  Template t;
  if (!text.empty()) t.parts_.push_back(TemplatePart{true, std::move(text), VarKind::kCaptured});
  return t;
}

std::vector<std::string> Template::captured_names() const {
  std::vector<std::string> names;
  for (const auto& p : parts_)
    if (!p.literal && p.kind == VarKind::kCaptured) names.push_back(p.text);
  return names;
}

namespace {
const std::string* find_var(const std::vector<std::pair<std::string, std::string>>* vars,
                            const std::string& name) {
  if (!vars) return nullptr;
  // Newest first, so a re-captured name wins.
  for (auto it = vars->rbegin(); it != vars->rend(); ++it)
    if (it->first == name) return &it->second;
  return nullptr;
}
}  // namespace

std::optional<std::string> render(const Template& t, const TemplateContext& ctx, std::string& out) {
  out.clear();
  auto put = [&](std::string_view v) {
    if (t.escape() == Escape::kJsonString) json::append_escaped(out, v);
    else out.append(v);
  };
  for (const auto& p : t.parts()) {
    if (p.literal) {
      out += p.text;
      continue;
    }
    switch (p.kind) {
      case VarKind::kUserId: put(ctx.user_id); break;
      case VarKind::kUserToken: put(ctx.user_token); break;
      case VarKind::kVu: out += std::to_string(ctx.vu); break;
      case VarKind::kIter: out += std::to_string(ctx.iter); break;
      case VarKind::kUuid: out += ctx.uuid ? ctx.uuid(ctx.state) : std::string(); break;
      case VarKind::kPrompt: put(ctx.prompt ? ctx.prompt(ctx.state) : std::string_view()); break;
      case VarKind::kCaptured: {
        const std::string* v = find_var(ctx.iter_vars, p.text);
        if (!v) v = find_var(ctx.user_vars, p.text);
        if (!v) return p.text;
        put(*v);
        break;
      }
    }
  }
  return std::nullopt;
}

}  // namespace lab::harness
