#ifndef VMCTL_PROXY_TLS_STREAM_H_
#define VMCTL_PROXY_TLS_STREAM_H_

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "proxy/loop_executor.h"

namespace vmctl::proxy {

// An allocator for the handlers of waits that may last long (a parked connection's next request,
// a deadline): each takes what it needs. With the default one Asio hands out a recycled block,
// whatever size an earlier operation left (often 600 bytes for a 200-byte wait), and with
// thousands of idle connections that is most of what they cost beside OpenSSL.
template <class T>
struct ExactAllocator {
  using value_type = T;
  ExactAllocator() = default;
  template <class U>
  ExactAllocator(const ExactAllocator<U>&) {}  // NOLINT: allocators convert implicitly
  T* allocate(size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, size_t n) { std::allocator<T>().deallocate(p, n); }
  bool operator==(const ExactAllocator&) const { return true; }
};

// The server side of a TLS connection with OpenSSL on the socket itself, as nginx runs it:
// OpenSSL reads and writes the non-blocking socket, and Asio only waits for the readiness it
// asks for. asio::ssl::stream instead keeps four buffers of about 17 KiB per connection for its
// whole life (two in stream_core, a BIO pair's two) and copies every record through them; here
// SSL_MODE_RELEASE_BUFFERS leaves an idle connection with no buffer at all, and a write of a
// response head and body is one record and one send(2) (buffers are coalesced as in
// beast::flat_stream).
//
// An Asio AsyncReadStream and AsyncWriteStream (Beast's HTTP operations take it), with a
// deadline like beast::tcp_stream's: expires_after arms it for every operation that follows, and
// operations pending or started after it passes end with beast::error::timeout (the socket is
// closed then). Lifetime: the stream owns the socket and the SSL object; operations must have
// ended before it is destroyed. Threading: like any Asio socket, one read and one write may be
// outstanding at once; its executor must run on a single thread (a readiness wait may otherwise
// miss the wake-up another thread took).
//
// Errors: net::error::eof for the peer's close_notify, net::ssl::error::stream_truncated for an
// EOF without one, beast::error::timeout, the system error of a failed send/recv, or an
// OpenSSL error (net::error::get_ssl_category()) for a failed handshake or a bad record.
class TlsStream {
 public:
  using executor_type = LoopExecutor;
  using Clock = std::chrono::steady_clock;

  // `context` is the one connections start in (the servername callback may move them to
  // another). If OpenSSL cannot make a connection object (out of memory), every operation ends
  // with net::error::no_memory.
  TlsStream(TcpSocket socket, SSL_CTX* context);
  ~TlsStream();
  TlsStream(TlsStream&&) = default;
  TlsStream& operator=(TlsStream&&) = default;

  executor_type get_executor();
  SSL* native_handle();  // null when OpenSSL could not make the connection
  TcpSocket& socket();

  // The deadline of every operation from now on, as beast::tcp_stream's.
  void expires_after(Clock::duration after) { SetDeadline(Clock::now() + after); }
  void expires_never() { SetDeadline(Clock::time_point::max()); }

  // Completes with (error_code) once the server side of the handshake is done.
  template <class Token>
  auto async_handshake(Token&& token) {
    return Run<void(boost::beast::error_code)>(HandshakeStep{}, std::forward<Token>(token));
  }
  // Sends close_notify and waits for the peer's, then completes with (error_code).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return Run<void(boost::beast::error_code)>(ShutdownStep{}, std::forward<Token>(token));
  }
  // Completes with (error_code) once a read would find something: decrypted bytes held by
  // OpenSSL or bytes on the socket. Lets an idle connection wait without a buffer, and with
  // less than the other operations keep while they wait: one socket operation holding the
  // handler (with its allocator and executor), no composed operation around it.
  template <class Token>
  auto async_wait_readable(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code)>(
        [](auto handler, State* state) { WaitReadable(*state, std::move(handler)); }, token,
        state_.get());
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return Run<void(boost::beast::error_code, size_t)>(ReadStep{FirstBuffer(buffers)},
                                                       std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return Run<void(boost::beast::error_code, size_t)>(WriteStep(buffers),
                                                       std::forward<Token>(token));
  }

