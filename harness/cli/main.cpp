// agentlab: one CLI, thin. Each subcommand is a library function.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "harness/cli/run_command.hpp"
#include "mocks/llm/command.hpp"
#include "mocks/proxy/command.hpp"
#include "reports/merge/merge.hpp"
#include "runtime/command.hpp"

namespace {

constexpr const char* kUsage =
    "agentlab — performance lab for LLM-agent platforms\n"
    "\n"
    "usage: agentlab COMMAND [ARGS]\n"
    "  run SCENARIO.yaml [--target URL] [--time-scale X] [--out DIR] [--seed N] [--shard I/N] [--threads N]\n"
    "  serve [--role all|gateway|worker] [--llm URL[,URL...]] [--port N] [--workers N] [--config FILE]\n"
    "  mock-llm [--port N] [--profile FILE] [--seed N]\n"
    "  chaos-proxy [--port N] [--config FILE]    TCP fault proxy with Toxiproxy's HTTP API\n"
    "  merge SHARD.json... --out MERGED.json     exact merge of --shard runs; thresholds on the merged result\n"
    "  help | version\n"
    "\n"
    "exit codes: 0 pass, 1 threshold failed, 2 invalid usage or scenario, 3 aborted\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string_view cmd = argv[1];
  if (cmd == "run") return lab::harness::run_command(argc - 1, argv + 1);
  if (cmd == "mock-llm") return lab::mocks::llm::command_main(argc - 1, argv + 1);
  if (cmd == "serve") return lab::runtime::serve_main(argc - 1, argv + 1);
  if (cmd == "chaos-proxy") return lab::mocks::proxy::command_main(argc - 1, argv + 1);
  if (cmd == "merge") return lab::reports::merge_command(argc - 1, argv + 1);
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "version" || cmd == "--version") {
    std::puts("agentlab 0.1.0");
    return 0;
  }
  std::fprintf(stderr, "agentlab: unknown command '%s'\n\n%s", argv[1], kUsage);
  return 2;
}
