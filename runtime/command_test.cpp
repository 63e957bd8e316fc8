// `agentlab serve` refuses what it cannot run before starting anything (exit 2, every problem),
// and a store it cannot open stops it with exit 1 and the reason.

#include "runtime/command.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lab::runtime {
namespace {

int serve(std::vector<std::string> args) {
  args.insert(args.begin(), "serve");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return serve_main(static_cast<int>(argv.size()), argv.data());
}

TEST(ServeCommand, RefusesBackendsRolesAndFlagsItCannotRun) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(serve({"--queue", "amqp://127.0.0.1:5672", "--llm", "http://127.0.0.1:9"}), 2);
  EXPECT_EQ(serve({"--store", "mysql://localhost/agentlab", "--llm", "http://127.0.0.1:9"}), 2);
  EXPECT_EQ(serve({"--role", "worker", "--llm", "http://127.0.0.1:9"}), 2);
  EXPECT_EQ(serve({"--queue", "redis://127.0.0.1:6379", "--namespace", "no spaces", "--llm", "http://127.0.0.1:9"}), 2);
  EXPECT_EQ(serve({"--role", "boss", "--llm", "http://127.0.0.1:9"}), 2);
  EXPECT_EQ(serve({"--llm", "http://127.0.0.1:9", "--workers", "0"}), 2);
  EXPECT_EQ(serve({"--bogus", "1"}), 2);
  EXPECT_EQ(serve({}), 2);  // no LLM
  EXPECT_EQ(serve({"--config", "/nonexistent/runtime.yaml", "--llm", "http://127.0.0.1:9"}), 2);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("queue: expected memory or redis://"), std::string::npos) << err;
  EXPECT_NE(err.find("store: expected memory or postgresql://"), std::string::npos);
  EXPECT_NE(err.find("with memory backends only 'all' works"), std::string::npos);
  EXPECT_NE(err.find("namespace: expected"), std::string::npos);
  EXPECT_NE(err.find("--bogus: unknown flag"), std::string::npos);
  EXPECT_NE(err.find("at least one LLM URL"), std::string::npos);
  EXPECT_NE(err.find("/nonexistent/runtime.yaml: cannot read"), std::string::npos);
}

TEST(ServeCommand, AStoreItCannotOpenStopsItWithTheReason) {
  ::testing::internal::CaptureStderr();
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  EXPECT_EQ(serve({"--store", "postgresql://postgres@127.0.0.1:1/agentlab", "--port", "0", "--llm",
                   "http://127.0.0.1:9"}),
            1);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("store: cannot open postgresql://postgres@127.0.0.1:1/agentlab"), std::string::npos) << err;
}

TEST(ServeCommand, HelpExitsZero) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(serve({"--help"}), 0);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("usage: agentlab serve"), std::string::npos);
}

}  // namespace
}  // namespace lab::runtime
