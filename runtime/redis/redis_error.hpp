#pragma once
// Typed errors of the Redis wrapper. hiredis failures (connect, I/O, protocol) and Redis error
// replies ("NOGROUP ...", "OOM ...") become these codes here and nowhere else; the adapters
// (queue, event bus, locks) then turn them into the runtime's Errc with to_runtime_errc.

#include <string_view>
#include <system_error>

#include "runtime/api/result.hpp"

namespace lab::runtime::redis {

enum class RedisErrc {
  kOk = 0,
  kConnect,          ///< could not connect (refused, timed out) or still backing off after a failure
  kIo,               ///< the connection broke during a command: its effect on the server is unknown
  kTimeout,          ///< no reply within the command timeout: effect unknown, connection dropped
  kProtocol,         ///< unparsable reply; connection dropped
  kPoolExhausted,    ///< no connection of the pool became free within the wait
  kReplyError,       ///< an error reply without a more specific code ("ERR ...")
  kWrongType,        ///< WRONGTYPE: the key holds another type
  kNoScript,         ///< NOSCRIPT: EVALSHA of a script the server does not know (after a restart)
  kNoGroup,          ///< NOGROUP: the stream or its consumer group does not exist
  kBusyGroup,        ///< BUSYGROUP: XGROUP CREATE of a group that exists
  kOutOfMemory,      ///< OOM: maxmemory reached with noeviction
  kLoading,          ///< LOADING: the server is loading its data set after a restart
  kBusyScript,       ///< BUSY: a script is running too long
  kReadOnly,         ///< READONLY: a replica refused a write
  kUnexpectedReply,  ///< a reply of a type or shape the caller did not expect
};

const std::error_category& redis_category() noexcept;
std::error_code make_error_code(RedisErrc e) noexcept;

/// The code for an error reply's text, by its prefix ("NOGROUP No such key ..." → kNoGroup).
RedisErrc classify_error_reply(std::string_view text) noexcept;

/// Whether the server could not be used (connect, I/O, timeout, pool, LOADING, BUSY): a retry
/// later may succeed.
bool is_unavailable(std::error_code ec) noexcept;

/// The runtime code for a Redis error: kUnavailable (see is_unavailable), kLimitExceeded (OOM),
/// kBackendError (anything else). A runtime-category code passes through unchanged.
Errc to_runtime_errc(std::error_code ec) noexcept;
inline std::error_code to_runtime(std::error_code ec) noexcept { return make_error_code(to_runtime_errc(ec)); }

}  // namespace lab::runtime::redis

template <>
struct std::is_error_code_enum<lab::runtime::redis::RedisErrc> : std::true_type {};
