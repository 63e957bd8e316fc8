#include "mocks/proxy/command.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace lab::mocks::proxy {
namespace {

struct CommandRun {
  int code = 0;
  std::string out;
  std::string err;
};

/// Runs command_main with argv[0] = "chaos-proxy" and captures std::cout / std::cerr.
CommandRun run(std::vector<std::string> args) {
  args.insert(args.begin(), "chaos-proxy");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  CommandRun r;
  r.code = command_main(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(ChaosProxyCommand, BadFlagsExitTwoNamingTheFlag) {
  const CommandRun port = run({"--port", "http"});
  EXPECT_EQ(port.code, 2);
  EXPECT_NE(port.err.find("--port"), std::string::npos) << port.err;

  const CommandRun unknown = run({"--bogus", "1"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("--bogus: unknown flag"), std::string::npos) << unknown.err;

  const CommandRun missing = run({"--seed"});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("--seed: missing value"), std::string::npos) << missing.err;

  const CommandRun single_dash = run({"-threads", "0"});  // Toxiproxy-style spelling, bad value
  EXPECT_EQ(single_dash.code, 2);
  EXPECT_NE(single_dash.err.find("--threads"), std::string::npos) << single_dash.err;

  const CommandRun config = run({"--config", "/nonexistent/toxiproxy.json"});
  EXPECT_EQ(config.code, 2);
  EXPECT_NE(config.err.find("--config: cannot open"), std::string::npos) << config.err;
}

TEST(ChaosProxyCommand, HelpPrintsUsageAndExitsZero) {
  const CommandRun help = run({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("usage: agentlab chaos-proxy"), std::string::npos);
}

}  // namespace
}  // namespace lab::mocks::proxy
