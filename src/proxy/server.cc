#include "proxy/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/thread_pool.hpp>
#include <charconv>
#include <span>
#include <thread>

#include "model/host_name.h"
#include "proxy/forward_headers.h"
#include "proxy/loop_executor.h"
#include "proxy/pages.h"
#include "proxy/relay.h"
#include "proxy/request_checks.h"
#include "proxy/tls_stream.h"
#include "proxy/tracker.h"
#include "proxy/upstream_pool.h"
#include "tls/client_hello.h"

namespace vmctl::proxy {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using relay::Outcome;
using UnixStream = beast::basic_stream<net::local::stream_protocol, LoopExecutor>;
using RequestParser = http::request_parser<http::buffer_body>;

// How long an ending TLS connection waits for the client's close_notify after sending its own.
constexpr std::chrono::seconds kCloseNotifyTimeout{1};

template <class Stream>
int FdOf(Stream& stream) {
  return beast::get_lowest_layer(stream).socket().native_handle();
}

bool WantsHtml(const http::request_header<>& head) {
  return head[http::field::accept].find("text/html") != std::string_view::npos;
}

// Whether a request may go out twice: the app acting on it twice does no harm, and its body
// (it has none) need not have been kept.
bool RetrySafe(const RequestParser& parser) {
  http::verb method = parser.get().method();
  return parser.is_done() &&
         (method == http::verb::get || method == http::verb::head || method == http::verb::options);
}

// How one forwarded exchange ended.
enum class Exchanged {
  kKeepAlive,  // the client may send the next request
  kClose,      // the client connection must end (something was cut off)
  kRetry,      // a pooled upstream connection failed before the app could act: try a new one
  kRefused,    // the upstream broke off before its response: 502
  kTimedOut,   // no response head in time: 504
};

struct ExchangeResult {
  Exchanged how = Exchanged::kClose;
  bool upstream_reusable = false;
  bool client_body_pending = false;  // a 502/504 must close: the request body was not all read
};

}  // namespace

Result<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(
        fmt::format("bad listen address '{}' (expected ADDR:PORT, e.g. 127.0.0.1:8443)", text));
  };
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad();
  }
  beast::error_code address_ec;
  net::ip::make_address(std::string(host), address_ec);
  if (address_ec) return bad();
  return std::pair{std::string(host), static_cast<uint16_t>(value)};
}

struct Server::Impl {
  Impl(ProxyOptions o, tls::CertificateSource& c, Access& a, AcmeHttpChallenges* ch)
      : options(std::move(o)),
        certificates(c),
        access(a),
        challenges(ch),
        decide_pool(options.decide_threads),
        tls(ssl::context::tls_server),
        tracker(options.max_connections) {
    for (int i = 0; i < std::max(1, options.threads); ++i) {
      loops.push_back(std::make_unique<Loop>(options.pool_size, options.upstream_idle_timeout));
    }
  }

  // An event loop: one thread, and the connections it serves never leave it, so that nothing
  // of theirs needs a lock or a strand, and each loop keeps its own idle upstream connections
  // (a pooled socket stays on the loop it was made on). TlsStream relies on this: its readiness
  // waits must not race another thread of the same loop. So Asio's per-socket locks are off
  // (UNSAFE_IO); what other threads hand to a loop (accepted sockets, Decide's answers,
  // certificate wake-ups, Stop) still goes through its scheduler's and registration's locks.
  struct Loop {
    Loop(size_t pool_size, std::chrono::milliseconds pool_idle)
        : io(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO), pool(pool_size, pool_idle) {}
    net::io_context io;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::thread thread;
    UpstreamPool pool;
  };

  Result<void> Listen();
  void ConfigureTls();
  static int OnServerName(SSL* ssl, int* alert, void* arg);

