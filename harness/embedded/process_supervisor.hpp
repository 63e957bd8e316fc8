#pragma once
// Child processes of the embedded stack (the runtime's worker processes).
//
// Every child is forked by one long-lived thread of the supervisor: PR_SET_PDEATHSIG, which
// kills the children when agentlab dies, fires when the *thread* that forked exits, so forking
// from a short-lived fault thread would kill a restarted worker a moment later. Each child runs
// in a process group of its own (a terminal's Ctrl-C reaches agentlab only, which then stops the
// children in order), with stdin on /dev/null, no inherited descriptors, default signal
// dispositions, and stdout and stderr appended to files (a restart adds to the same files).
// A child is ready when a line of its stdout contains `ready_text`.
//
// The same thread polls the running children every 100 ms: one that exits without having been
// signalled through signal() is an unexpected exit, reported once on stderr with the tail of its
// stderr, and listed by take_unexpected_exits().
//
// Thread-safety: every member may be called from any thread.

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock/clock.hpp"

namespace lab::harness {

struct ChildSpec {
  std::string name;                ///< "w1": names the child in messages
  std::string binary;              ///< what to execute ("/proc/self/exe": this very program)
  std::vector<std::string> args;   ///< argv[1..]
  std::string stdout_path;         ///< appended
  std::string stderr_path;         ///< appended
};

struct SupervisorOptions {
  Nanos ready_timeout = std::chrono::seconds(20);  ///< from fork to the ready line
  std::string ready_text = "listening on";
};

class ProcessSupervisor {
 public:
  explicit ProcessSupervisor(SupervisorOptions options = {});
  ~ProcessSupervisor();  ///< stop_all(5 s)
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  /// Registers a child (not started); returns its index.
  std::size_t add(ChildSpec spec);
  /// Starts the given children (all forked first, then awaited) and waits until each printed its
  /// ready line. A child already running is left alone. Returns "" when all are up, else one
  /// sentence per child that is not ("w2 exited with status 2 before it was ready; stderr ends:
  /// ..."); a child that did not come up within ready_timeout is killed.
  std::string start(const std::vector<std::size_t>& which);
  /// Sends `sig` to a running child; the exit it may cause is expected (not reported). SIGSTOP
  /// and SIGCONT leave it running. false when the child is not running.
  bool signal(std::size_t i, int sig);
  /// Waits up to `bound` for the child to exit, then SIGKILLs it and waits for that. Returns how
  /// it ended ("killed by SIGKILL", "exit 0"), or "not running".
  std::string reap(std::size_t i, Nanos bound);
  /// SIGTERM to every running child, SIGKILL to those still there after `bound`; reaps all.
  void stop_all(Nanos bound);

  std::size_t size() const;
  /// Indices of the children that are up (ready and not exited), in order.
  std::vector<std::size_t> running() const;
  pid_t pid(std::size_t i) const;  ///< 0 when not running
  std::string name(std::size_t i) const;
  /// The ready line of the child's current run ("agentlab serve: listening on http://...").
  std::string ready_line(std::size_t i) const;
  /// The last `max_bytes` of the child's stderr file, cut at a line start.
  std::string stderr_tail(std::size_t i, std::size_t max_bytes = 1500) const;
  /// Unexpected exits since the last call ("w2 (pid 123) exited on its own: killed by SIGSEGV").
  std::vector<std::string> take_unexpected_exits();

 private:
  enum class State { kIdle, kStarting, kRunning, kExited };
  struct Child {
    ChildSpec spec;
    State state = State::kIdle;
    pid_t pid = 0;
    bool signalled = false;  ///< an exit now is expected
    std::string how;         ///< how the last run ended
    std::string ready_line;
    std::uintmax_t stdout_offset = 0;  ///< where this run's stdout begins in the file
  };

  /// Forks and execs on the supervisor's thread; returns the pid or -errno.
  pid_t fork_child(const ChildSpec& spec);
  /// waitpid(WNOHANG) on a live child; records the exit. Caller holds mutex_.
  bool poll_exit(Child& c);
  void thread_main();

  SupervisorOptions options_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Child>> children_;
  std::vector<std::string> unexpected_;

  // The forking thread's work queue.
  std::mutex work_mutex_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;
  bool quit_ = false;
  std::thread thread_;
};

/// "exit 3", "killed by SIGKILL" for a waitpid status.
std::string describe_wait_status(int status);

}  // namespace lab::harness
