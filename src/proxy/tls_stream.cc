#include "proxy/tls_stream.h"

#include <sys/socket.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cerrno>

namespace vmctl::proxy {
namespace {

namespace net = boost::asio;
using boost::beast::error_code;

// A socket BIO of our own: OpenSSL's writes with write(2), which raises SIGPIPE on a connection
// the peer reset, in every process that has not ignored it (tests, benchmarks).
int BioWrite(BIO* bio, const char* data, int size) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::send(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

int BioRead(BIO* bio, char* data, int size) {
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  BIO_clear_retry_flags(bio);
  ssize_t n = ::recv(fd, data, static_cast<size_t>(size), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_read(bio);
  }
  return static_cast<int>(n);
}

long BioControl(BIO*, int command, long, void*) { return command == BIO_CTRL_FLUSH ? 1 : 0; }

BIO_METHOD* SocketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vmctl socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioControl);
    return m;
  }();
  return method;
}

SSL* NewConnection(SSL_CTX* context, int fd) {
  SSL* ssl = SSL_new(context);
  if (ssl == nullptr) return nullptr;
  BIO* bio = BIO_new(SocketMethod());
  if (bio == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_accept_state(ssl);
  SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One recv(2) takes whatever has arrived instead of a record header and then its body.
  SSL_set_read_ahead(ssl, 1);
  return ssl;
}

}  // namespace

TlsStream::TlsStream(TcpSocket socket, SSL_CTX* context) {
  error_code ec;
  socket.non_blocking(true, ec);
  // OpenSSL sends each handshake flight and session ticket on its own: with Nagle's algorithm a
  // second small send waits for the client's delayed ACK (40 ms).
  if (!ec) socket.set_option(net::ip::tcp::no_delay(true), ec);
  SSL* ssl = ec ? nullptr : NewConnection(context, socket.native_handle());
  state_ = std::make_shared<State>(std::move(socket), ssl);
}

TlsStream::~TlsStream() {
  if (!state_) return;
  // The timer's handler holds the state: cancelling lets it go; the socket closes now.
  state_->timer.cancel();
  error_code ignored;
  state_->socket.close(ignored);
}

TlsStream::State::~State() { SSL_free(ssl); }

void TlsStream::SetDeadline(Clock::time_point deadline) {
  state_->timed_out = false;
  state_->deadline = deadline;
  if (deadline < state_->armed) Arm(state_, deadline);
}

void TlsStream::Arm(const std::shared_ptr<State>& state, Clock::time_point at) {
  state->armed = at;
  state->timer.expires_at(at);
  state->timer.async_wait(net::bind_allocator(ExactAllocator<void>(), [state](error_code ec) {
    if (!ec) OnTimer(state);
  }));
}

// Deadlines moved later since the timer was set only re-arm it now, once.
void TlsStream::OnTimer(const std::shared_ptr<State>& state) {
  state->armed = Clock::time_point::max();
  if (state->deadline == Clock::time_point::max()) return;
  if (Clock::now() < state->deadline) return Arm(state, state->deadline);
  state->timed_out = true;
  if (state->waiting > 0) {
    error_code ignored;
    state->socket.close(ignored);
  }
}

error_code TlsStream::WaitError(const State& state, error_code ec) {
  if (state.timed_out) return boost::beast::error::timeout;
  return ec;
}

// OpenSSL's error queue is per thread and shared by every connection of the event loop: each
// call starts with it empty, and it is read and cleared here.
TlsStream::Attempt TlsStream::Outcome(SSL* ssl, int ret) {
  int error = SSL_get_error(ssl, ret);
  int saved_errno = errno;
  Attempt attempt;
  switch (error) {
    case SSL_ERROR_WANT_READ:
      attempt.next = Next::kWantRead;
      break;
    case SSL_ERROR_WANT_WRITE:
      attempt.next = Next::kWantWrite;
      break;
    case SSL_ERROR_ZERO_RETURN:
      attempt.ec = net::error::eof;
      break;
    case SSL_ERROR_SYSCALL:
      attempt.ec = saved_errno != 0 && ERR_peek_error() == 0
                       ? error_code(saved_errno, net::error::get_system_category())
                       : error_code(net::ssl::error::stream_truncated);
      break;
    default: {
      unsigned long e = ERR_peek_last_error();
      attempt.ec = ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING
                       ? error_code(net::ssl::error::stream_truncated)
                       : error_code(static_cast<int>(e), net::error::get_ssl_category());
      break;
    }
  }
  ERR_clear_error();
  return attempt;
}

TlsStream::Attempt TlsStream::HandshakeStep::operator()(State& state) {
  ERR_clear_error();
  errno = 0;
  int ret = SSL_do_handshake(state.ssl);
  return ret == 1 ? Attempt{} : Outcome(state.ssl, ret);
}

TlsStream::Attempt TlsStream::ShutdownStep::operator()(State& state) {
  ERR_clear_error();
  errno = 0;
  // 0: our close_notify is out, the peer's has not come yet; call again to wait for it.
  int ret = SSL_shutdown(state.ssl);
  if (ret == 0) {
    ERR_clear_error();
    ret = SSL_shutdown(state.ssl);
  }
  return ret == 1 ? Attempt{} : Outcome(state.ssl, ret);
}

TlsStream::Attempt TlsStream::ReadStep::operator()(State& state) {
  if (buffer.size() == 0) return Attempt{};
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  int ret = SSL_read_ex(state.ssl, buffer.data(), buffer.size(), &n);
  return ret == 1 ? Attempt{Next::kDone, {}, n} : Outcome(state.ssl, ret);
}

TlsStream::Attempt TlsStream::WriteStep::operator()(State& state) {
  if (buffer.size() == 0) return Attempt{};
  ERR_clear_error();
  errno = 0;
  size_t n = 0;
  int ret = SSL_write_ex(state.ssl, buffer.data(), buffer.size(), &n);
  return ret == 1 ? Attempt{Next::kDone, {}, n} : Outcome(state.ssl, ret);
}

}  // namespace vmctl::proxy
