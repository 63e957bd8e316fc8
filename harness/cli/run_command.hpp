#pragma once
// `agentlab run SCENARIO.yaml [flags]`: parse flags, validate, run, report. Returns the exit code.

namespace lab::harness {

int run_command(int argc, char** argv);

}  // namespace lab::harness
