#include "common/http/send_batch.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace lab::http {
namespace {

/// One loopback TCP connection: `writer` is the accepted side, `reader` the client's.
struct Pair {
  int writer = -1;
  int reader = -1;
};

/// `n` loopback TCP connections on a port the OS picks; the sockets close with the object.
class Pairs {
 public:
  explicit Pairs(int n) {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener, 1024) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "listen: " << std::strerror(errno);
    }
    for (int i = 0; i < n; ++i) {
      Pair p;
      p.reader = ::socket(AF_INET, SOCK_STREAM, 0);
      if (::connect(p.reader, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ADD_FAILURE() << "connect: " << std::strerror(errno);
      }
      p.writer = ::accept(listener, nullptr, nullptr);
      ::fcntl(p.writer, F_SETFL, ::fcntl(p.writer, F_GETFL) | O_NONBLOCK);
      ::fcntl(p.reader, F_SETFL, ::fcntl(p.reader, F_GETFL) | O_NONBLOCK);
      pairs_.push_back(p);
    }
    ::close(listener);
  }
  ~Pairs() {
    for (const Pair& p : pairs_) {
      ::close(p.writer);
      ::close(p.reader);
    }
  }
  Pairs(const Pairs&) = delete;
  Pairs& operator=(const Pairs&) = delete;

  Pair& operator[](std::size_t i) { return pairs_[i]; }
  std::size_t size() const { return pairs_.size(); }

 private:
  std::vector<Pair> pairs_;
};

/// Everything readable on `fd` now.
std::string drain(int fd) {
  std::string out;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n <= 0) return out;
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

/// Records the one result it is told.
struct Recorder final : SendBatch::Sink {
  std::optional<std::size_t> sent;
  std::size_t queued = 0;
  boost::system::error_code ec;
  int calls = 0;
  void on_sent(std::string_view bytes, std::size_t n, const boost::system::error_code& e) noexcept override {
    ++calls;
    queued = bytes.size();
    sent = n;
    ec = e;
  }
};

std::string message_for(std::size_t i) { return "data: token " + std::to_string(i) + "\n\n"; }

/// Each test runs with the kernel path this machine offers (io_uring here) and with sendmsg.
class SendBatchTest : public ::testing::TestWithParam<SocketCalls::Mode> {};

TEST_P(SendBatchTest, SendsToManySocketsAndTellsEachSink) {
  // 300 connections (600 descriptors, under the usual limit of 1,024): more than one
  // submission queue (256) of sends.
  Pairs pairs(300);
  SendBatch batch(GetParam());
  std::vector<Recorder> sinks(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const std::string message = message_for(i);
    batch.add(pairs[i].writer, {"chunk:", message}, sinks[i]);
  }
  EXPECT_EQ(batch.size(), pairs.size());
  EXPECT_EQ(batch.submit(), pairs.size());
  EXPECT_TRUE(batch.empty());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const std::string expected = "chunk:" + message_for(i);
    EXPECT_EQ(sinks[i].calls, 1) << i;
    EXPECT_FALSE(sinks[i].ec) << i << ": " << sinks[i].ec.message();
    EXPECT_EQ(sinks[i].queued, expected.size()) << i;
    EXPECT_EQ(sinks[i].sent, expected.size()) << i;
    EXPECT_EQ(drain(pairs[i].reader), expected) << i;
  }
  EXPECT_EQ(batch.sends(), pairs.size());
  if (batch.uses_io_uring()) {
    EXPECT_EQ(batch.calls(), 2u);  // 256 + 44: one system call per submission queue
  } else {
    EXPECT_EQ(batch.calls(), pairs.size());
  }
  EXPECT_EQ(batch.submit(), 0u);  // nothing queued: no call
  EXPECT_EQ(batch.sends(), pairs.size());
}

