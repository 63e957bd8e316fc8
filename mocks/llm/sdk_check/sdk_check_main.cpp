// ctest "lab_mocks_llm_sdk": starts the mock LLM in-process on a free port and runs
// `node check.mjs URL` (the official OpenAI and Anthropic SDKs) against it.
// Exit 77 (ctest: skipped) only when node or sdk_check/node_modules is missing.

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "mocks/llm/mock_llm.hpp"

extern char** environ;

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using namespace lab::mocks::llm;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SDK_CHECK_DIR\n", argv[0]);
    return 2;
  }
  const fs::path dir = fs::absolute(argv[1]);
  if (!fs::exists(dir / "node_modules" / "openai") || !fs::exists(dir / "node_modules" / "@anthropic-ai" / "sdk")) {
    std::printf("SKIP: %s has no node_modules; run `npm ci` there (scripts/bootstrap does)\n", dir.c_str());
    return 77;
  }

  Profile profile;
  profile.latency.ttft_ms = Distribution::constant(5.0);
  profile.latency.prefill_ms_per_token = 0.0;
  profile.latency.itl_ms = Distribution::constant(1.0);
  MockLlm mock(profile, lab::SteadyClock::instance(), 42);
  mock.start();
  const std::string url = mock.url();
  std::printf("mock LLM at %s\n", url.c_str());
  std::fflush(stdout);

  const std::string script = (dir / "check.mjs").string();
  std::vector<char*> args = {const_cast<char*>("node"), const_cast<char*>(script.c_str()),
                             const_cast<char*>(url.c_str()), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, "node", &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    std::printf("SKIP: cannot run node (%s)\n", std::strerror(rc));
    return 77;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  mock.stop();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "node died by signal %d\n", WTERMSIG(status));
  return 1;
}
