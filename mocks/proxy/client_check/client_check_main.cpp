// ctest "lab_mocks_proxy_client": starts the chaos proxy in-process on a free port and runs
// `node check.mjs URL` (the official Toxiproxy Node client, toxiproxy-node-client) against it.
// Exit 77 (ctest: skipped) only when node or client_check/node_modules is missing; the test
// needs no network (`npm ci` in client_check/ installs the client beforehand).

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "mocks/proxy/chaos_proxy.hpp"

extern char** environ;

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CLIENT_CHECK_DIR\n", argv[0]);
    return 2;
  }
  const fs::path dir = fs::absolute(argv[1]);
  if (!fs::exists(dir / "node_modules" / "toxiproxy-node-client")) {
    std::printf("SKIP: %s has no node_modules; run `npm ci` there\n", dir.c_str());
    return 77;
  }

  lab::mocks::proxy::ChaosProxy proxy;
  proxy.start();
  const std::string url = proxy.url();
  std::printf("chaos proxy API at %s\n", url.c_str());
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
  proxy.stop();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::printf("node ended by signal %d\n", WTERMSIG(status));
  return 1;
}
