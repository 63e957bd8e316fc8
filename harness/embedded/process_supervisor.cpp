#include "harness/embedded/process_supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <utility>

namespace lab::harness {

using namespace std::chrono_literals;

namespace {

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

std::uintmax_t file_size(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

// The text of `path` from byte `from` (bounded: a ready line comes early).
std::string read_from(const std::string& path, std::uintmax_t from, std::size_t max_bytes = 64 * 1024) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(static_cast<std::streamoff>(from));
  std::string out(max_bytes, '\0');
  in.read(out.data(), static_cast<std::streamsize>(max_bytes));
  out.resize(static_cast<std::size_t>(in.gcount()));
  return out;
}

// The last `max_bytes` of a file, cut at a line start.
std::string file_tail(const std::string& path, std::size_t max_bytes) {
  const auto size = file_size(path);
  std::string tail = read_from(path, size > max_bytes ? size - max_bytes : 0, max_bytes);
  if (size > max_bytes) {
    const auto nl = tail.find('\n');
    if (nl != std::string::npos) tail.erase(0, nl + 1);
  }
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  return tail.empty() ? "(empty)" : tail;
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by " + signal_name(WTERMSIG(status));
  return "status " + std::to_string(status);
}

ProcessSupervisor::ProcessSupervisor(SupervisorOptions options) : options_(std::move(options)) {
  thread_ = std::thread([this] { thread_main(); });
}

ProcessSupervisor::~ProcessSupervisor() {
  stop_all(5s);
  {
    std::lock_guard lock(work_mutex_);
    quit_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

std::size_t ProcessSupervisor::add(ChildSpec spec) {
  std::lock_guard lock(mutex_);
  auto c = std::make_unique<Child>();
  c->spec = std::move(spec);
  children_.push_back(std::move(c));
  return children_.size() - 1;
}

std::size_t ProcessSupervisor::size() const {
  std::lock_guard lock(mutex_);
  return children_.size();
}

void ProcessSupervisor::thread_main() {
  std::unique_lock lock(work_mutex_);
  while (!quit_) {
    work_cv_.wait_for(lock, 100ms, [&] { return quit_ || !work_.empty(); });
    while (!work_.empty()) {
      auto job = std::move(work_.front());
      work_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
    lock.unlock();
    {
      std::lock_guard children_lock(mutex_);
      for (auto& c : children_)
        if (c->state == State::kRunning || c->state == State::kStarting) poll_exit(*c);
    }
    lock.lock();
  }
}

pid_t ProcessSupervisor::fork_child(const ChildSpec& spec) {
  // Everything the child needs is prepared here: between fork and exec only async-signal-safe
  // calls are allowed (other threads may hold locks the child would inherit).
  std::vector<std::string> argv_text;
  argv_text.push_back(spec.binary);
  argv_text.insert(argv_text.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const int out_fd = ::open(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const int err_fd = ::open(spec.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (in_fd < 0 || out_fd < 0 || err_fd < 0) {
    const int e = errno;
    for (int fd : {in_fd, out_fd, err_fd})
      if (fd >= 0) ::close(fd);
    return -e;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before the prctl
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig)
      if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::close_range(3, ~0U, 0);
    ::execv(argv[0], argv.data());
    static const char kMsg[] = "agentlab: exec failed\n";
    [[maybe_unused]] auto n = ::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  const int e = errno;
  ::close(in_fd);
  ::close(out_fd);
  ::close(err_fd);
  return pid < 0 ? -e : pid;
}

bool ProcessSupervisor::poll_exit(Child& c) {
  if (c.pid <= 0) return false;
  int status = 0;
  const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
  if (r != c.pid) return false;
  const bool was_running = c.state == State::kRunning;
  c.state = State::kExited;
  c.how = describe_wait_status(status);
  const pid_t pid = c.pid;
  c.pid = 0;
  if (!c.signalled && was_running) {
    std::string msg = c.spec.name + " (pid " + std::to_string(pid) + ") exited on its own: " + c.how;
    unexpected_.push_back(msg);
    std::fprintf(stderr, "agentlab: %s; its stderr (%s) ends:\n%s\n", msg.c_str(), c.spec.stderr_path.c_str(),
                 file_tail(c.spec.stderr_path, 1500).c_str());
  }
  return true;
}

std::string ProcessSupervisor::start(const std::vector<std::size_t>& which) {
  std::string problems;
  auto problem = [&](const std::string& p) { problems += (problems.empty() ? "" : "\n") + p; };
  std::vector<std::size_t> starting;
  for (std::size_t i : which) {
    ChildSpec spec;
    {
      std::lock_guard lock(mutex_);
      Child& c = *children_.at(i);
      if (c.state == State::kRunning || c.state == State::kStarting) continue;
      c.state = State::kStarting;
      c.signalled = false;
      c.ready_line.clear();
      c.stdout_offset = file_size(c.spec.stdout_path);
      spec = c.spec;
    }
    // Fork on the supervisor's thread (see the header).
    std::promise<pid_t> forked;
    auto result = forked.get_future();
    {
      std::lock_guard lock(work_mutex_);
      work_.push_back([&] { forked.set_value(fork_child(spec)); });
    }
    work_cv_.notify_all();
    const pid_t pid = result.get();
    std::lock_guard lock(mutex_);
    Child& c = *children_[i];
    if (pid < 0) {
      c.state = State::kExited;
      c.how = "not started";
      problem(c.spec.name + ": cannot start " + spec.binary + ": " + std::strerror(-pid));
      continue;
    }
    c.pid = pid;
    starting.push_back(i);
  }

  const auto deadline = std::chrono::steady_clock::now() + options_.ready_timeout;
  while (!starting.empty()) {
    std::vector<std::size_t> still;
    for (std::size_t i : starting) {
      std::unique_lock lock(mutex_);
      Child& c = *children_[i];
      const std::string out = read_from(c.spec.stdout_path, c.stdout_offset);
      const auto at = out.find(options_.ready_text);
      if (at != std::string::npos && c.state == State::kStarting) {
        const auto bol = out.rfind('\n', at);
        const auto eol = out.find('\n', at);
        c.ready_line = out.substr(bol == std::string::npos ? 0 : bol + 1,
                                  eol == std::string::npos ? std::string::npos : eol - (bol == std::string::npos ? 0 : bol + 1));
        c.state = State::kRunning;
        continue;
      }
      poll_exit(c);
      if (c.state == State::kExited) {
        lock.unlock();
        problem(c.spec.name + " exited (" + c.how + ") before it was ready; its stderr (" + c.spec.stderr_path +
                ") ends:\n" + stderr_tail(i));
        continue;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        c.signalled = true;
        ::kill(c.pid, SIGKILL);
        lock.unlock();
        reap(i, 5s);
        problem(c.spec.name + " did not print '" + options_.ready_text + "' within " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.ready_timeout).count()) +
                " s (killed); its stderr (" + c.spec.stderr_path + ") ends:\n" + stderr_tail(i));
        continue;
      }
      still.push_back(i);
    }
    starting = std::move(still);
    if (!starting.empty()) std::this_thread::sleep_for(10ms);  // bounded by the deadline above
  }
  return problems;
}

bool ProcessSupervisor::signal(std::size_t i, int sig) {
  std::lock_guard lock(mutex_);
  Child& c = *children_.at(i);
  poll_exit(c);
  if (c.state != State::kRunning || c.pid <= 0) return false;
  if (sig != SIGSTOP && sig != SIGCONT) c.signalled = true;
  return ::kill(c.pid, sig) == 0;
}

std::string ProcessSupervisor::reap(std::size_t i, Nanos bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  bool killed = false;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      Child& c = *children_.at(i);
      poll_exit(c);
      if (c.pid <= 0) return c.state == State::kExited ? c.how : "not running";
      if (!killed && std::chrono::steady_clock::now() >= deadline) {
        c.signalled = true;
        ::kill(c.pid, SIGKILL);
        killed = true;
      }
    }
    std::this_thread::sleep_for(10ms);  // bounded: SIGKILL ends it
  }
}

void ProcessSupervisor::stop_all(Nanos bound) {
  std::vector<std::size_t> live;
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < children_.size(); ++i) {
      Child& c = *children_[i];
      poll_exit(c);
      if (c.pid > 0) {
        c.signalled = true;
        ::kill(c.pid, SIGCONT);  // a stopped child cannot drain
        ::kill(c.pid, SIGTERM);
        live.push_back(i);
      }
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + bound;
  for (std::size_t i : live) {
    const auto now = std::chrono::steady_clock::now();
    reap(i, deadline > now ? deadline - now : Nanos{0});
  }
}

std::vector<std::size_t> ProcessSupervisor::running() const {
  std::lock_guard lock(mutex_);
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < children_.size(); ++i)
    if (children_[i]->state == State::kRunning) out.push_back(i);
  return out;
}

pid_t ProcessSupervisor::pid(std::size_t i) const {
  std::lock_guard lock(mutex_);
  return children_.at(i)->pid;
}

std::string ProcessSupervisor::name(std::size_t i) const {
  std::lock_guard lock(mutex_);
  return children_.at(i)->spec.name;
}

std::string ProcessSupervisor::ready_line(std::size_t i) const {
  std::lock_guard lock(mutex_);
  return children_.at(i)->ready_line;
}

std::string ProcessSupervisor::stderr_tail(std::size_t i, std::size_t max_bytes) const {
  std::string path;
  {
    std::lock_guard lock(mutex_);
    path = children_.at(i)->spec.stderr_path;
  }
  return file_tail(path, max_bytes);
}

std::vector<std::string> ProcessSupervisor::take_unexpected_exits() {
  std::lock_guard lock(mutex_);
  return std::exchange(unexpected_, {});
}

}  // namespace lab::harness
