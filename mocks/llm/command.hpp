#pragma once
// `agentlab mock-llm [--port N] [--profile FILE] [--seed N] [--threads N] [--host ADDR]`:
// runs the mock LLM until SIGINT/SIGTERM, then drains and exits 0. Bad flags or an invalid
// profile: every problem on stderr and exit 2.

namespace lab::mocks::llm {

/// argv[0] is "mock-llm". Returns the process exit code.
int command_main(int argc, char** argv);

}  // namespace lab::mocks::llm
