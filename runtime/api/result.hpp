#pragma once
// Typed results for the runtime's backend interfaces (queue, event bus, stores, locks): a value
// or a std::error_code in the runtime's own category. No exception crosses these interfaces; the
// Redis and PostgreSQL adapters turn hiredis error replies and libpqxx exceptions into these codes
// at the adapter, nowhere else.

#include <optional>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

namespace lab::runtime {

/// What went wrong in a runtime backend call. Each interface documents which codes it returns.
enum class Errc {
  kOk = 0,
  kNotFound,           ///< no such agent, checkpoint, task stream or lease
  kAlreadyExists,      ///< create with an id that is taken
  kInvalidArgument,    ///< empty id, bad value, or a call out of protocol order
  kQueueFull,          ///< backpressure: the queue is at its bound (the gateway answers 503)
  kClosed,             ///< the queue is shut down (and, for lease, drained)
  kNoTask,             ///< lease: nothing became available before the wait ended
  kLeaseLost,          ///< ack/nack/extend of a lease that was redelivered to another consumer
  kStreamFinished,     ///< append after the stream's terminal event
  kStaleFence,         ///< a write carried a fencing token older than one the store has seen
  kLockHeld,           ///< another owner holds the agent's lock
  kLockLost,           ///< renew/release of a lock that expired and was taken by another owner
  kInvalidTransition,  ///< the agent state machine forbids this transition
  kConflict,           ///< compare-and-set: the current state or owner is not the expected one
  kMembershipPaused,   ///< the owner's membership is paused: no new work for the agent
  kBusy,               ///< the agent is in a turn
  kLimitExceeded,      ///< a documented bound of the backend was hit
  kUnavailable,        ///< the backend cannot be reached (refused, timed out, disconnected)
  kBackendError,       ///< the backend answered with an error
};

/// The category of Errc ("lab.runtime").
const std::error_category& runtime_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;
/// The short name of a code ("queue_full"), for metric labels and logs.
std::string_view to_string(Errc e) noexcept;

namespace detail {
/// Aborts the process with a message: the invariant "value() only on success" was broken.
[[noreturn]] void die_on_error(const std::error_code& ec) noexcept;
}  // namespace detail

/// A value of T or an error. value() on an error is a programming error and aborts.
template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_same_v<std::decay_t<T>, std::error_code>);

 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Errc e) : Result(make_error_code(e)) {}  // NOLINT(google-explicit-constructor)
  Result(std::error_code ec) : error_(ec) {        // NOLINT(google-explicit-constructor)
    if (!ec) detail::die_on_error(ec);
  }

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  /// The error; a default (false) error_code on success.
  std::error_code error() const noexcept { return error_; }

  T& value() & { check(); return *value_; }
  const T& value() const& { check(); return *value_; }
  T&& value() && { check(); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

 private:
  void check() const {
    if (!value_) detail::die_on_error(error_);
  }
  std::optional<T> value_;
  std::error_code error_;
};

/// Success or an error, for calls with nothing to return.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Errc e) : error_(make_error_code(e)) {}  // NOLINT(google-explicit-constructor)
  Result(std::error_code ec) : error_(ec) {}      // NOLINT(google-explicit-constructor)
  bool ok() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return ok(); }
  std::error_code error() const noexcept { return error_; }

 private:
  std::error_code error_;
};

}  // namespace lab::runtime

template <>
struct std::is_error_code_enum<lab::runtime::Errc> : std::true_type {};