  Task<void> Accept(TcpAcceptor acceptor, bool https);
  Task<void> ServeTls(TcpSocket socket, Loop& loop);
  Task<void> AwaitCertificate(TcpSocket& socket);
  Task<void> CloseTls(TlsStream& stream);
  Task<void> ServeHttp(TcpSocket socket);
  template <class Stream>
  Task<std::optional<WebHost>> ReadRequest(Stream& stream, beast::flat_buffer& buffer,
                                           RequestParser& parser);
  struct TlsConnection;
  // Parks an idle connection: no coroutine, no buffer, until its next bytes come (or its idle
  // timeout passes, which closes it).
  void Park(std::unique_ptr<TlsConnection> connection);
  Task<void> ServeRequests(std::unique_ptr<TlsConnection> connection);
  Task<std::shared_ptr<const Decision>> Decide(const http::request_header<>& head,
                                               const WebHost& host, const std::string& client);
  template <class Stream>
  Task<bool> Handle(Stream& stream, Loop& loop, beast::flat_buffer& buffer, RequestParser& parser,
                    const WebHost& host, Registration& registration, const std::string& client);
  // `keep_alive`: whether the client's request asked for it (read before the head is rewritten
  // for the upstream, which drops its Connection header).
  template <class Stream>
  Task<bool> ForwardToVm(Stream& stream, Loop& loop, beast::flat_buffer& buffer,
                         RequestParser& parser, const Decision& decision, bool keep_alive,
                         Registration& registration);
  template <class Stream>
  Task<bool> ForwardToApi(Stream& stream, beast::flat_buffer& buffer, RequestParser& parser,
                          bool keep_alive, Registration& registration);
  template <class Client, class Upstream>
  Task<ExchangeResult> Exchange(Client& client, beast::flat_buffer& buffer, RequestParser& parser,
                                Upstream& upstream, unsigned version, bool keep_alive,
                                bool expect_continue);
  template <class Stream>
  Task<bool> Send(Stream& stream, Page& page);

  ProxyOptions options;
  tls::CertificateSource& certificates;
  Access& access;
  AcmeHttpChallenges* challenges;
  std::vector<std::unique_ptr<Loop>> loops;
  net::thread_pool decide_pool;
  ssl::context tls;
  Tracker tracker;
  std::vector<TcpAcceptor> acceptors;  // bound, until Start hands them to their loops
  std::vector<uint16_t> https_ports;
  uint16_t http_port = 0;
  bool started = false;
};

Result<void> Server::Impl::Listen() {
  auto bind = [&](const std::string& text) -> Result<TcpAcceptor> {
    VMCTL_ASSIGN_OR_RETURN(auto address, ParseListenAddress(text));
    tcp::endpoint endpoint(net::ip::make_address(address.first), address.second);
    TcpAcceptor acceptor(loops.front()->io);
    beast::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return Unavailable(fmt::format("cannot listen on {}: {}", text, ec.message()));
    return acceptor;
  };
  for (const std::string& text : options.https_listen) {
    VMCTL_ASSIGN_OR_RETURN(TcpAcceptor acceptor, bind(text));
    https_ports.push_back(acceptor.local_endpoint().port());
    acceptors.push_back(std::move(acceptor));
  }
  if (!options.http_listen.empty()) {
    VMCTL_ASSIGN_OR_RETURN(TcpAcceptor acceptor, bind(options.http_listen));
    http_port = acceptor.local_endpoint().port();
    acceptors.push_back(std::move(acceptor));
  }
  return Ok();
}

void Server::Impl::ConfigureTls() {
  SSL_CTX* ctx = tls.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A connection keeps the mode of the context it was made with, this one, not that of the
  // certificate's context the servername callback moves it to: idle connections (thousands)
  // give their read and write buffers back only if it is set here.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_tlsext_servername_callback(ctx, &Impl::OnServerName);
  SSL_CTX_set_tlsext_servername_arg(ctx, this);
}

