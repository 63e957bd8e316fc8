#pragma once
// JSON Web Tokens, HS256 only (RFC 7519 / RFC 7515 compact form), with OpenSSL's HMAC.
// The harness mints them for ${user.token}; the runtime verifies them.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lab::jwt {

struct Claims {
  std::string sub;                   ///< subject: the user id.
  std::optional<std::int64_t> exp;   ///< expiry, seconds since the Unix epoch.
  std::optional<std::int64_t> iat;   ///< issued at, seconds since the Unix epoch.
};

/// header {"alg":"HS256","typ":"JWT"} . payload (sub, exp, iat when set) . signature, base64url
/// without padding.
std::string sign_hs256(const Claims& claims, std::string_view secret);

enum class VerifyError { kMalformed, kBadAlgorithm, kBadSignature, kExpired, kNoSubject };
std::string_view to_string(VerifyError e);

struct VerifyResult {
  std::optional<Claims> claims;   ///< set when valid
  std::optional<VerifyError> error;
};

/// Checks form, alg == HS256, signature (constant-time compare), exp against `now_unix_s`,
/// and a non-empty sub.
VerifyResult verify_hs256(std::string_view token, std::string_view secret, std::int64_t now_unix_s);

/// base64url without padding, and its inverse (nullopt on bad input).
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace lab::jwt
