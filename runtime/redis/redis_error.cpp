#include "runtime/redis/redis_error.hpp"

#include <string>

namespace lab::runtime::redis {
namespace {

std::string_view name_of(RedisErrc e) noexcept {
  switch (e) {
    case RedisErrc::kOk: return "ok";
    case RedisErrc::kConnect: return "connect";
    case RedisErrc::kIo: return "io";
    case RedisErrc::kTimeout: return "timeout";
    case RedisErrc::kProtocol: return "protocol";
    case RedisErrc::kPoolExhausted: return "pool_exhausted";
    case RedisErrc::kReplyError: return "reply_error";
    case RedisErrc::kWrongType: return "wrong_type";
    case RedisErrc::kNoScript: return "no_script";
    case RedisErrc::kNoGroup: return "no_group";
    case RedisErrc::kBusyGroup: return "busy_group";
    case RedisErrc::kOutOfMemory: return "out_of_memory";
    case RedisErrc::kLoading: return "loading";
    case RedisErrc::kBusyScript: return "busy_script";
    case RedisErrc::kReadOnly: return "read_only";
    case RedisErrc::kUnexpectedReply: return "unexpected_reply";
  }
  return "unknown";
}

class RedisCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "lab.redis"; }
  std::string message(int ev) const override { return std::string(name_of(static_cast<RedisErrc>(ev))); }
};

}  // namespace

const std::error_category& redis_category() noexcept {
  static const RedisCategory category;
  return category;
}

std::error_code make_error_code(RedisErrc e) noexcept { return {static_cast<int>(e), redis_category()}; }

RedisErrc classify_error_reply(std::string_view text) noexcept {
  const auto word = text.substr(0, text.find(' '));
  if (word == "WRONGTYPE") return RedisErrc::kWrongType;
  if (word == "NOSCRIPT") return RedisErrc::kNoScript;
  if (word == "NOGROUP") return RedisErrc::kNoGroup;
  if (word == "BUSYGROUP") return RedisErrc::kBusyGroup;
  if (word == "OOM") return RedisErrc::kOutOfMemory;
  if (word == "LOADING") return RedisErrc::kLoading;
  if (word == "BUSY") return RedisErrc::kBusyScript;
  if (word == "READONLY") return RedisErrc::kReadOnly;
  // Errors raised inside a script arrive wrapped: "ERR Error running script ...: NOGROUP ...".
  if (word == "ERR" || word.empty()) {
    for (const auto& [needle, code] : {std::pair{std::string_view("NOGROUP"), RedisErrc::kNoGroup},
                                       std::pair{std::string_view("WRONGTYPE"), RedisErrc::kWrongType},
                                       std::pair{std::string_view("OOM "), RedisErrc::kOutOfMemory}}) {
      if (text.find(needle) != std::string_view::npos) return code;
    }
  }
  return RedisErrc::kReplyError;
}

bool is_unavailable(std::error_code ec) noexcept {
  if (ec.category() == runtime_category()) return ec == Errc::kUnavailable;
  if (ec.category() != redis_category()) return false;
  switch (static_cast<RedisErrc>(ec.value())) {
    case RedisErrc::kConnect:
    case RedisErrc::kIo:
    case RedisErrc::kTimeout:
    case RedisErrc::kPoolExhausted:
    case RedisErrc::kLoading:
    case RedisErrc::kBusyScript:
    case RedisErrc::kReadOnly:
      return true;
    default:
      return false;
  }
}

Errc to_runtime_errc(std::error_code ec) noexcept {
  if (!ec) return Errc::kOk;
  if (ec.category() == runtime_category()) return static_cast<Errc>(ec.value());
  if (is_unavailable(ec)) return Errc::kUnavailable;
  if (ec == RedisErrc::kOutOfMemory) return Errc::kLimitExceeded;
  return Errc::kBackendError;
}

}  // namespace lab::runtime::redis
