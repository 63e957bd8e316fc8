#include "runtime/gateway/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <random>

#include "common/jwt/jwt.hpp"
#include "runtime/api/string_key.hpp"

namespace lab::runtime {

namespace {

constexpr std::size_t kNonceHex = 32;
constexpr std::size_t kTagHex = 16;
constexpr char kHex[] = "0123456789abcdef";

std::mt19937_64& thread_rng() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }();
  return rng;
}

void append_hex(std::string& out, std::uint64_t v, int digits) {
  for (int i = digits - 1; i >= 0; --i) out += kHex[(v >> (4 * i)) & 0xF];
}

bool is_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> Authenticator::user_of(std::string_view authorization, std::string* why) const {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return user_of(authorization, now, why);
}

std::optional<std::string> Authenticator::user_of(std::string_view authorization,
                                                  std::int64_t now_unix_s, std::string* why) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || !authorization.starts_with(kBearer)) {
    if (why) *why = authorization.empty() ? "missing bearer token" : "expected 'Authorization: Bearer <token>'";
    return std::nullopt;
  }
  const std::string_view token = authorization.substr(kBearer.size());
  // A token verified before (a client sends the same one on every request) is not verified
  // again: a per-thread cache of token → (sub, exp), keyed by the whole token and the secret's
  // owner, dropped wholesale when full.
  struct Verified {
    std::uint64_t by;  // Authenticator::instance_, never reused (an address could be)
    std::string sub;
    std::optional<std::int64_t> exp;
  };
  thread_local StringMap<Verified> cache;
  constexpr std::size_t kCacheEntries = 4096;
  if (auto it = cache.find(token); it != cache.end() && it->second.by == instance_) {
    if (!it->second.exp || now_unix_s < *it->second.exp) return it->second.sub;
    cache.erase(it);
  }
  auto result = jwt::verify_hs256(token, secret_, now_unix_s);
  if (!result.claims) {
    if (why) *why = "invalid token: " + std::string(jwt::to_string(result.error.value_or(jwt::VerifyError::kMalformed)));
    return std::nullopt;
  }
  if (cache.size() >= kCacheEntries) cache.clear();
  cache.emplace(std::string(token), Verified{instance_, result.claims->sub, result.claims->exp});
  return std::move(result.claims->sub);
}

std::string Authenticator::tag(std::string_view user_id, std::string_view nonce) const {
  std::string data;
  data.reserve(user_id.size() + 1 + nonce.size());
  data += user_id;
  data += ':';
  data += nonce;
  std::array<unsigned char, 32> mac{};
  unsigned int len = 0;
  static const unsigned char kEmpty = 0;
  const void* key = secret_.empty() ? static_cast<const void*>(&kEmpty) : secret_.data();
  if (HMAC(EVP_sha256(), key, static_cast<int>(secret_.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac.data(), &len) == nullptr ||
      len != mac.size()) {
    std::abort();  // OpenSSL cannot compute SHA-256: the process is broken
  }
  std::string out;
  out.reserve(kTagHex);
  for (std::size_t i = 0; i < kTagHex / 2; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xF];
  }
  return out;
}

std::string Authenticator::random_id(std::string_view prefix) {
  auto& rng = thread_rng();
  std::string id(prefix);
  id.reserve(prefix.size() + kNonceHex);
  append_hex(id, rng(), 16);
  append_hex(id, rng(), 16);
  return id;
}

std::string Authenticator::make_task_id(std::string_view user_id) const {
  std::string id = random_id("t");
  id += tag(user_id, std::string_view(id).substr(1));
  return id;
}

bool Authenticator::task_owned_by(std::string_view task_id, std::string_view user_id) const {
  if (task_id.size() != 1 + kNonceHex + kTagHex || task_id.front() != 't') return false;
  const std::string_view nonce = task_id.substr(1, kNonceHex);
  const std::string_view given = task_id.substr(1 + kNonceHex);
  if (!is_hex(nonce) || !is_hex(given)) return false;
  const std::string expected = tag(user_id, nonce);
  return CRYPTO_memcmp(expected.data(), given.data(), kTagHex) == 0;
}

}  // namespace lab::runtime