// OpenSSL calls this for every ClientHello, with or without SNI (since 1.1.1).
int Server::Impl::OnServerName(SSL* ssl, int* alert, void* arg) {
  auto* impl = static_cast<Impl*>(arg);
  const char* sent = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string name;
  if (sent != nullptr) {
    auto host = ParseWebHost(sent, impl->options.domain);
    if (!host.ok()) {
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    name = host->host;
  }
  std::shared_ptr<SSL_CTX> chosen = impl->certificates.ForServerName(name);
  if (!chosen) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  // The connection takes a reference of its own (OpenSSL's count, which SharedSslCtx's deleter
  // decrements): the source may drop the context at a renewal meanwhile.
  SSL_set_SSL_CTX(ssl, chosen.get());
  return SSL_TLSEXT_ERR_OK;
}

Task<void> Server::Impl::Accept(TcpAcceptor acceptor, bool https) {
  Registration registration(tracker, acceptor.native_handle(), false);
  if (!registration) co_return;
  // Each listener hands its connections to the loops in turn.
  size_t next_loop = 0;
  for (;;) {
    Loop& loop = *loops[next_loop];
    next_loop = (next_loop + 1) % loops.size();
    auto [ec, socket] = co_await acceptor.async_accept(loop.io, kTuple);
    if (ec == net::error::no_descriptors || ec == net::error::no_buffer_space) {
      // Out of fds: back off instead of spinning; the connection waits in the backlog.
      Timer timer(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await timer.async_wait(kTuple);
      continue;
    }
    if (ec == net::error::connection_aborted) continue;
    if (ec) break;
    auto executor = socket.get_executor();
    if (https) {
      net::co_spawn(executor, ServeTls(std::move(socket), loop), net::detached);
    } else {
      net::co_spawn(executor, ServeHttp(std::move(socket)), net::detached);
    }
  }
}

// What is left of a TLS connection between requests, when thousands idle: about 1 KiB beside
// OpenSSL's own state (bench/RESULTS.md), as a coroutine's frames alone would take more.
struct Server::Impl::TlsConnection {
  TlsConnection(Tracker& tracker, int fd, Loop& l, std::string c)
      : registration(tracker, fd, true), loop(l), client(std::move(c)) {}
  Registration registration;
  Loop& loop;
  std::string client;
  std::optional<TlsStream> stream;
};

Task<void> Server::Impl::ServeTls(TcpSocket socket, Loop& loop) {
  beast::error_code ec;
  std::string client = socket.remote_endpoint(ec).address().to_string();
  if (ec) co_return;
  auto connection =
      std::make_unique<TlsConnection>(tracker, socket.native_handle(), loop, std::move(client));
  if (!connection->registration) co_return;
  co_await AwaitCertificate(socket);
  TlsStream& stream = connection->stream.emplace(std::move(socket), tls.native_handle());
  stream.expires_after(options.header_timeout);
  auto [handshake_ec] = co_await stream.async_handshake(kTuple);
  if (handshake_ec) co_return;
  Park(std::move(connection));
}

void Server::Impl::Park(std::unique_ptr<TlsConnection> connection) {
  TlsStream& stream = *connection->stream;
  stream.expires_after(options.idle_timeout);
  stream.async_wait_readable(net::bind_allocator(
      ExactAllocator<void>(),
      [this, connection = std::move(connection)](beast::error_code ec) mutable {
        if (ec) return;  // idle too long, or cut off: it closes here
        auto executor = connection->stream->get_executor();
        net::co_spawn(executor, ServeRequests(std::move(connection)), net::detached);
      }));
}

// Ends a connection with TLS close_notify, so that the client can tell the end of a response
// that has no length from a truncation (RFC 8446 section 6.1), and answers a client's own
// close_notify. A client that closed without one, or that never answers ours, costs at most
// kCloseNotifyTimeout. After a timeout the socket is closed already and nothing is sent.
Task<void> Server::Impl::CloseTls(TlsStream& stream) {
  if (!stream.socket().is_open()) co_return;
  stream.expires_after(kCloseNotifyTimeout);
  co_await stream.async_shutdown(kTuple);
}

// Peeks at the ClientHello's SNI name and, when it has no certificate yet but one is being
// issued (a custom domain's first use), holds the handshake until it is served, for at most
// certificate_wait: the servername callback cannot wait without blocking its event loop.
Task<void> Server::Impl::AwaitCertificate(TcpSocket& socket) {
  // The socket's waits end when `wake` cancels them: at a deadline, when the certificate is
  // ready, or at Stop's shutdown(2) (readable, and EPOLLHUP ends a wait for errors). Wake-ups
  // run on the connection's loop, through a state that outlives this frame if they come late.
  struct Waiting {
    TcpSocket* socket;
  };
  auto waiting = std::make_shared<Waiting>(&socket);
  auto wake = [waiting] {
    if (waiting->socket) waiting->socket->cancel();
  };
  struct Done {
    Waiting& waiting;
    ~Done() { waiting.socket = nullptr; }
  } done{*waiting};
  Timer deadline(socket.get_executor());
  auto wake_after = [&](std::chrono::milliseconds after) {
    deadline.expires_after(after);
    deadline.async_wait([wake](beast::error_code ec) {
      if (!ec) wake();
    });
  };
  wake_after(options.header_timeout);
  auto until = std::chrono::steady_clock::now() + options.header_timeout;
  std::vector<uint8_t> peeked(tls::kMaxClientHelloPeek);
  std::optional<std::string> sent;
  while (!sent && std::chrono::steady_clock::now() < until) {
    auto [ec] = co_await socket.async_wait(TcpSocket::wait_read, kTuple);
    if (ec) co_return;
    size_t n = socket.receive(net::buffer(peeked), TcpSocket::message_peek, ec);
    if (ec || n == 0) co_return;
    sent = tls::PeekServerName(std::span(peeked).first(n));
    if (!sent) {
      // The rest of a ClientHello split across segments: peeking does not consume, so the
      // socket stays readable; look again shortly instead of spinning.
      Timer again(socket.get_executor(), std::chrono::milliseconds(5));
      co_await again.async_wait(kTuple);
    }
  }
  if (!sent || sent->empty()) co_return;
  auto host = ParseWebHost(*sent, options.domain);
  if (!host.ok() || certificates.ForServerName(host->host)) co_return;
  auto executor = socket.get_executor();
  if (!certificates.AwaitCertificate(host->host, [executor, wake] { net::post(executor, wake); })) {
    co_return;
  }
  wake_after(options.certificate_wait);
  co_await socket.async_wait(TcpSocket::wait_error, kTuple);
}

// After refusing a request, reads what the client still sends for a moment before closing:
// closing with unread bytes makes the kernel send a reset, which may destroy the refusal before
// the client reads it.
template <class Stream>
Task<void> Linger(Stream& stream) {
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(1));
  std::array<char, 4096> sink;
  for (size_t total = 0; total < 256 * 1024;) {
    auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), kTuple);
    if (ec) break;
    total += n;
  }
}

