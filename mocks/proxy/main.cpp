// Stand-alone chaos proxy binary; `agentlab chaos-proxy` runs the same command_main.
#include "mocks/proxy/command.hpp"

int main(int argc, char** argv) { return lab::mocks::proxy::command_main(argc, argv); }
