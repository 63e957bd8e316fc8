#include "common/jwt/jwt.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace lab::jwt {
namespace {

// The example on jwt.io: header {"alg":"HS256","typ":"JWT"}, payload
// {"sub":"1234567890","name":"John Doe","iat":1516239022}, secret "your-256-bit-secret".
constexpr std::string_view kJwtIoToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
constexpr std::string_view kJwtIoSecret = "your-256-bit-secret";

// Computed independently with the openssl CLI:
//   H=base64url('{"alg":"HS256","typ":"JWT"}'), P=base64url('{"sub":"user-42","exp":1700003600,
//   "iat":1700000000}'), S=base64url(openssl dgst -sha256 -hmac lab-secret -binary of "H.P").
constexpr std::string_view kLabToken =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJzdWIiOiJ1c2VyLTQyIiwiZXhwIjoxNzAwMDAzNjAwLCJpYXQiOjE3MDAwMDAwMDB9."
    "3dRJL7XFVoPnLTWOvFt4ct6EaNVBewVQT2nG7bELf5o";
constexpr std::string_view kLabSecret = "lab-secret";
constexpr std::int64_t kNow = 1'700'000'100;

std::string segment(std::string_view token, int index) {
  std::size_t start = 0;
  for (int i = 0; i < index; ++i) start = token.find('.', start) + 1;
  const std::size_t end = token.find('.', start);
  return std::string(token.substr(start, end == std::string_view::npos ? token.npos : end - start));
}

VerifyError error_of(std::string_view token, std::string_view secret = kLabSecret) {
  const VerifyResult r = verify_hs256(token, secret, kNow);
  EXPECT_FALSE(r.claims.has_value());
  EXPECT_TRUE(r.error.has_value());
  return r.error.value_or(VerifyError::kMalformed);
}

// A token with any header and payload JSON, signed here with OpenSSL's HMAC directly, to reach
// the checks that come after the signature.
std::string forge(std::string_view header_json, std::string_view payload_json,
                  std::string_view secret) {
  const std::string input = base64url_encode(header_json) + "." + base64url_encode(payload_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

TEST(Base64Url, EncodesRfc4648Vectors) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64url_encode(std::string("\xfb\xff\xbf", 3)), "-_-_");  // url alphabet
}

TEST(Base64Url, DecodesAndRoundTripsAllBytes) {
  EXPECT_EQ(base64url_decode("Zm9vYmE"), "fooba");
  EXPECT_EQ(base64url_decode("-_-_"), std::string("\xfb\xff\xbf", 3));
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n <= all.size(); n += 37) {
    const std::string bytes = all.substr(0, n);
    EXPECT_EQ(base64url_decode(base64url_encode(bytes)), bytes) << n;
  }
}

TEST(Base64Url, RejectsBadInput) {
  EXPECT_FALSE(base64url_decode("Zg==").has_value());  // padding is not used
  EXPECT_FALSE(base64url_decode("+/+/").has_value());  // standard alphabet
  EXPECT_FALSE(base64url_decode("Zm9v Yg").has_value());
  EXPECT_FALSE(base64url_decode("Zm9vY").has_value());  // 4n+1 characters
  EXPECT_FALSE(base64url_decode("Zh").has_value());     // non-zero leftover bits
}

TEST(Jwt, AcceptsTheJwtIoExample) {
  const VerifyResult r = verify_hs256(kJwtIoToken, kJwtIoSecret, kNow);
  ASSERT_TRUE(r.claims.has_value()) << to_string(r.error.value_or(VerifyError::kMalformed));
  EXPECT_FALSE(r.error.has_value());
  EXPECT_EQ(r.claims->sub, "1234567890");
  EXPECT_EQ(r.claims->iat, 1516239022);
  EXPECT_FALSE(r.claims->exp.has_value());
}

TEST(Jwt, SignMatchesIndependentlyComputedToken) {
  const Claims claims{"user-42", 1'700'003'600, 1'700'000'000};
  EXPECT_EQ(sign_hs256(claims, kLabSecret), kLabToken);
  // The header segment is byte-for-byte the one jwt.io uses.
  EXPECT_EQ(segment(sign_hs256(claims, kLabSecret), 0), segment(kJwtIoToken, 0));
}

