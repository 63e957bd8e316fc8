// lab_runtime_serve: `agentlab serve` as a stand-alone binary (the same library function).
#include "runtime/command.hpp"

int main(int argc, char** argv) { return lab::runtime::serve_main(argc, argv); }