 private:
  struct State;

  // What one attempt of an OpenSSL call asks for next.
  enum class Next { kDone, kWantRead, kWantWrite };
  struct Attempt {
    Next next = Next::kDone;
    boost::beast::error_code ec;
    size_t bytes = 0;
  };

  // Each step is one OpenSSL call, retried after every readiness wait it asks for.
  struct HandshakeStep {
    Attempt operator()(State& state);
  };
  struct ShutdownStep {
    Attempt operator()(State& state);
  };
  struct ReadStep {
    boost::asio::mutable_buffer buffer;
    Attempt operator()(State& state);
  };
  // Holds a coalesced copy when the sequence has more than one buffer: OpenSSL then writes one
  // record, and a retry after a wait gets the same bytes again, as SSL_write requires.
  struct WriteStep {
    template <class ConstBuffers>
    explicit WriteStep(const ConstBuffers& buffers);
    boost::asio::const_buffer buffer;
    std::vector<char> coalesced;
    Attempt operator()(State& state);
  };

  template <class Signature, class Step>
  struct Op;

  // The outcome of an OpenSSL call on `ssl` that returned `ret` (not success).
  static Attempt Outcome(SSL* ssl, int ret);

  template <class Signature, class Step, class Token>
  auto Run(Step step, Token&& token);

  static boost::asio::mutable_buffer FirstBuffer(const auto& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      boost::asio::mutable_buffer buffer(*it);
      if (buffer.size() > 0) return buffer;
    }
    return {};
  }

  void SetDeadline(Clock::time_point deadline);
  static void Arm(const std::shared_ptr<State>& state, Clock::time_point at);
  static void OnTimer(const std::shared_ptr<State>& state);
  // The error a readiness wait ended with, as the operation reports it.
  static boost::beast::error_code WaitError(const State& state, boost::beast::error_code ec);
  // A readiness peek's outcome as a wait's: an end of stream is readable, for OpenSSL to read
  // (a close_notify before it, or none).
  static boost::beast::error_code PeekedReadable(boost::beast::error_code ec) {
    return ec == boost::asio::error::eof ? boost::beast::error_code() : ec;
  }
  static void Wait(State& state, Next next, auto&& handler);
  template <class Handler>
  static void WaitReadable(State& state, Handler handler);

  // Shared with the deadline timer's handler, which may run after the stream is gone.
  std::shared_ptr<State> state_;
};

struct TlsStream::State {
  State(TcpSocket s, SSL* c) : socket(std::move(s)), timer(socket.get_executor()), ssl(c) {}
  ~State();
  TcpSocket socket;
  Timer timer;
  SSL* ssl;
  Clock::time_point deadline = Clock::time_point::max();
  // What the timer is set for: it only ever moves the deadline later lazily, so that the many
  // expires_after calls of a request cost no timer operation.
  Clock::time_point armed = Clock::time_point::max();
  int waiting = 0;  // operations waiting for readiness: a deadline passing closes only then
  bool timed_out = false;
  char peeked = 0;  // where a readiness peek puts its byte, which stays on the socket
};

inline TlsStream::executor_type TlsStream::get_executor() { return state_->socket.get_executor(); }
inline SSL* TlsStream::native_handle() { return state_->ssl; }
inline TcpSocket& TlsStream::socket() { return state_->socket; }

template <class ConstBuffers>
TlsStream::WriteStep::WriteStep(const ConstBuffers& buffers) {
  // One record holds at most 16 KiB: coalescing more would only copy more. One pass: stepping
  // through a serializer's buffer sequence (a buffer per header field) costs more than the copy.
  constexpr size_t kRecord = 16 * 1024;
  auto append = [&](boost::asio::const_buffer one) {
    const char* data = static_cast<const char*>(one.data());
    coalesced.insert(coalesced.end(), data,
                     data + std::min(one.size(), kRecord - coalesced.size()));
  };
  for (auto it = boost::asio::buffer_sequence_begin(buffers);
       it != boost::asio::buffer_sequence_end(buffers); ++it) {
    boost::asio::const_buffer one(*it);
    if (one.size() == 0) continue;
    if (buffer.size() == 0) {
      buffer = one;
      if (buffer.size() >= kRecord) return;
      continue;
    }
    if (coalesced.empty()) {
      coalesced.reserve(kRecord);
      append(buffer);
    }
    append(one);
    if (coalesced.size() == kRecord) break;
  }
  if (!coalesced.empty()) buffer = boost::asio::buffer(coalesced);
}