TEST(Jwt, SignThenVerifyRoundTrips) {
  const Claims claims{"agent-user-7", kNow + 60, kNow};
  const std::string token = sign_hs256(claims, "s3cret");
  const VerifyResult r = verify_hs256(token, "s3cret", kNow);
  ASSERT_TRUE(r.claims.has_value());
  EXPECT_EQ(r.claims->sub, "agent-user-7");
  EXPECT_EQ(r.claims->exp, kNow + 60);
  EXPECT_EQ(r.claims->iat, kNow);

  // Without exp and iat, and with an empty secret.
  const VerifyResult bare = verify_hs256(sign_hs256(Claims{"u", {}, {}}, ""), "", kNow);
  ASSERT_TRUE(bare.claims.has_value());
  EXPECT_FALSE(bare.claims->exp.has_value());
  EXPECT_FALSE(bare.claims->iat.has_value());
  EXPECT_EQ(error_of(sign_hs256(Claims{"u", {}, {}}, ""), "x"), VerifyError::kBadSignature);
}

TEST(Jwt, TamperedPayloadIsBadSignature) {
  const std::string other_payload = base64url_encode(R"({"sub":"admin","exp":1700003600})");
  const std::string tampered =
      segment(kLabToken, 0) + "." + other_payload + "." + segment(kLabToken, 2);
  EXPECT_EQ(error_of(tampered), VerifyError::kBadSignature);

  // One flipped character of the signature.
  std::string flipped(kLabToken);
  flipped[flipped.size() - 3] = flipped[flipped.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_EQ(error_of(flipped), VerifyError::kBadSignature);

  // A signature of the wrong length (still valid base64url), and an empty one.
  const std::string mac = base64url_decode(segment(kLabToken, 2)).value();
  const std::string prefix = segment(kLabToken, 0) + "." + segment(kLabToken, 1) + ".";
  EXPECT_EQ(error_of(prefix + base64url_encode(mac.substr(0, 31))), VerifyError::kBadSignature);
  EXPECT_EQ(error_of(prefix + base64url_encode(mac + "x")), VerifyError::kBadSignature);
  EXPECT_EQ(error_of(prefix), VerifyError::kBadSignature);
}

TEST(Jwt, WrongSecretIsBadSignature) {
  EXPECT_EQ(error_of(kLabToken, "lab-secreT"), VerifyError::kBadSignature);
  EXPECT_EQ(error_of(kJwtIoToken, "not-the-secret"), VerifyError::kBadSignature);
}

TEST(Jwt, OtherAlgorithmsAreRefused) {
  const std::string payload = R"({"sub":"user-42"})";
  // The classic "alg":"none" token has an empty signature segment.
  EXPECT_EQ(error_of(base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
                     base64url_encode(payload) + "."),
            VerifyError::kBadAlgorithm);
  EXPECT_EQ(error_of(forge(R"({"alg":"none","typ":"JWT"})", payload, kLabSecret)),
            VerifyError::kBadAlgorithm);
  // RS256 with the HS256 signature of the same input still fails on alg, not signature.
  const std::string rs256 = base64url_encode(R"({"alg":"RS256","typ":"JWT"})") + "." +
                            segment(kLabToken, 1) + "." + segment(kLabToken, 2);
  EXPECT_EQ(error_of(rs256), VerifyError::kBadAlgorithm);
  EXPECT_EQ(error_of(forge(R"({"typ":"JWT"})", payload, "")), VerifyError::kBadAlgorithm);
  EXPECT_EQ(error_of(forge(R"({"alg":"hs256"})", payload, "")), VerifyError::kBadAlgorithm);
  EXPECT_EQ(error_of(forge(R"({"alg":["HS256"]})", payload, "")), VerifyError::kBadAlgorithm);
}

TEST(Jwt, ExpiredAtAndAfterExp) {
  const std::string token = sign_hs256(Claims{"u", kNow + 10, {}}, kLabSecret);
  EXPECT_TRUE(verify_hs256(token, kLabSecret, kNow + 9).claims.has_value());
  EXPECT_EQ(verify_hs256(token, kLabSecret, kNow + 10).error, VerifyError::kExpired);
  EXPECT_EQ(verify_hs256(token, kLabSecret, kNow + 3600).error, VerifyError::kExpired);
  // kLabToken expires at 1700003600.
  EXPECT_EQ(verify_hs256(kLabToken, kLabSecret, 1'700'003'600).error, VerifyError::kExpired);
  EXPECT_TRUE(verify_hs256(kLabToken, kLabSecret, 1'700'003'599).claims.has_value());
}

TEST(Jwt, MissingOrEmptySubjectIsRefused) {
  EXPECT_EQ(error_of(sign_hs256(Claims{"", kNow + 60, kNow}, kLabSecret)), VerifyError::kNoSubject);
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  EXPECT_EQ(error_of(forge(header, R"({"iat":1700000000})", kLabSecret)), VerifyError::kNoSubject);
  EXPECT_EQ(error_of(forge(header, "{}", kLabSecret)), VerifyError::kNoSubject);
  // Expiry is checked before the subject.
  EXPECT_EQ(error_of(forge(header, R"({"exp":1})", kLabSecret)), VerifyError::kExpired);
  // The openssl-CLI-signed {"sub":"user-42"} (no exp, no iat) is fine.
  const VerifyResult ok = verify_hs256(
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIn0."
      "PMpPb6ZTDT3ft_skrRBkSW_QuYlR3uUaNUcsFCwZYwI",
      kLabSecret, kNow);
  ASSERT_TRUE(ok.claims.has_value());
  EXPECT_EQ(ok.claims->sub, "user-42");
  // forge() agrees with the CLI, so the cases above are signed correctly.
  EXPECT_EQ(forge(header, R"({"sub":"user-42"})", kLabSecret),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTQyIn0."
            "PMpPb6ZTDT3ft_skrRBkSW_QuYlR3uUaNUcsFCwZYwI");
}

TEST(Jwt, SignedButMalformedPayloadIsRefused) {
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  EXPECT_EQ(error_of(forge(header, "not json", kLabSecret)), VerifyError::kMalformed);
  EXPECT_EQ(error_of(forge(header, R"(["sub"])", kLabSecret)), VerifyError::kMalformed);
  EXPECT_EQ(error_of(forge(header, R"({"sub":42})", kLabSecret)), VerifyError::kMalformed);
  EXPECT_EQ(error_of(forge(header, R"({"sub":"u","exp":"tomorrow"})", kLabSecret)),
            VerifyError::kMalformed);
  EXPECT_EQ(error_of(forge(header, R"({"sub":"u","exp":1.7e9})", kLabSecret)),
            VerifyError::kMalformed);
  EXPECT_EQ(error_of(forge(header, R"({"sub":"u","iat":18446744073709551615})", kLabSecret)),
            VerifyError::kMalformed);
  // Unknown claims are ignored.
  const VerifyResult ok =
      verify_hs256(forge(header, R"({"sub":"u","role":"admin","exp":1800000000})", kLabSecret),
                   kLabSecret, kNow);
  ASSERT_TRUE(ok.claims.has_value());
  EXPECT_EQ(ok.claims->exp, 1'800'000'000);
}

TEST(Jwt, MalformedTokensAreRefused) {
  EXPECT_EQ(error_of(""), VerifyError::kMalformed);
  EXPECT_EQ(error_of("abc"), VerifyError::kMalformed);                      // one segment
  EXPECT_EQ(error_of(segment(kLabToken, 0) + "." + segment(kLabToken, 1)),  // two segments
            VerifyError::kMalformed);
  EXPECT_EQ(error_of(std::string(kLabToken) + ".x"), VerifyError::kMalformed);  // four segments
  EXPECT_EQ(error_of("e$$." + segment(kLabToken, 1) + "." + segment(kLabToken, 2)),
            VerifyError::kMalformed);  // bad base64 header
  EXPECT_EQ(error_of(segment(kLabToken, 0) + ".a=b." + segment(kLabToken, 2)),
            VerifyError::kMalformed);  // bad base64 payload
  EXPECT_EQ(error_of(segment(kLabToken, 0) + "." + segment(kLabToken, 1) + ".sig+/"),
            VerifyError::kMalformed);  // bad base64 signature
  EXPECT_EQ(error_of(forge("not json", "{}", "")), VerifyError::kMalformed);
  EXPECT_EQ(error_of(forge(R"(["alg","HS256"])", "{}", "")), VerifyError::kMalformed);
  EXPECT_EQ(error_of(std::string(10'000, 'a') + ".b.c"), VerifyError::kMalformed);  // too long
}

TEST(Jwt, ErrorNamesAreDistinct) {
  EXPECT_EQ(to_string(VerifyError::kMalformed), "malformed");
  EXPECT_EQ(to_string(VerifyError::kBadAlgorithm), "bad_algorithm");
  EXPECT_EQ(to_string(VerifyError::kBadSignature), "bad_signature");
  EXPECT_EQ(to_string(VerifyError::kExpired), "expired");
  EXPECT_EQ(to_string(VerifyError::kNoSubject), "no_subject");
}

}  // namespace
}  // namespace lab::jwt
