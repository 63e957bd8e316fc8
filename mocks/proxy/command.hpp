#pragma once
// `agentlab chaos-proxy [--port N] [--host ADDR] [--config FILE] [--seed N] [--threads N]`:
// runs the chaos proxy (Toxiproxy's API, default 127.0.0.1:8474) until SIGINT/SIGTERM, then
// closes everything and exits 0. Prints "chaos-proxy API on http://HOST:PORT" once serving.
// Bad flags, an unreadable or invalid --config, or an API port that cannot bind: the problem
// on stderr and exit 2. Toxiproxy's single-dash spellings (-port, -host, -config, -seed) work
// too, so scripts written for toxiproxy-server run unchanged.

namespace lab::mocks::proxy {

/// argv[0] is "chaos-proxy". Returns the process exit code.
int command_main(int argc, char** argv);

}  // namespace lab::mocks::proxy