// Runs `step` until it is done, waiting for the readiness it asks for in between. A step that
// is done at once completes through a post: a handler must not run inside the initiating call.
template <class Signature, class Step>
struct TlsStream::Op {
  State& state;
  Step step;
  bool started = false;
  bool posted = false;
  Attempt result;

  // After a readable peek.
  template <class Self>
  void operator()(Self& self, boost::beast::error_code ec, size_t) {
    (*this)(self, PeekedReadable(ec));
  }
  template <class Self>
  void operator()(Self& self, boost::beast::error_code ec = {}) {
    if (posted) return Complete(self);
    bool first = !started;
    if (started) --state.waiting;
    started = true;
    if (ec) {
      result = Attempt{Next::kDone, WaitError(state, ec)};
    } else if (state.timed_out) {
      result = Attempt{Next::kDone, boost::beast::error::timeout};
    } else if (state.ssl == nullptr) {
      result = Attempt{Next::kDone, boost::asio::error::no_memory};
    } else {
      result = step(state);
    }
    if (result.next != Next::kDone) return Wait(state, result.next, std::move(self));
    if (!first) return Complete(self);
    posted = true;
    boost::asio::post(state.socket.get_executor(), std::move(self));
  }

  template <class Self>
  void Complete(Self& self) {
    if constexpr (std::is_same_v<Signature, void(boost::beast::error_code)>) {
      self.complete(result.ec);
    } else {
      self.complete(result.ec, result.bytes);
    }
  }
};

template <class Signature, class Step, class Token>
auto TlsStream::Run(Step step, Token&& token) {
  return boost::asio::async_compose<Token, Signature>(Op<Signature, Step>{*state_, std::move(step)},
                                                      token, state_->socket);
}

void TlsStream::Wait(State& state, Next next, auto&& handler) {
  ++state.waiting;
  if (next == Next::kWantWrite) {
    state.socket.async_wait(boost::asio::socket_base::wait_write,
                            std::forward<decltype(handler)>(handler));
    return;
  }
  // Readable is a one-byte peek rather than async_wait(wait_read): Asio tries a receive first and
  // then waits on the socket's edge-triggered registration, while a wait it cannot try re-arms
  // that registration with epoll_ctl each time (a system call per request).
  state.socket.async_receive(boost::asio::buffer(&state.peeked, 1),
                             boost::asio::socket_base::message_peek,
                             std::forward<decltype(handler)>(handler));
}

template <class Handler>
void TlsStream::WaitReadable(State& state, Handler handler) {
  auto executor = boost::asio::get_associated_executor(handler, state.socket.get_executor());
  if (state.timed_out || state.ssl == nullptr || SSL_has_pending(state.ssl)) {
    boost::beast::error_code ec;
    if (state.timed_out) ec = boost::beast::error::timeout;
    if (state.ssl == nullptr) ec = boost::asio::error::no_memory;
    boost::asio::post(executor, boost::asio::append(std::move(handler), ec));
    return;
  }
  auto allocator = boost::asio::get_associated_allocator(handler);
  ++state.waiting;
  // The same peek as Wait's.
  state.socket.async_receive(
      boost::asio::buffer(&state.peeked, 1), boost::asio::socket_base::message_peek,
      boost::asio::bind_executor(
          executor,
          boost::asio::bind_allocator(allocator, [&state, handler = std::move(handler)](
                                                     boost::beast::error_code ec, size_t) mutable {
            --state.waiting;
            std::move(handler)(WaitError(state, PeekedReadable(ec)));
          })));
}

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_TLS_STREAM_H_
