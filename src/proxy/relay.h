#ifndef VMCTL_PROXY_RELAY_H_
#define VMCTL_PROXY_RELAY_H_

// The server's streaming pieces, generic over the stream types (TLS or plain from clients, TCP
// or the API's Unix socket upstream). Internal to server.cc and its tests.

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <variant>

#include "proxy/loop_executor.h"
#include "proxy/request_checks.h"

namespace vmctl::proxy::relay {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

inline constexpr size_t kChunk = 64 * 1024;
inline constexpr size_t kHeadRead = 4 * 1024;

enum class Outcome {
  kDone,
  kReadFailed,   // the side the body comes from broke off (or sent a malformed body)
  kWriteFailed,  // the side it goes to did
};

// Reads one request head into `parser`, through ScanRequestHead's stricter framing. The first
// byte may take `idle` (keep-alive), the whole head `header_timeout` from its first byte.
// Returns nothing when the client closed or timed out between requests, a Refusal for a bad or
// oversized head (then the connection must close), else the parser holds the head.
struct HeadRead {
  bool closed = false;
  std::optional<Refusal> refusal;
};
template <class Stream>
Task<HeadRead> ReadHead(Stream& stream, beast::flat_buffer& buffer,
                        http::request_parser<http::buffer_body>& parser, size_t header_limit,
                        std::chrono::milliseconds idle, std::chrono::milliseconds header_timeout) {
  auto& lowest = beast::get_lowest_layer(stream);
  bool started = buffer.size() > 0;
  if (started) lowest.expires_after(header_timeout);
  for (;;) {
    std::string_view bytes(static_cast<const char*>(buffer.data().data()), buffer.size());
    auto scan = ScanRequestHead(bytes);
    if (auto* refusal = std::get_if<Refusal>(&scan)) co_return HeadRead{false, *refusal};
    auto head = std::get<HeadScan>(scan);
    buffer.consume(head.skipped);
    if (head.length > 0) {
      beast::error_code ec;
      parser.put(net::buffer(buffer.data().data(), head.length), ec);
      buffer.consume(head.length);
      if (ec || !parser.is_header_done()) {
        co_return HeadRead{false, Refusal{http::status::bad_request, ec ? ec.message() : "bad"}};
      }
      co_return HeadRead{};
    }
    if (buffer.size() >= header_limit) {
      co_return HeadRead{false, Refusal{http::status::request_header_fields_too_large,
                                        "the request head is too large"}};
    }
    if (!started) lowest.expires_after(idle);
    // A few KiB at a time: what the buffer grows to stays with the connection while it idles,
    // and most heads are far smaller than the limit.
    auto [ec, n] = co_await stream.async_read_some(
        buffer.prepare(std::min(kHeadRead, header_limit - buffer.size())), kTuple);
    if (ec) co_return HeadRead{true, std::nullopt};
    buffer.commit(n);
    if (!started) {
      started = true;
      lowest.expires_after(header_timeout);
    }
  }
}

// Moves a message body from `in` (parsed by `parser`, its head already read) to `out` through
// the serializer `sr` (a head it has not written yet goes with the first chunk), `kChunk` bytes
// at a time: constant memory for any size.
// Every read and write may take `idle`. Nothing to call for a message whose parser is done
// after its head: its serializer has nothing left to write.
template <bool isRequest, class In, class Out>
Task<Outcome> RelayBody(In& in, beast::flat_buffer& in_buffer,
                        http::parser<isRequest, http::buffer_body>& parser, Out& out,
                        http::serializer<isRequest, http::buffer_body>& sr,
                        std::chrono::milliseconds idle) {
  // Not in the frame: a frame that large is a large allocation (the slow kind for malloc).
  auto chunk = std::make_unique_for_overwrite<char[]>(kChunk);
  auto& body = parser.get().body();
  do {
    if (!parser.is_done()) {
      body.data = chunk.get();
      body.size = kChunk;
      beast::get_lowest_layer(in).expires_after(idle);
      auto [ec, n] = co_await http::async_read_some(in, in_buffer, parser, kTuple);
      if (ec && ec != http::error::need_buffer) co_return Outcome::kReadFailed;
      body.size = kChunk - body.size;
      // No data at all must be a null buffer: an empty one would serialize as the last chunk.
      body.data = body.size > 0 ? chunk.get() : nullptr;
      body.more = !parser.is_done();
    } else {
      body.data = nullptr;
      body.size = 0;
      body.more = false;
    }
    beast::get_lowest_layer(out).expires_after(idle);
    auto [ec, n] = co_await http::async_write(out, sr, kTuple);
    if (ec && ec != http::error::need_buffer) co_return Outcome::kWriteFailed;
  } while (!parser.is_done() || !sr.is_done());
  co_return Outcome::kDone;
}

// Copies raw bytes one way until `from` ends, then shuts both sockets so the other direction
// ends too.
template <class From, class To>
Task<void> Pump(From& from, To& to, int from_fd, int to_fd) {
  std::array<char, 16 * 1024> chunk;
  for (;;) {
    auto [ec, n] = co_await from.async_read_some(net::buffer(chunk), kTuple);
    if (ec) break;
    auto [wec, written] = co_await net::async_write(to, net::buffer(chunk.data(), n), kTuple);
    if (wec) break;
  }
  ::shutdown(from_fd, SHUT_RDWR);
  ::shutdown(to_fd, SHUT_RDWR);
}

// After a 101: the bytes each side sent beyond the HTTP exchange first, then both directions at
// once until either side closes (WebSocket frames pass untouched).
template <class A, class B>
Task<void> Tunnel(A& a, beast::flat_buffer& a_buffer, B& b, beast::flat_buffer& b_buffer) {
  using namespace net::experimental::awaitable_operators;
  beast::get_lowest_layer(a).expires_never();
  beast::get_lowest_layer(b).expires_never();
  if (a_buffer.size() > 0) {
    auto [ec, n] = co_await net::async_write(b, a_buffer.data(), kTuple);
    if (ec) co_return;
    a_buffer.consume(n);
  }
  if (b_buffer.size() > 0) {
    auto [ec, n] = co_await net::async_write(a, b_buffer.data(), kTuple);
    if (ec) co_return;
    b_buffer.consume(n);
  }
  int a_fd = beast::get_lowest_layer(a).socket().native_handle();
  int b_fd = beast::get_lowest_layer(b).socket().native_handle();
  co_await (Pump(a, b, a_fd, b_fd) && Pump(b, a, b_fd, a_fd));
}

}  // namespace vmctl::proxy::relay

#endif  // VMCTL_PROXY_RELAY_H_