template <class Stream>
Task<bool> Server::Impl::Send(Stream& stream, Page& page) {
  beast::get_lowest_layer(stream).expires_after(options.idle_timeout);
  bool keep_alive = page.keep_alive();
  auto [ec, n] = co_await http::async_write(stream, page, kTuple);
  co_return !ec && keep_alive;
}

// The next request head and the host it names; nothing when the connection ends (the client
// left, or its request was refused: the refusal is sent first).
template <class Stream>
Task<std::optional<WebHost>> Server::Impl::ReadRequest(Stream& stream, beast::flat_buffer& buffer,
                                                       RequestParser& parser) {
  auto read = co_await relay::ReadHead(stream, buffer, parser, options.header_limit,
                                       options.idle_timeout, options.header_timeout);
  if (read.closed) co_return std::nullopt;
  std::optional<Refusal> refusal = read.refusal;
  if (!refusal) refusal = CheckRequestHead(parser.get());
  if (!refusal) {
    auto host = ParseWebHost(parser.get()[http::field::host], options.domain);
    if (host.ok()) co_return std::move(*host);
    refusal = Refusal{http::status::bad_request, host.error().message()};
  }
  Page page = ErrorPage(refusal->status, refusal->why, 11, false);
  co_await Send(stream, page);
  co_await Linger(stream);
  co_return std::nullopt;
}

