// TlsStream against a real OpenSSL client (Asio's ssl::stream, blocking) on loopback, with a
// self-signed certificate made with the openssl CLI.

#include "proxy/tls_stream.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

namespace vmctl::proxy {
namespace {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::beast::error_code;
using namespace std::chrono_literals;

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmctl-tls-stream-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    std::string command = fmt::format(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN=test.localhost -keyout {0}/key.pem -out {0}/cert.pem >/dev/null 2>&1",
        dir_.string());
    ASSERT_EQ(std::system(command.c_str()), 0);
    server_ctx_ = SSL_CTX_new(TLS_server_method());
    ASSERT_EQ(SSL_CTX_use_certificate_chain_file(server_ctx_, (dir_ / "cert.pem").c_str()), 1);
    ASSERT_EQ(
        SSL_CTX_use_PrivateKey_file(server_ctx_, (dir_ / "key.pem").c_str(), SSL_FILETYPE_PEM), 1);
    acceptor_.open(tcp::v4());
    acceptor_.bind({net::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
  }
  void TearDown() override {
    SSL_CTX_free(server_ctx_);
    std::filesystem::remove_all(dir_);
  }

  // Runs `serve` on the accepted connection in an event loop of its own thread, while `client`
  // runs on this thread with a connected, handshaken client; returns serve's result.
  template <class Serve, class Client>
  auto Run(Serve serve, Client client) {
    using Result = decltype(serve(std::declval<TlsStream&>()))::value_type;
    std::promise<Result> result;
    net::co_spawn(
        io_,
        [&]() -> Task<void> {
          auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
          EXPECT_FALSE(ec) << ec.message();
          TlsStream stream(std::move(socket), server_ctx_);
          stream.expires_after(10s);
          auto [handshake] = co_await stream.async_handshake(kTuple);
          EXPECT_FALSE(handshake) << handshake.message();
          result.set_value(co_await serve(stream));
        },
        net::detached);
    std::thread loop([&] { io_.run(); });
    {
      net::io_context client_io;
      ssl::context ctx(ssl::context::tls_client);
      ssl::stream<tcp::socket> stream(client_io, ctx);
      stream.next_layer().connect(acceptor_.local_endpoint());
      stream.handshake(ssl::stream_base::client);
      client(stream);
    }
    auto value = result.get_future().get();
    loop.join();
    return value;
  }

  std::filesystem::path dir_;
  SSL_CTX* server_ctx_ = nullptr;
  net::io_context io_;
  TcpAcceptor acceptor_{io_};
};

std::string ReadAll(ssl::stream<tcp::socket>& stream, error_code& ec) {
  std::string data;
  char chunk[16384];
  for (;;) {
    size_t n = stream.read_some(net::buffer(chunk), ec);
    if (ec) return data;
    data.append(chunk, n);
  }
}

TEST_F(TlsStreamTest, EchoesAndClosesWithCloseNotify) {
  std::string received;
  error_code client_end;
  error_code shut = Run(
      [](TlsStream& stream) -> Task<error_code> {
        char buffer[64];
        auto [ec, n] = co_await stream.async_read_some(net::buffer(buffer), kTuple);
        EXPECT_FALSE(ec) << ec.message();
        std::string word(buffer, n);
        // Three buffers, one record: the client reads them as one.
        std::array<net::const_buffer, 3> parts{
            net::buffer(word), net::buffer(std::string_view(" and ")), net::buffer(word)};
        auto [wec, written] = co_await net::async_write(stream, parts, kTuple);
        EXPECT_FALSE(wec) << wec.message();
        EXPECT_EQ(written, 2 * n + 5);
        auto [sec] = co_await stream.async_shutdown(kTuple);
        co_return sec;
      },
      [&](ssl::stream<tcp::socket>& client) {
        net::write(client, net::buffer(std::string_view("ping")));
        received = ReadAll(client, client_end);
        error_code ignored;
        client.shutdown(ignored);
      });
  EXPECT_EQ(received, "ping and ping");
  EXPECT_EQ(client_end, net::error::eof) << client_end.message();
  EXPECT_FALSE(shut) << shut.message();
}

TEST_F(TlsStreamTest, LargeWriteWaitsForASlowReader) {
  constexpr size_t kSize = 8 << 20;
  std::string sent(kSize, '\0');
  for (size_t i = 0; i < kSize; ++i) sent[i] = static_cast<char>(i * 7 + i / 4096);
  std::string received;
  error_code written = Run(
      [&](TlsStream& stream) -> Task<error_code> {
        auto [ec, n] = co_await net::async_write(stream, net::buffer(sent), kTuple);
        EXPECT_EQ(n, kSize);
        co_return ec;
      },
      [&](ssl::stream<tcp::socket>& client) {
        std::this_thread::sleep_for(300ms);  // the socket's buffers fill: the server must wait
        error_code ec;
        char chunk[16384];
        while (received.size() < kSize) {
          size_t n = client.read_some(net::buffer(chunk), ec);
          if (ec) break;
          received.append(chunk, n);
        }
      });
  EXPECT_FALSE(written) << written.message();
  EXPECT_TRUE(received == sent);
}

TEST_F(TlsStreamTest, ReadTimesOutAtTheDeadline) {
  auto [ec, open] = Run(
      [](TlsStream& stream) -> Task<std::pair<error_code, bool>> {
        stream.expires_after(100ms);
        char buffer[64];
        auto [ec, n] = co_await stream.async_read_some(net::buffer(buffer), kTuple);
        co_return std::pair{ec, stream.socket().is_open()};
      },
      [](ssl::stream<tcp::socket>& client) {
        error_code ignored;
        ReadAll(client, ignored);  // until the server closes
      });
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_FALSE(open);
}

// As with beast::tcp_stream, a deadline only ends operations: one that passes while nothing
// waits leaves the connection alone, and a new deadline applies to what follows.
TEST_F(TlsStreamTest, DeadlinePassingBetweenOperationsClosesNothing) {
  std::string read = Run(
      [](TlsStream& stream) -> Task<std::string> {
        stream.expires_after(20ms);
        net::steady_timer pause(stream.get_executor(), 200ms);
        co_await pause.async_wait(kTuple);
        stream.expires_after(5s);
        char buffer[64];
        auto [ec, n] = co_await stream.async_read_some(net::buffer(buffer), kTuple);
        EXPECT_FALSE(ec) << ec.message();
        co_return std::string(buffer, n);
      },
      [](ssl::stream<tcp::socket>& client) {
        std::this_thread::sleep_for(400ms);
        net::write(client, net::buffer(std::string_view("late")));
      });
  EXPECT_EQ(read, "late");
}

TEST_F(TlsStreamTest, EofWithoutCloseNotifyIsTruncation) {
  error_code ec = Run(
      [](TlsStream& stream) -> Task<error_code> {
        char buffer[64];
        auto [ec, n] = co_await stream.async_read_some(net::buffer(buffer), kTuple);
        co_return ec;
      },
      [](ssl::stream<tcp::socket>& client) {
        // A FIN without close_notify; closing outright could reset the connection instead, as
        // the server's session tickets lie unread in the client's socket.
        client.next_layer().shutdown(tcp::socket::shutdown_send);
        std::this_thread::sleep_for(200ms);
      });
  EXPECT_EQ(ec, ssl::error::stream_truncated) << ec.message();
}

TEST_F(TlsStreamTest, WaitReadableConsumesNothing) {
  std::string read = Run(
      [](TlsStream& stream) -> Task<std::string> {
        auto [wait] = co_await stream.async_wait_readable(kTuple);
        EXPECT_FALSE(wait) << wait.message();
        std::string all;
        char buffer[64];
        while (all.size() < 5) {
          auto [ec, n] = co_await stream.async_read_some(net::buffer(buffer), kTuple);
          if (ec) break;
          all.append(buffer, n);
        }
        co_return all;
      },
      [](ssl::stream<tcp::socket>& client) {
        std::this_thread::sleep_for(100ms);
        net::write(client, net::buffer(std::string_view("hello")));
        std::this_thread::sleep_for(100ms);
      });
  EXPECT_EQ(read, "hello");
}

}  // namespace
}  // namespace vmctl::proxy
