// The supervisor with /bin/sh children (mechanics) and with `agentlab serve` (the real thing).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "harness/embedded/process_supervisor.hpp"

using namespace lab::harness;
using namespace std::chrono_literals;

namespace {

std::string temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("agentlab-sup-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

ChildSpec shell(const std::string& dir, const std::string& name, const std::string& script) {
  ChildSpec s;
  s.name = name;
  s.binary = "/bin/sh";
  s.args = {"-c", script};
  s.stdout_path = dir + "/" + name + ".stdout";
  s.stderr_path = dir + "/" + name + ".stderr";
  return s;
}

// Whether the process is gone (or a zombie nobody reaped yet: it runs no more either way).
bool gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  const auto paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
}

// Waits (bounded) for a condition that another process makes true.
template <class F>
bool eventually(F f, std::chrono::seconds bound = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!f()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

}  // namespace

TEST(ProcessSupervisor, StartsChildrenAndKeepsTheirReadyLine) {
  const auto dir = temp_dir("ready");
  ProcessSupervisor sup;
  const auto a = sup.add(shell(dir, "a", "echo booting; echo \"x: listening on http://127.0.0.1:1 (pid $$)\"; exec sleep 60"));
  const auto b = sup.add(shell(dir, "b", "echo 'listening on b'; exec sleep 60"));
  ASSERT_EQ(sup.start({a, b}), "");
  EXPECT_EQ(sup.running(), (std::vector<std::size_t>{a, b}));
  const pid_t pid = sup.pid(a);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(sup.ready_line(a), "x: listening on http://127.0.0.1:1 (pid " + std::to_string(pid) + ")");
  EXPECT_EQ(::getpgid(pid), pid);  // a process group of its own
  EXPECT_TRUE(sup.signal(a, SIGKILL));
  EXPECT_EQ(sup.reap(a, 5s), "killed by SIGKILL");
  EXPECT_EQ(sup.running(), (std::vector<std::size_t>{b}));
  EXPECT_TRUE(sup.take_unexpected_exits().empty());  // it was signalled
  EXPECT_FALSE(sup.signal(a, SIGTERM));              // not running any more
}

TEST(ProcessSupervisor, RestartAppendsToTheSameFilesAndReadsTheNewReadyLine) {
  const auto dir = temp_dir("restart");
  ProcessSupervisor sup;
  const auto a = sup.add(shell(dir, "a", "echo \"listening on $$\"; echo \"err $$\" >&2; exec sleep 60"));
  ASSERT_EQ(sup.start({a}), "");
  const pid_t first = sup.pid(a);
  ASSERT_TRUE(sup.signal(a, SIGTERM));
  EXPECT_EQ(sup.reap(a, 5s), "killed by SIGTERM");
  ASSERT_EQ(sup.start({a}), "");
  const pid_t second = sup.pid(a);
  EXPECT_NE(first, second);
  EXPECT_EQ(sup.ready_line(a), "listening on " + std::to_string(second));
  EXPECT_EQ(sup.stderr_tail(a), "err " + std::to_string(first) + "\nerr " + std::to_string(second));
}

TEST(ProcessSupervisor, AChildThatExitsBeforeItIsReadyIsAnErrorWithItsStderr) {
  const auto dir = temp_dir("early");
  ProcessSupervisor sup;
  const auto a = sup.add(shell(dir, "w1", "echo 'serve: queue: bad URL' >&2; exit 2"));
  const std::string problem = sup.start({a});
  EXPECT_NE(problem.find("w1 exited (exit 2) before it was ready"), std::string::npos) << problem;
  EXPECT_NE(problem.find("serve: queue: bad URL"), std::string::npos) << problem;
  EXPECT_TRUE(sup.running().empty());
}

TEST(ProcessSupervisor, AChildThatNeverGetsReadyIsKilledAtTheBound) {
  const auto dir = temp_dir("slow");
  SupervisorOptions o;
  o.ready_timeout = 300ms;
  ProcessSupervisor sup(o);
  const auto a = sup.add(shell(dir, "w1", "echo 'waiting for redis' >&2; exec sleep 60"));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string problem = sup.start({a});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_NE(problem.find("w1 did not print 'listening on' within"), std::string::npos) << problem;
  EXPECT_NE(problem.find("waiting for redis"), std::string::npos) << problem;
  EXPECT_EQ(sup.pid(a), 0);
}

TEST(ProcessSupervisor, AnExitNobodyAskedForIsReported) {
  const auto dir = temp_dir("unexpected");
  const std::string fifo = dir + "/go";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  ProcessSupervisor sup;
  const auto a = sup.add(shell(dir, "w2", "echo 'listening on x'; read line < " + fifo + "; echo dying >&2; exit 5"));
  ASSERT_EQ(sup.start({a}), "");
  {
    std::ofstream go(fifo);  // lets the child go on to its exit
    go << "\n";
  }
  EXPECT_EQ(sup.reap(a, 10s), "exit 5");
  const auto exits = sup.take_unexpected_exits();
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_NE(exits[0].find("w2 (pid "), std::string::npos) << exits[0];
  EXPECT_NE(exits[0].find("exited on its own: exit 5"), std::string::npos) << exits[0];
  EXPECT_TRUE(sup.take_unexpected_exits().empty());  // reported once
}

TEST(ProcessSupervisor, StopAllTermsThenKillsWhatIsLeft) {
  const auto dir = temp_dir("stop");
  ProcessSupervisor sup;
  const auto polite = sup.add(shell(dir, "polite", "echo 'listening on'; exec sleep 60"));
  const auto stubborn = sup.add(shell(dir, "stubborn", "trap '' TERM; echo 'listening on'; while :; do sleep 0.05; done"));
  ASSERT_EQ(sup.start({polite, stubborn}), "");
  const pid_t p1 = sup.pid(polite), p2 = sup.pid(stubborn);
  const auto t0 = std::chrono::steady_clock::now();
  sup.stop_all(500ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(gone(p1));
  EXPECT_TRUE(gone(p2));
  EXPECT_TRUE(sup.running().empty());
}

// PR_SET_PDEATHSIG: a supervisor in a process that dies without stopping anything takes its
// children with it.
TEST(ProcessSupervisor, ChildrenDieWithTheirParent) {
  const auto dir = temp_dir("orphan");
  const std::string pid_file = dir + "/child.pid";
  const pid_t middle = ::fork();
  ASSERT_GE(middle, 0);
  if (middle == 0) {
    {
      ProcessSupervisor* sup = new ProcessSupervisor();  // never destroyed: the process just dies
      const auto a = sup->add(shell(dir, "a", "echo $$ > " + pid_file + "; echo 'listening on'; exec sleep 60"));
      if (!sup->start({a}).empty()) ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(middle, &status, 0), middle);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream in(pid_file);
  pid_t child = 0;
  in >> child;
  ASSERT_GT(child, 0);
  EXPECT_TRUE(eventually([&] { return gone(child); })) << "pid " << child << " outlived its parent";
  if (!gone(child)) ::kill(child, SIGKILL);
}

#ifdef LAB_AGENTLAB_BINARY
// The real child: `agentlab serve --role all` on memory backends, as the stack runs workers.
TEST(ProcessSupervisor, RunsAgentlabServeAndDrainsItWithSigterm) {
  const auto dir = temp_dir("serve");
  ProcessSupervisor sup;
  ChildSpec s;
  s.name = "w1";
  s.binary = LAB_AGENTLAB_BINARY;
  s.args = {"serve", "--role", "all", "--llm", "http://127.0.0.1:1", "--port", "0"};
  s.stdout_path = dir + "/w1.stdout";
  s.stderr_path = dir + "/w1.stderr";
  const auto a = sup.add(s);
  ASSERT_EQ(sup.start({a}), "");
  EXPECT_NE(sup.ready_line(a).find("agentlab serve: listening on http://127.0.0.1:"), std::string::npos)
      << sup.ready_line(a);
  ASSERT_TRUE(sup.signal(a, SIGTERM));
  EXPECT_EQ(sup.reap(a, 15s), "exit 0");
  EXPECT_NE(sup.stderr_tail(a).find("serve: stopped"), std::string::npos) << sup.stderr_tail(a);
}
#endif