// Serves requests while they come back to back (pipelined, or already decrypted), then parks
// the connection again, as nginx does with its keep-alive connections.
Task<void> Server::Impl::ServeRequests(std::unique_ptr<TlsConnection> connection) {
  TlsConnection& c = *connection;
  TlsStream& stream = *c.stream;
  beast::flat_buffer buffer;
  for (;;) {
    RequestParser parser;
    parser.body_limit(boost::none);
    std::optional<WebHost> host = co_await ReadRequest(stream, buffer, parser);
    if (!host) break;
    if (!co_await Handle(stream, c.loop, buffer, parser, *host, c.registration, c.client)) break;
    if (buffer.size() == 0 && !SSL_has_pending(stream.native_handle())) {
      Park(std::move(connection));
      co_return;
    }
  }
  co_await CloseTls(stream);
}

// Access::Decide may block on the store, which the event loop must never do: it runs on threads
// of its own (Handle asks DecideCached first, which answers inline for a recent decision).
Task<std::shared_ptr<const Decision>> Server::Impl::Decide(const http::request_header<>& head,
                                                           const WebHost& host,
                                                           const std::string& client) {
  co_return co_await net::co_spawn(
      decide_pool,
      [&]() -> net::awaitable<std::shared_ptr<const Decision>> {
        co_return std::make_shared<const Decision>(access.Decide(head, host.host, client));
      },
      kAwait);
}

template <class Stream>
Task<bool> Server::Impl::Handle(Stream& stream, Loop& loop, beast::flat_buffer& buffer,
                                RequestParser& parser, const WebHost& host,
                                Registration& registration, const std::string& client) {
  const auto& head = parser.get().base();
  std::shared_ptr<const Decision> decided = access.DecideCached(head, host.host, client);
  if (!decided) decided = co_await Decide(head, host, client);
  const Decision& decision = *decided;
  // A body nobody reads would be taken for the next request: such a connection ends.
  bool client_keep_alive = parser.get().keep_alive();
  bool keep_alive = client_keep_alive && parser.is_done();
  unsigned version = parser.get().version();
  switch (decision.kind) {
    case Decision::Kind::kRespond: {
      Page page = decision.response;
      page.version(version);
      page.keep_alive(keep_alive);
      if (co_await Send(stream, page)) co_return true;
      if (!parser.is_done()) co_await Linger(stream);  // the unread body must not cause a reset
      co_return false;
    }
    case Decision::Kind::kForwardToVm:
      if (decision.route.vm.state != VmState::kRunning) {
        Page page = VmNotRunningPage(decision.route, options.ssh_command, WantsHtml(head), version,
                                     keep_alive);
        co_return co_await Send(stream, page);
      }
      PrepareUpstreamRequest(parser.get().base(), decision, client, "https");
      co_return co_await ForwardToVm(stream, loop, buffer, parser, decision, client_keep_alive,
                                     registration);
    case Decision::Kind::kForwardToApi:
      PrepareUpstreamRequest(parser.get().base(), decision, client, "https");
      co_return co_await ForwardToApi(stream, buffer, parser, client_keep_alive, registration);
  }
  co_return false;
}

