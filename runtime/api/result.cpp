#include "runtime/api/result.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace lab::runtime {
namespace {

class RuntimeCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "lab.runtime"; }
  std::string message(int ev) const override { return std::string(to_string(static_cast<Errc>(ev))); }
};

}  // namespace

const std::error_category& runtime_category() noexcept {
  static const RuntimeCategory category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), runtime_category()};
}

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::kOk: return "ok";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kQueueFull: return "queue_full";
    case Errc::kClosed: return "closed";
    case Errc::kNoTask: return "no_task";
    case Errc::kLeaseLost: return "lease_lost";
    case Errc::kStreamFinished: return "stream_finished";
    case Errc::kStaleFence: return "stale_fence";
    case Errc::kLockHeld: return "lock_held";
    case Errc::kLockLost: return "lock_lost";
    case Errc::kInvalidTransition: return "invalid_transition";
    case Errc::kConflict: return "conflict";
    case Errc::kMembershipPaused: return "membership_paused";
    case Errc::kBusy: return "busy";
    case Errc::kLimitExceeded: return "limit_exceeded";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kBackendError: return "backend_error";
  }
  return "unknown";
}

namespace detail {

void die_on_error(const std::error_code& ec) noexcept {
  if (ec) {
    std::fprintf(stderr, "lab::runtime::Result: value() on error %s:%d (%s)\n", ec.category().name(),
                 ec.value(), ec.message().c_str());
  } else {
    std::fprintf(stderr, "lab::runtime::Result: built from a success error_code\n");
  }
  std::abort();
}

}  // namespace detail
}  // namespace lab::runtime
