#pragma once
// Deterministic output text. Tokens come from a fixed English vocabulary whose entries need no
// JSON escaping (no quotes, backslashes or control characters), so the wire renderers can paste
// them straight into pre-rendered chunk templates.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "mocks/llm/rng.hpp"

namespace lab::mocks::llm {

/// The vocabulary (each entry starts with a space except punctuation). Stable across releases:
/// changing it changes every seeded output.
std::span<const std::string_view> vocabulary();

/// Yields the tokens of one response: words, with "." or "," every 8–20 words. The first token
/// is a word without its leading space. Not thread-safe; one per stream.
class TokenGenerator {
 public:
  explicit TokenGenerator(std::uint64_t seed) : rng_(seed) {}
  /// The next token (a view into static storage).
  std::string_view next();

 private:
  Rng rng_;
  int until_period_ = -1;
  bool first_ = true;
};

/// Concatenates `count` tokens from a generator seeded with `seed`: the same text a stream with
/// that seed sends (for non-streaming bodies and tests).
std::string generate_text(std::uint64_t seed, int count);

/// Rough token count of text: ceil(bytes / 4), at least 1 for non-empty text (OpenAI's rule of
/// thumb for English).
int estimate_tokens(std::string_view text);

}  // namespace lab::mocks::llm