template <class Stream>
Task<bool> Server::Impl::ForwardToVm(Stream& stream, Loop& loop, beast::flat_buffer& buffer,
                                     RequestParser& parser, const Decision& decision,
                                     bool keep_alive, Registration& registration) {
  auto& request = parser.get();
  const controller::WebRoute& route = decision.route;
  bool html = WantsHtml(request);
  unsigned version = request.version();
  bool expect_continue = beast::iequals(request[http::field::expect], "100-continue");
  request.erase(http::field::expect);
  request.version(11);
  UpstreamAddress key{route.vm.address, route.port};
  ExchangeResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::unique_ptr<TcpStream> upstream =
        attempt == 0 ? loop.pool.Take(key, RetrySafe(parser)) : nullptr;
    bool reused = upstream != nullptr;
    if (!upstream) {
      beast::error_code address_ec;
      tcp::endpoint endpoint(net::ip::make_address(route.vm.address, address_ec), route.port);
      if (address_ec) {
        Page page = NotListeningPage(route, html, version, false);
        co_return co_await Send(stream, page);
      }
      upstream = std::make_unique<TcpStream>(co_await net::this_coro::executor);
      upstream->expires_after(options.upstream_connect_timeout);
      auto [ec] = co_await upstream->async_connect(endpoint, kTuple);
      // A request head and its body go out as separate sends; Nagle would hold the body back.
      if (!ec) upstream->socket().set_option(tcp::no_delay(true), ec);
      if (ec) {
        bool timed_out = ec == beast::error::timeout;
        bool keep = keep_alive && parser.is_done();
        Page page = timed_out ? UpstreamTimeoutPage(route, html, version, keep)
                              : NotListeningPage(route, html, version, keep);
        co_return co_await Send(stream, page);
      }
    }
    registration.SetUpstream(FdOf(*upstream));
    result =
        co_await Exchange(stream, buffer, parser, *upstream, version, keep_alive, expect_continue);
    registration.SetUpstream(-1);
    if (result.upstream_reusable) loop.pool.Put(key, std::move(upstream));
    if (result.how != Exchanged::kRetry) break;
    if (!reused) {
      result.how = Exchanged::kRefused;
      break;
    }
  }
  if (result.how == Exchanged::kKeepAlive) co_return true;
  if (result.how == Exchanged::kClose) co_return false;
  bool keep = keep_alive && !result.client_body_pending;
  Page page = result.how == Exchanged::kTimedOut ? UpstreamTimeoutPage(route, html, version, keep)
                                                 : NotListeningPage(route, html, version, keep);
  co_return co_await Send(stream, page);
}

template <class Stream>
Task<bool> Server::Impl::ForwardToApi(Stream& stream, beast::flat_buffer& buffer,
                                      RequestParser& parser, bool keep_alive,
                                      Registration& registration) {
  auto& request = parser.get();
  unsigned version = request.version();
  bool expect_continue = beast::iequals(request[http::field::expect], "100-continue");
  request.erase(http::field::expect);
  request.version(11);
  UnixStream upstream(co_await net::this_coro::executor);
  upstream.expires_after(options.upstream_connect_timeout);
  net::local::stream_protocol::endpoint endpoint(options.api_socket);
  auto [ec] = co_await upstream.async_connect(endpoint, kTuple);
  if (ec) {
    Page page =
        ErrorPage(http::status::bad_gateway, "the daemon's API does not answer", version, false);
    co_return co_await Send(stream, page);
  }
  registration.SetUpstream(FdOf(upstream));
  ExchangeResult result =
      co_await Exchange(stream, buffer, parser, upstream, version, keep_alive, expect_continue);
  registration.SetUpstream(-1);
  if (result.how == Exchanged::kKeepAlive) co_return true;
  if (result.how == Exchanged::kClose) co_return false;
  Page page = ErrorPage(http::status::bad_gateway, "the daemon's API broke off", version, false);
  co_return co_await Send(stream, page);
}