TEST_P(SendBatchTest, AFullSocketTakesWhatItCanAndNeverWaits) {
  Pairs pairs(1);
  const int small = 4096;
  ::setsockopt(pairs[0].writer, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  ::setsockopt(pairs[0].reader, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  SendBatch batch(GetParam());
  const std::string big(1 << 20, 'x');
  // The reader never reads: sends are taken in part, then not at all, and none waits.
  bool partial = false;
  std::optional<std::size_t> last;
  for (int i = 0; i < 1000 && last != 0u; ++i) {
    Recorder sink;
    batch.add(pairs[0].writer, {big}, sink);
    batch.submit();
    ASSERT_TRUE(sink.sent.has_value());
    ASSERT_FALSE(sink.ec) << sink.ec.message();
    EXPECT_LT(*sink.sent, big.size());
    partial = partial || (*sink.sent > 0 && *sink.sent < big.size());
    last = sink.sent;
  }
  EXPECT_TRUE(partial);
  EXPECT_EQ(last, 0u);  // full: nothing taken, and that is not an error
}

TEST_P(SendBatchTest, AFailedSocketIsAnErrorForItsSinkAlone) {
  Pairs pairs(3);
  ::shutdown(pairs[1].writer, SHUT_WR);  // sending on it now fails with EPIPE
  SendBatch batch(GetParam());
  std::vector<Recorder> sinks(3);
  for (std::size_t i = 0; i < 3; ++i) batch.add(pairs[i].writer, {message_for(i)}, sinks[i]);
  Recorder bad_fd;
  batch.add(-1, {"nowhere"}, bad_fd);
  EXPECT_EQ(batch.submit(), 4u);
  EXPECT_EQ(sinks[1].ec, boost::system::errc::broken_pipe) << sinks[1].ec.message();
  EXPECT_EQ(sinks[1].sent, 0u);
  EXPECT_EQ(bad_fd.ec, boost::system::errc::bad_file_descriptor) << bad_fd.ec.message();
  for (std::size_t i : {0u, 2u}) {
    EXPECT_FALSE(sinks[i].ec) << i;
    EXPECT_EQ(drain(pairs[i].reader), message_for(i)) << i;
  }
}

TEST_P(SendBatchTest, ASinkThatQueuesAgainGoesInTheNextSubmit) {
  Pairs pairs(1);
  SendBatch batch(GetParam());
  struct Again final : SendBatch::Sink {
    SendBatch* batch = nullptr;
    int fd = -1;
    int told = 0;
    void on_sent(std::string_view, std::size_t, const boost::system::error_code&) noexcept override {
      if (++told < 3) batch->add(fd, {"x"}, *this);
    }
  } again;
  again.batch = &batch;
  again.fd = pairs[0].writer;
  batch.add(pairs[0].writer, {"x"}, again);
  EXPECT_EQ(batch.submit(), 1u);
  EXPECT_EQ(again.told, 1);
  EXPECT_EQ(batch.size(), 1u);  // queued from the sink, not sent yet
  EXPECT_EQ(batch.submit(), 1u);
  EXPECT_EQ(batch.submit(), 1u);
  EXPECT_EQ(batch.submit(), 0u);
  EXPECT_EQ(again.told, 3);
  EXPECT_EQ(drain(pairs[0].reader), "xxx");
}

TEST_P(SendBatchTest, SocketCallsReceiveWhatIsThereAndNeverWait) {
  // The reading side of SocketCalls (what lab_mock_llm_bench uses): data, nothing yet, EOF.
  Pairs pairs(3);
  ASSERT_EQ(::send(pairs[0].writer, "hello", 5, 0), 5);
  ::shutdown(pairs[2].writer, SHUT_WR);
  SocketCalls calls(GetParam());
  char buffers[3][64];
  std::vector<SocketCall> list;
  for (std::size_t i = 0; i < 3; ++i) {
    list.push_back({pairs[i].reader, SocketCall::Kind::kRecv, buffers[i], sizeof(buffers[i]), 0});
  }
  calls.run(list);
  EXPECT_EQ(list[0].result, 5);
  EXPECT_EQ(std::string_view(buffers[0], 5), "hello");
  EXPECT_EQ(list[1].result, -EAGAIN);  // nothing sent: answered at once
  EXPECT_EQ(list[2].result, 0);        // the peer shut down: end of stream
  EXPECT_EQ(calls.calls(), 3u);
  EXPECT_EQ(calls.system_calls(), calls.uses_io_uring() ? 1u : 3u);
}

INSTANTIATE_TEST_SUITE_P(Modes, SendBatchTest,
                         ::testing::Values(SocketCalls::Mode::kAuto, SocketCalls::Mode::kOneByOne),
                         [](const auto& info) {
                           return info.param == SocketCalls::Mode::kAuto ? std::string("Auto")
                                                                       : std::string("OneByOne");
                         });

TEST(SendBatch, UsesIoUringUnlessTheEnvironmentSaysNo) {
  // This machine's kernel has io_uring; the test says so when it does not (the fallback is then
  // what every other test here covers).
  if (!SendBatch().uses_io_uring()) GTEST_SKIP() << "io_uring cannot be set up here";
  EXPECT_FALSE(SendBatch(SocketCalls::Mode::kOneByOne).uses_io_uring());
  ::setenv("AGENTLAB_IO_URING", "0", 1);
  const bool with_zero = SendBatch().uses_io_uring();
  ::setenv("AGENTLAB_IO_URING", "1", 1);
  const bool with_one = SendBatch().uses_io_uring();
  ::unsetenv("AGENTLAB_IO_URING");
  EXPECT_FALSE(with_zero);
  EXPECT_TRUE(with_one);
}

}  // namespace
}  // namespace lab::http
