#pragma once
// Bearer-token authentication for the runtime API (DESIGN.md: "Authorization: Bearer <JWT HS256>
// with sub = user id"), and task ids that name their owner.
//
// Task ids carry a tag, HMAC-SHA256(secret, user ":" nonce) cut to 8 bytes, so the SSE endpoint
// can tell whether a task belongs to the caller without a lookup (and without state shared
// between gateways): another user's task id is a 404, exactly like an unknown one.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lab::runtime {

class Authenticator {
 public:
  /// `secret` is the HS256 key.
  explicit Authenticator(std::string secret) : secret_(std::move(secret)), instance_(next_instance()) {}

  /// The user id (sub) of an Authorization header value "Bearer <token>", checked against the
  /// wall clock for exp; nullopt with `why` set ("missing bearer token", "expired", ...)
  /// otherwise. Thread-safe. Verified tokens are cached per thread (4096, keyed by the whole
  /// token), so a client's repeated token costs a hash lookup; exp is still checked each time.
  std::optional<std::string> user_of(std::string_view authorization, std::string* why = nullptr) const;
  /// The same with an explicit "now" (seconds since the Unix epoch), for tests.
  std::optional<std::string> user_of(std::string_view authorization, std::int64_t now_unix_s,
                                     std::string* why) const;

  /// Makes a task id for `user_id`: "t" + 32 hex digits of randomness + 16 hex digits of tag.
  /// Thread-safe (a thread-local generator).
  std::string make_task_id(std::string_view user_id) const;
  /// Whether `task_id` is well formed and was made for `user_id`.
  bool task_owned_by(std::string_view task_id, std::string_view user_id) const;

  /// A random id with a prefix: prefix + 32 hex digits (agent ids, fork ids).
  static std::string random_id(std::string_view prefix);

  const std::string& secret() const { return secret_; }

 private:
  std::string tag(std::string_view user_id, std::string_view nonce) const;
  static std::uint64_t next_instance() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1);
  }
  std::string secret_;
  std::uint64_t instance_;  // keys the per-thread cache of verified tokens
};

}  // namespace lab::runtime