template <class Client, class Upstream>
Task<ExchangeResult> Server::Impl::Exchange(Client& client, beast::flat_buffer& buffer,
                                            RequestParser& parser, Upstream& upstream,
                                            unsigned version, bool keep_alive,
                                            bool expect_continue) {
  bool has_body = !parser.is_done();
  bool retry_safe = RetrySafe(parser);  // before the body is read, which makes the parser done
  bool head_request = parser.get().method() == http::verb::head;
  http::request_serializer<http::buffer_body> request_writer{parser.get()};
  beast::get_lowest_layer(upstream).expires_after(options.idle_timeout);
  if (auto [ec, n] = co_await http::async_write_header(upstream, request_writer, kTuple); ec) {
    co_return ExchangeResult{Exchanged::kRetry, false, has_body};
  }
  if (has_body && expect_continue) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    auto [ec, n] = co_await net::async_write(client, net::buffer(kContinue), kTuple);
    if (ec) co_return ExchangeResult{};
  }
  if (has_body) {
    Outcome sent = co_await relay::RelayBody(client, buffer, parser, upstream, request_writer,
                                             options.idle_timeout);
    if (sent == Outcome::kReadFailed) co_return ExchangeResult{};  // the client left or lied
    if (sent == Outcome::kWriteFailed) co_return ExchangeResult{Exchanged::kRefused, false, true};
  }

  beast::flat_buffer upstream_buffer;
  std::optional<http::response_parser<http::buffer_body>> response;
  for (;;) {
    response.emplace();
    response->body_limit(boost::none);
    response->header_limit(64 * 1024);
    if (head_request) response->skip(true);
    beast::get_lowest_layer(upstream).expires_after(options.upstream_response_timeout);
    auto [ec, n] = co_await http::async_read_header(upstream, upstream_buffer, *response, kTuple);
    if (ec == beast::error::timeout) co_return ExchangeResult{Exchanged::kTimedOut};
    // The app may have acted on a request it read before closing: only one that can be sent
    // twice goes again.
    if (ec) co_return ExchangeResult{retry_safe ? Exchanged::kRetry : Exchanged::kRefused};
    unsigned status = response->get().result_int();
    // Interim responses (100 Continue, 103 Early Hints) are the upstream's business alone.
    if (status < 100 || status >= 200 || status == 101) break;
  }

  auto& res = response->get();
  bool upgrade = res.result() == http::status::switching_protocols;
  bool upstream_keeps = res.keep_alive() && !response->need_eof();
  PrepareDownstreamResponse(res.base());
  res.version(version);
  bool framed = response->content_length() || response->chunked() || response->is_done();
  if (!framed && version == 11) res.chunked(true);
  if (!framed && version == 10) keep_alive = false;
  if (!upgrade) res.keep_alive(keep_alive);
  http::response_serializer<http::buffer_body> response_writer{res};
  // Body bytes that came with the head go out with it, in one TLS record and one segment, as
  // nginx sends them: a separate write costs a second record, send(2) and wake-up of the client.
  // Without any, the head goes now, lest a streamed response wait for its first bytes.
  bool head_with_body =
      !upgrade && !head_request && !response->is_done() && upstream_buffer.size() > 0;
  beast::get_lowest_layer(client).expires_after(options.idle_timeout);
  if (!head_with_body) {
    if (auto [ec, n] = co_await http::async_write_header(client, response_writer, kTuple); ec) {
      co_return ExchangeResult{};
    }
  }
  if (upgrade) {
    co_await relay::Tunnel(client, buffer, upstream, upstream_buffer);
    co_return ExchangeResult{};
  }
  if (head_request) {
    co_return ExchangeResult{keep_alive ? Exchanged::kKeepAlive : Exchanged::kClose,
                             upstream_keeps};
  }
  if (!response->is_done()) {
    Outcome received = co_await relay::RelayBody(upstream, upstream_buffer, *response, client,
                                                 response_writer, options.idle_timeout);
    if (received != Outcome::kDone) co_return ExchangeResult{};
  }
  co_return ExchangeResult{keep_alive ? Exchanged::kKeepAlive : Exchanged::kClose,
                           upstream_keeps && upstream_buffer.size() == 0};
}

