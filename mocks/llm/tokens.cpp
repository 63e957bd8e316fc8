#include "mocks/llm/tokens.hpp"

#include <array>

namespace lab::mocks::llm {

namespace {

constexpr std::array<std::string_view, 128> kWords = {
    " the",      " of",        " and",      " to",        " a",        " in",
    " is",       " that",      " for",      " it",        " as",       " with",
    " was",      " on",        " be",       " by",        " this",     " are",
    " from",     " at",        " or",       " an",        " which",    " can",
    " we",       " system",    " agent",    " model",     " request",  " response",
    " latency",  " token",     " stream",   " queue",     " worker",   " load",
    " time",     " data",      " result",   " value",     " server",   " client",
    " error",    " retry",     " limit",    " rate",      " test",     " run",
    " each",     " more",      " than",     " when",      " will",     " should",
    " would",    " could",     " may",      " also",      " then",     " because",
    " first",    " next",      " last",     " every",     " some",     " many",
    " simple",   " large",     " small",    " fast",      " slow",     " stable",
    " careful",  " clear",     " short",    " long",      " new",      " old",
    " good",     " better",    " best",     " same",      " other",    " all",
    " answer",   " question",  " context",  " message",   " tool",     " call",
    " plan",     " step",      " task",     " user",      " state",    " store",
    " batch",    " prefill",   " decode",   " cache",     " memory",   " network",
    " measure",  " percentile"," median",   " budget",    " target",   " window",
    " check",    " write",     " read",     " send",      " wait",     " start",
    " finish",   " build",     " keep",     " show",      " find",     " make",
    " here",     " there",     " now",      " again",     " only",     " still",
    " very",     " quite",
};

}  // namespace

std::span<const std::string_view> vocabulary() { return kWords; }

std::string_view TokenGenerator::next() {
  if (until_period_ < 0) until_period_ = 8 + static_cast<int>(rng_.below(13));
  if (!first_ && until_period_ == 0) {
    until_period_ = -1;
    return rng_.chance(0.3) ? std::string_view(",") : std::string_view(".");
  }
  --until_period_;
  std::string_view word = kWords[rng_.below(kWords.size())];
  if (first_) word.remove_prefix(1);  // a response does not start with a space
  first_ = false;
  return word;
}

std::string generate_text(std::uint64_t seed, int count) {
  TokenGenerator generator(seed);
  std::string text;
  text.reserve(static_cast<std::size_t>(count) * 7);
  for (int i = 0; i < count; ++i) {
    text.append(generator.next());
  }
  return text;
}

int estimate_tokens(std::string_view text) {
  if (text.empty()) return 0;
  return static_cast<int>((text.size() + 3) / 4);
}

}  // namespace lab::mocks::llm
