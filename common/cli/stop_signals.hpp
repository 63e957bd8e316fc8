#pragma once
// Long-running commands (serve, mock-llm, chaos-proxy) stop on SIGINT/SIGTERM: block both in
// the calling thread before any worker thread starts (threads inherit the mask, so no thread
// is interrupted at random), then wait for one here and shut down in order.

#include <csignal>

#include <pthread.h>

namespace lab::cli {

/// Blocks SIGINT and SIGTERM in this thread (and the threads it starts afterwards).
inline sigset_t block_stop_signals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

/// Waits for SIGINT or SIGTERM (after block_stop_signals) and returns which.
inline int wait_for_stop_signal(const sigset_t& stop_signals) {
  int signal = 0;
  sigwait(&stop_signals, &signal);
  return signal;
}

}  // namespace lab::cli
