// HS256 JSON Web Tokens. What verify_hs256 accepts, in the order it checks:
//   1. form (kMalformed): at most kMaxTokenBytes, exactly three '.'-separated segments, each
//      strict base64url without padding, the header a JSON object;
//   2. alg (kBadAlgorithm): the header's "alg" is the string "HS256" ("none", RS256, a missing
//      or non-string alg are all refused before any signature work);
//   3. signature (kBadSignature): HMAC-SHA256 of "header.payload" as received, compared in
//      constant time; a signature of the wrong length is a bad signature;
//   4. payload (kMalformed): a JSON object whose "sub" if present is a string and whose "exp"
//      and "iat" if present are integers (fractional NumericDates are not produced by
//      sign_hs256 and are refused);
//   5. exp (kExpired): a token is valid strictly before exp, so now_unix_s >= exp is expired;
//   6. sub (kNoSubject): missing or empty.
// Other header fields (typ, kid) and other claims are ignored.

#include "common/jwt/jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <boost/json.hpp>
#include <cstdlib>
#include <limits>
#include <utility>

namespace lab::jwt {
namespace {

// A bound on what verify will parse; our tokens are ~150 bytes.
constexpr std::size_t kMaxTokenBytes = 8 * 1024;
constexpr std::size_t kSha256Bytes = 32;

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int alphabet_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::array<unsigned char, kSha256Bytes> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, kSha256Bytes> out{};
  unsigned int len = 0;
  // An empty key is passed as a non-null pointer: HMAC() treats a null key as "reuse the last".
  static const unsigned char kEmpty = 0;
  const void* key_ptr = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
  const unsigned char* result =
      HMAC(EVP_sha256(), key_ptr, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
  if (result == nullptr || len != kSha256Bytes) {
    // OpenSSL failing to compute SHA-256 means the process is broken, not the token.
    std::abort();
  }
  return out;
}

std::string_view as_view(const std::array<unsigned char, kSha256Bytes>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::optional<boost::json::object> parse_object(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

// An integer claim: absent -> {true, nullopt}; integer in int64 range -> {true, value};
// anything else -> {false, nullopt}.
struct IntClaim {
  bool ok;
  std::optional<std::int64_t> value;
};
IntClaim int_claim(const boost::json::object& payload, std::string_view name) {
  const auto* v = payload.if_contains(name);
  if (v == nullptr) return {true, std::nullopt};
  if (v->is_int64()) return {true, v->get_int64()};
  if (v->is_uint64() &&
      v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return {true, static_cast<std::int64_t>(v->get_uint64())};
  }
  return {false, std::nullopt};
}

VerifyResult fail(VerifyError e) { return VerifyResult{std::nullopt, e}; }

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : bytes) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = alphabet_value(c);
    if (v < 0) return std::nullopt;  // includes '=', '+', '/', whitespace
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;  // non-canonical: the leftover bits must be zero
  return out;
}

std::string sign_hs256(const Claims& claims, std::string_view secret) {
  boost::json::object header;
  header["alg"] = "HS256";
  header["typ"] = "JWT";
  boost::json::object payload;
  payload["sub"] = claims.sub;
  if (claims.exp) payload["exp"] = *claims.exp;
  if (claims.iat) payload["iat"] = *claims.iat;

  std::string token = base64url_encode(boost::json::serialize(header));
  token += '.';
  token += base64url_encode(boost::json::serialize(payload));
  const auto mac = hmac_sha256(secret, token);
  token += '.';
  token += base64url_encode(as_view(mac));
  return token;
}

std::string_view to_string(VerifyError e) {
  switch (e) {
    case VerifyError::kMalformed:
      return "malformed";
    case VerifyError::kBadAlgorithm:
      return "bad_algorithm";
    case VerifyError::kBadSignature:
      return "bad_signature";
    case VerifyError::kExpired:
      return "expired";
    case VerifyError::kNoSubject:
      return "no_subject";
  }
  return "unknown";
}

VerifyResult verify_hs256(std::string_view token, std::string_view secret,
                          std::int64_t now_unix_s) {
  if (token.size() > kMaxTokenBytes) return fail(VerifyError::kMalformed);
  const std::size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return fail(VerifyError::kMalformed);
  const std::size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail(VerifyError::kMalformed);
  }
  const std::string_view signing_input = token.substr(0, dot2);
  const auto header_json = base64url_decode(token.substr(0, dot1));
  const auto payload_json = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_json || !payload_json || !signature) return fail(VerifyError::kMalformed);

  const auto header = parse_object(*header_json);
  if (!header) return fail(VerifyError::kMalformed);
  const auto* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "HS256") {
    return fail(VerifyError::kBadAlgorithm);
  }

  const auto expected = hmac_sha256(secret, signing_input);
  if (signature->size() != expected.size() ||
      CRYPTO_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return fail(VerifyError::kBadSignature);
  }

  const auto payload = parse_object(*payload_json);
  if (!payload) return fail(VerifyError::kMalformed);
  const auto exp = int_claim(*payload, "exp");
  const auto iat = int_claim(*payload, "iat");
  const auto* sub = payload->if_contains("sub");
  if (!exp.ok || !iat.ok || (sub != nullptr && !sub->is_string())) {
    return fail(VerifyError::kMalformed);
  }
  if (exp.value && now_unix_s >= *exp.value) return fail(VerifyError::kExpired);
  if (sub == nullptr || sub->get_string().empty()) return fail(VerifyError::kNoSubject);

  Claims claims;
  claims.sub = std::string(sub->get_string());
  claims.exp = exp.value;
  claims.iat = iat.value;
  return VerifyResult{std::move(claims), std::nullopt};
}

}  // namespace lab::jwt
