#pragma once
// `agentlab serve [--role all|gateway|worker] [--queue memory] [--store memory]
//                 [--llm URL[,URL...]] [--host ADDR] [--port N] [--workers N] [--http-threads N]
//                 [--config FILE]`:
// runs the reference runtime until SIGINT/SIGTERM, then drains gracefully (stop accepting,
// finish queued and running turns, deliver terminal events) and exits 0. Flags override the
// config file; AGENTLAB_JWT_SECRET overrides the JWT secret. Bad flags or config: every
// problem on stderr and exit 2.

namespace lab::runtime {

/// argv[0] is "serve". Returns the process exit code.
int serve_main(int argc, char** argv);

}  // namespace lab::runtime