Task<void> Server::Impl::ServeHttp(TcpSocket socket) {
  TcpStream stream(std::move(socket));
  Registration registration(tracker, FdOf(stream), true);
  if (!registration) co_return;
  beast::flat_buffer buffer;
  for (;;) {
    RequestParser parser;
    std::optional<WebHost> host = co_await ReadRequest(stream, buffer, parser);
    if (!host) co_return;
    const auto& request = parser.get();
    bool keep_alive = request.keep_alive() && parser.is_done();
    constexpr std::string_view kChallenge = "/.well-known/acme-challenge/";
    std::string_view target = request.target();
    Page page;
    if (target.starts_with(kChallenge)) {
      std::optional<std::string> answer;
      if (challenges != nullptr)
        answer = challenges->KeyAuthorization(target.substr(kChallenge.size()));
      if (!answer) {
        page =
            ErrorPage(http::status::not_found, "no such challenge", request.version(), keep_alive);
      } else {
        page = Page{http::status::ok, request.version()};
        page.set(http::field::content_type, "application/octet-stream");
        page.body() = *answer;
        page.keep_alive(keep_alive);
        page.prepare_payload();
      }
    } else {
      // 301 keeps old clients' GETs GETs; 308 keeps the method and body of everything else.
      bool safe = request.method() == http::verb::get || request.method() == http::verb::head;
      page = Page{safe ? http::status::moved_permanently : http::status::permanent_redirect,
                  request.version()};
      uint16_t port = https_ports.empty() ? 443 : https_ports.front();
      page.set(http::field::location,
               fmt::format("https://{}{}{}", host->host,
                           port == 443 ? "" : fmt::format(":{}", port), target));
      page.keep_alive(keep_alive);
      page.prepare_payload();
    }
    if (!co_await Send(stream, page)) co_return;
  }
}

Server::Server(ProxyOptions options, tls::CertificateSource& certificates, Access& access,
               AcmeHttpChallenges* challenges)
    : impl_(std::make_unique<Impl>(std::move(options), certificates, access, challenges)) {}

Server::~Server() { Stop(); }

Result<void> Server::Start() {
  Impl& impl = *impl_;
  if (impl.started) return FailedPrecondition("the proxy runs already");
  impl.ConfigureTls();
  if (auto listening = impl.Listen(); !listening.ok()) {
    impl.acceptors.clear();
    impl.https_ports.clear();
    impl.http_port = 0;
    return listening.error();
  }
  size_t https = impl.https_ports.size();
  for (size_t i = 0; i < impl.acceptors.size(); ++i) {
    auto executor = impl.acceptors[i].get_executor();
    net::co_spawn(executor, impl.Accept(std::move(impl.acceptors[i]), i < https), net::detached);
  }
  impl.acceptors.clear();
  for (auto& loop : impl.loops) {
    loop->work.emplace(loop->io.get_executor());
    loop->thread = std::thread([&io = loop->io] { io.run(); });
  }
  impl.started = true;
  return Ok();
}

void Server::Stop() {
  Impl& impl = *impl_;
  if (!impl.started) return;
  impl.started = false;
  impl.tracker.ShutdownAll();
  impl.tracker.WaitEmpty();
  impl.decide_pool.join();
  for (auto& loop : impl.loops) {
    loop->work.reset();
    loop->io.stop();
    loop->thread.join();
    loop->pool.Clear();
  }
}

std::vector<uint16_t> Server::https_ports() const { return impl_->https_ports; }
uint16_t Server::http_port() const { return impl_->http_port; }
size_t Server::connections() const { return impl_->tracker.connections(); }

}  // namespace vmctl::proxy
