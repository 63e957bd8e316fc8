// Stand-alone mock LLM binary (the same as `agentlab mock-llm`), for scripts and deployments
// that want the mock without the rest of the lab.
#include "mocks/llm/command.hpp"

int main(int argc, char** argv) { return lab::mocks::llm::command_main(argc, argv); }
