#include "mocks/llm/tokens.hpp"

#include <string>

#include <gtest/gtest.h>

namespace lab::mocks::llm {
namespace {

TEST(Vocabulary, NeedsNoJsonEscaping) {
  for (std::string_view word : vocabulary()) {
    ASSERT_FALSE(word.empty());
    for (char c : word) {
      EXPECT_NE(c, '"') << word;
      EXPECT_NE(c, '\\') << word;
      EXPECT_GE(static_cast<unsigned char>(c), 0x20) << word;
    }
  }
}

TEST(TokenGenerator, SameSeedSameTokensOtherSeedOtherTokens) {
  TokenGenerator a(5);
  TokenGenerator b(5);
  TokenGenerator c(6);
  std::string ta;
  std::string tc;
  for (int i = 0; i < 200; ++i) {
    const std::string_view x = a.next();
    EXPECT_EQ(x, b.next());
    ta += x;
    tc += c.next();
  }
  EXPECT_NE(ta, tc);
}

TEST(TokenGenerator, FirstTokenHasNoLeadingSpaceAndSentencesEnd) {
  TokenGenerator g(11);
  const std::string_view first = g.next();
  EXPECT_NE(first.front(), ' ');
  int punctuation = 0;
  for (int i = 0; i < 100; ++i) {
    const std::string_view t = g.next();
    if (t == "." || t == ",") ++punctuation;
  }
  EXPECT_GE(punctuation, 4);   // one every 8–20 words
  EXPECT_LE(punctuation, 13);
}

TEST(GenerateText, EqualsTheStreamedTokensConcatenated) {
  TokenGenerator g(77);
  std::string streamed;
  for (int i = 0; i < 40; ++i) streamed += g.next();
  EXPECT_EQ(generate_text(77, 40), streamed);
}

TEST(EstimateTokens, QuarterOfTheBytesRoundedUp) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens("a"), 1);
  EXPECT_EQ(estimate_tokens("abcd"), 1);
  EXPECT_EQ(estimate_tokens("abcde"), 2);
  EXPECT_EQ(estimate_tokens(std::string(1000, 'x')), 250);
}

}  // namespace
}  // namespace lab::mocks::llm
