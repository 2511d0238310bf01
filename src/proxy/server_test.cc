// The proxy server against real peers on loopback: a Beast upstream in this process (HTTP and
// WebSocket), curl and raw OpenSSL clients, a self-signed certificate made with the openssl CLI.

#include "proxy/server.h"

#include <dirent.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <thread>

namespace vmctl::proxy {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr std::string_view kDomain = "vmctl.localhost";

size_t OpenFds() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

// This process's peak resident memory (VmHWM).
size_t PeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6));
  }
  return 0;
}

// Bytes the allocator has handed out and not had back, in every arena (not RSS, which freed
// memory the allocator keeps would hold up).
size_t HeapInUse() {
  struct mallinfo2 info = ::mallinfo2();
  return info.uordblks + info.hblkhd;
}

// Runs a shell command, returning its stdout and exit status.
std::pair<std::string, int> Shell(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  int status = ::pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[32];
  unsigned size = 0;
  EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

// The certificate for DOMAIN and *.DOMAIN; ForServerName knows no other names, except
// kIssuedName once Issue() has run. AwaitCertificate holds kIssuedName's handshakes until then.
constexpr char kIssuedName[] = "shop.example";
class FakeCertificates : public tls::CertificateSource {
 public:
  explicit FakeCertificates(const std::filesystem::path& dir) {
    cert_ = (dir / "cert.pem").string();
    std::string key = (dir / "key.pem").string();
    auto [out, status] = Shell(fmt::format(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
        "-subj /CN={0} -addext subjectAltName=DNS:{0},DNS:*.{0} -keyout {1} -out {2} 2>&1",
        kDomain, key, cert_));
    EXPECT_EQ(status, 0) << out;
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx, cert_.c_str()), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM), 1);
    ctx_.reset(ctx, SSL_CTX_free);
  }
  std::shared_ptr<SSL_CTX> ForServerName(std::string_view name) override {
    if (name.empty() || name == kDomain || name.ends_with(fmt::format(".{}", kDomain)) ||
        (name == kIssuedName && issued_)) {
      return ctx_;
    }
    return nullptr;
  }
  bool AwaitCertificate(std::string_view name, std::function<void()> ready) override {
    if (name != kIssuedName) return false;
    std::lock_guard lock(mu_);
    waiters_.push_back(std::move(ready));
    changed_.notify_all();
    return true;
  }
  const std::string& cert() const { return cert_; }

  void WaitForWaiters(size_t n) {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [&] { return waiters_.size() >= n; });
  }
  // The order ended: served when `served`, else given up on.
  void Finish(bool served) {
    issued_ = served;
    std::vector<std::function<void()>> waiters;
    {
      std::lock_guard lock(mu_);
      waiters.swap(waiters_);
    }
    for (auto& ready : waiters) ready();
  }

 private:
  std::string cert_;
  std::shared_ptr<SSL_CTX> ctx_;
  std::atomic<bool> issued_ = false;
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<std::function<void()>> waiters_;
};

// An HTTP/1.1 app on 127.0.0.1, a thread per connection:
//   /headers     the request head as the body
//   /sha256      the SHA-256 of the request body
//   /bytes/N     N bytes ("0123456789" repeated), chunked when the query says ?chunked
//   /hang        reads until the client goes, never answers
//   /vanish      closes the connection without an answer
//   /reset       a response head promising 1 MB, 1000 bytes, then a TCP reset
//   /ws          a WebSocket echo
class Upstream {
 public:
  Upstream() : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~Upstream() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    thread_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : connections_) t.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int accepted() const { return accepted_; }
  int requests() const { return requests_; }
  size_t open() {
    std::lock_guard lock(mutex_);
    return open_.size();
  }

 private:
  void AcceptLoop() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec) return;
      ++accepted_;
      std::lock_guard lock(mutex_);
      open_.insert(socket.native_handle());
      connections_.emplace_back([this, s = std::move(socket)]() mutable { Serve(std::move(s)); });
    }
  }

  void Serve(tcp::socket socket) {
    int fd = socket.native_handle();
    ServeRequests(socket);
    std::lock_guard lock(mutex_);
    open_.erase(fd);
  }

  void ServeRequests(tcp::socket& socket) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    for (;;) {
      http::request_parser<http::buffer_body> parser;
      parser.body_limit(boost::none);
      http::read_header(socket, buffer, parser, ec);
      if (ec) return;
      ++requests_;
      auto& request = parser.get();
      std::string target(request.target());
      if (websocket::is_upgrade(request)) return Echo(socket, request);
      if (target == "/vanish") {
        // Not just closed: the curl processes this process starts hold copies of the fd.
        socket.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
      if (target == "/hang") {
        char byte;
        socket.read_some(net::buffer(&byte, 1), ec);
        return;
      }
      EVP_MD_CTX* md = EVP_MD_CTX_new();
      EVP_DigestInit_ex(md, EVP_sha256(), nullptr);
      char chunk[65536];
      while (!parser.is_done()) {
        request.body().data = chunk;
        request.body().size = sizeof(chunk);
        http::read(socket, buffer, parser, ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        EVP_DigestUpdate(md, chunk, sizeof(chunk) - request.body().size);
      }
      unsigned char digest[32];
      unsigned size = 0;
      EVP_DigestFinal_ex(md, digest, &size);
      EVP_MD_CTX_free(md);
      if (ec) return;
      if (target == "/reset") return Reset(socket);
      if (target.starts_with("/bytes/")) {
        if (!SendBytes(socket, target, request.keep_alive())) return;
        continue;
      }
      http::response<http::string_body> response{http::status::ok, 11};
      if (target == "/sha256") {
        for (unsigned i = 0; i < size; ++i) response.body() += fmt::format("{:02x}", digest[i]);
      } else {
        for (const auto& field : request) {
          response.body() += fmt::format("{}: {}\n", field.name_string(), field.value());
        }
        response.set(http::field::set_cookie, "app=1; Domain=vmctl.localhost; Path=/");
      }
      response.keep_alive(request.keep_alive());
      response.prepare_payload();
      http::write(socket, response, ec);
      if (ec || !request.keep_alive()) return;
    }
  }

  bool SendBytes(tcp::socket& socket, const std::string& target, bool keep_alive) {
    auto query = target.find('?');
    size_t n = std::stoull(target.substr(7, query - 7));
    bool chunked = query != std::string::npos;
    http::response<http::empty_body> head{http::status::ok, 11};
    if (chunked) {
      head.chunked(true);
    } else {
      head.content_length(n);
    }
    head.keep_alive(keep_alive);
    http::response_serializer<http::empty_body> sr{head};
    beast::error_code ec;
    http::write_header(socket, sr, ec);
    std::string block;
    while (block.size() < 65536) block += "0123456789";
    for (size_t sent = 0; sent < n && !ec;) {
      size_t size = std::min(block.size(), n - sent);
      if (chunked) {
        net::write(socket, http::make_chunk(net::buffer(block.data(), size)), ec);
      } else {
        net::write(socket, net::buffer(block.data(), size), ec);
      }
      sent += size;
    }
    if (chunked && !ec) net::write(socket, http::make_chunk_last(), ec);
    return !ec && keep_alive;
  }

  void Reset(tcp::socket& socket) {
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + std::string(1000, 'x');
    beast::error_code ec;
    net::write(socket, net::buffer(head), ec);
    socket.set_option(net::socket_base::linger(true, 0), ec);
    socket.close(ec);
  }

  template <class Request>
  void Echo(tcp::socket& socket, const Request& request) {
    websocket::stream<tcp::socket&> ws(socket);
    beast::error_code ec;
    ws.accept(request, ec);
    while (!ec) {
      beast::flat_buffer message;
      ws.read(message, ec);
      if (ec) break;
      ws.text(ws.got_text());
      ws.write(message.data(), ec);
    }
  }

  net::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::mutex mutex_;
  std::set<int> open_;
  std::vector<std::thread> connections_;
  std::atomic<int> accepted_ = 0;
  std::atomic<int> requests_ = 0;
};

// web.DOMAIN and any VM--PORT go to the upstream as alice; stopped.DOMAIN is a stopped VM;
// closed.DOMAIN has nothing listening; DOMAIN/api/ goes to the API socket; the rest is a 404.
class FakeAccess : public Access {
 public:
  FakeAccess(uint16_t upstream_port, uint16_t closed_port)
      : upstream_port_(upstream_port), closed_port_(closed_port) {}
  Decision Decide(const http::request_header<>& head, std::string_view host,
                  const std::string& client) override {
    ++calls;
    Decision decision;
    decision.route.vm.name = std::string(host.substr(0, host.find('.')));
    decision.route.vm.address = "127.0.0.1";
    decision.route.vm.state = VmState::kRunning;
    decision.route.port = upstream_port_;
    decision.identity = controller::Identity{"u-alice", "alice@example.com", ""};
    decision.kind = Decision::Kind::kForwardToVm;
    last_client = client;
    if (host == fmt::format("stopped.{}", kDomain)) {
      decision.route.vm.state = VmState::kStopped;
    } else if (host == fmt::format("closed.{}", kDomain)) {
      decision.route.port = closed_port_;
    } else if (host == kDomain && head.target().starts_with("/api/")) {
      decision.kind = Decision::Kind::kForwardToApi;
      decision.api_target = std::string(head.target().substr(4));
    } else if (host != fmt::format("web.{}", kDomain)) {
      decision.kind = Decision::Kind::kRespond;
      decision.response = {http::status::not_found, 11};
      decision.response.body() = "no such page\n";
      decision.response.prepare_payload();
    }
    return decision;
  }
  std::atomic<int> calls = 0;
  std::string last_client;

 private:
  uint16_t upstream_port_, closed_port_;
};

class FakeChallenges : public AcmeHttpChallenges {
 public:
  std::optional<std::string> KeyAuthorization(std::string_view token) override {
    if (token == "tok") return "tok.thumbprint";
    return std::nullopt;
  }
};

// A TLS client on a raw socket, so that reads can time out (SO_RCVTIMEO).
class RawTls {
 public:
  RawTls(uint16_t port, const std::string& sni, const std::string& ca = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ca.empty()) {
      SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!sni.empty()) SSL_set_tlsext_host_name(ssl_, sni.c_str());
    ok_ = SSL_connect(ssl_) == 1;
  }
  ~RawTls() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    ::close(fd_);
  }
  bool ok() const { return ok_; }
  int fd() const { return fd_; }
  // Sends this side's close_notify; true once it is out.
  bool SendCloseNotify() { return SSL_shutdown(ssl_) >= 0; }
  // Whether the server's close_notify has been read (by ReadAll, say).
  bool ReceivedCloseNotify() const { return (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0; }
  void Write(std::string_view bytes) { SSL_write(ssl_, bytes.data(), bytes.size()); }
  // Everything until the server closes (or the timeout).
  std::string ReadAll() {
    std::string out;
    char buffer[16384];
    int n;
    while ((n = SSL_read(ssl_, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
    ERR_clear_error();
    return out;
  }
  // One response to a request with Connection: keep-alive: reads until `until` appears.
  std::string ReadUntil(std::string_view until) {
    std::string out;
    char buffer[16384];
    int n;
    while (out.find(until) == std::string::npos &&
           (n = SSL_read(ssl_, buffer, sizeof(buffer))) > 0) {
      out.append(buffer, n);
    }
    return out;
  }

 private:
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool ok_ = false;
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           fmt::format("vmctl-proxy-test-{}-{}", ::getpid(), counter_++);
    std::filesystem::create_directories(dir_);
    certificates_ = std::make_unique<FakeCertificates>(dir_);
    // A port nobody listens on: bound, never listened to, closed.
    {
      net::io_context io;
      tcp::acceptor probe(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
      closed_port_ = probe.local_endpoint().port();
    }
    access_ = std::make_unique<FakeAccess>(upstream_.port(), closed_port_);
    fds_at_start_ = OpenFds();
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Until the connections a step ended are gone: the server's side of each lingers for up to
  // a second waiting for the client's close_notify, so counting fds sooner counts them too.
  void AwaitNoConnections() {
    for (int i = 0; i < 250 && server_->connections() > 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_EQ(server_->connections(), 0u);
  }

  void StartServer(ProxyOptions options = Options()) {
    server_ = std::make_unique<Server>(options, *certificates_, *access_, &challenges_);
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->https_ports().at(0);
  }
  static ProxyOptions Options() {
    ProxyOptions options;
    options.https_listen = {"127.0.0.1:0"};
    options.http_listen = "127.0.0.1:0";
    options.domain = kDomain;
    options.ssh_command = "ssh -p 2222 vmctl.localhost";
    options.header_timeout = 1s;
    options.upstream_response_timeout = 1s;
    return options;
  }

  // curl against https://HOST.DOMAIN:PORT/PATH, resolved to the proxy; returns stdout.
  std::pair<std::string, int> Curl(const std::string& host, const std::string& path,
                                   const std::string& flags = "") {
    return Shell(fmt::format(
        "curl -sS --max-time 60 --cacert {} --resolve {}:{}:127.0.0.1 {} 'https://{}:{}{}' 2>&1",
        certificates_->cert(), host, port_, flags, host, port_, path));
  }
  std::string Raw(const std::string& bytes, const std::string& sni = "web.vmctl.localhost") {
    RawTls client(port_, sni);
    EXPECT_TRUE(client.ok());
    client.Write(bytes);
    return client.ReadAll();
  }

  inline static int counter_ = 0;
  std::filesystem::path dir_;
  Upstream upstream_;
  uint16_t closed_port_ = 0;
  std::unique_ptr<FakeCertificates> certificates_;
  std::unique_ptr<FakeAccess> access_;
  FakeChallenges challenges_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  size_t fds_at_start_ = 0;
};

TEST_F(ServerTest, ForwardsWithIdentityAndWithoutSpoofedHeaders) {
  StartServer();
  auto [out, status] = Curl("web.vmctl.localhost", "/headers",
                            "-i -H 'X-Vmctl-Email: evil@example.com' -H 'X-Vmctl-User-Id: root' "
                            "-H 'X-Forwarded-For: 6.6.6.6' -b '__Host-vmctl-session=s; a=1'");
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("X-Vmctl-User-Id: u-alice\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Vmctl-Email: alice@example.com\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("evil@example.com"), std::string::npos) << out;
  EXPECT_EQ(out.find("root"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-For: 127.0.0.1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-Proto: https\n"), std::string::npos) << out;
  EXPECT_NE(out.find("X-Forwarded-Host: web.vmctl.localhost:"), std::string::npos) << out;
  EXPECT_NE(out.find("Cookie: a=1\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("vmctl-session"), std::string::npos) << out;
  EXPECT_NE(out.find("Set-Cookie: app=1; Path=/\r"), std::string::npos)
      << "Domain= is gone: " << out;
}

TEST_F(ServerTest, KeepsConnectionsAliveOnBothSides) {
  StartServer();
  std::string url = fmt::format("https://web.vmctl.localhost:{}/headers", port_);
  auto [out, status] = Curl("web.vmctl.localhost", "/headers", "-o /dev/null " + url + " " + url);
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(upstream_.requests(), 3);
  EXPECT_EQ(upstream_.accepted(), 1) << "the pooled upstream connection is reused";
}

// An app may close a pooled connection just as the next request goes out on it: then a GET goes
// again on a new connection, but a POST, which the app may have acted on, does not.
TEST_F(ServerTest, OnlyIdempotentRequestsGoAgainWhenAPooledConnectionCloses) {
  ProxyOptions options = Options();
  options.threads = 1;  // one loop, one pool, for every connection
  StartServer(options);
  auto vanish = [&](const std::string& flags) {
    auto [pooled, s1] = Curl("web.vmctl.localhost", "/headers", "-o /dev/null -w %{http_code}");
    EXPECT_EQ(pooled, "200");
    int before = upstream_.requests();
    auto [out, s2] =
        Curl("web.vmctl.localhost", "/vanish", flags + " -o /dev/null -w %{http_code}");
    EXPECT_EQ(out, "502");
    return upstream_.requests() - before;
  };
  EXPECT_EQ(vanish(""), 2) << "a GET goes again";
  EXPECT_EQ(vanish("-X POST"), 1) << "a POST does not";
  EXPECT_EQ(vanish("-X DELETE"), 1);
  EXPECT_EQ(upstream_.accepted(), 4) << "each try after the pooled one is on a new connection";
}

TEST_F(ServerTest, PagesForStoppedVmsClosedPortsAndSilentApps) {
  StartServer();
  auto [stopped, s1] = Curl("stopped.vmctl.localhost", "/", "-i");
  EXPECT_NE(stopped.find("HTTP/1.1 503"), std::string::npos) << stopped;
  EXPECT_NE(stopped.find("ssh -p 2222 vmctl.localhost start stopped"), std::string::npos);
  auto [closed, s2] = Curl("closed.vmctl.localhost", "/", "-i");
  EXPECT_NE(closed.find("HTTP/1.1 502"), std::string::npos) << closed;
  EXPECT_NE(closed.find(fmt::format("port {}", closed_port_)), std::string::npos) << closed;
  auto start = std::chrono::steady_clock::now();
  auto [hang, s3] = Curl("web.vmctl.localhost", "/hang", "-i");
  EXPECT_NE(hang.find("HTTP/1.1 504"), std::string::npos) << hang;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  auto [other, s4] = Curl("other.vmctl.localhost", "/", "-i");
  EXPECT_NE(other.find("HTTP/1.1 404"), std::string::npos) << other;
  auto [posted, s5] = Curl("other.vmctl.localhost", "/", "-i --data-binary @/etc/services");
  EXPECT_NE(posted.find("HTTP/1.1 404"), std::string::npos) << "the unread body ends quietly";
}

TEST_F(ServerTest, RefusesSmugglingAndMalformedRequests) {
  StartServer();
  const std::string host = "Host: web.vmctl.localhost\r\n";
  struct Case {
    std::string request;
    std::string status;
  };
  std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", "400"},
      {"GET /\r\n" + host + "\r\n", "400"},
      {"GET / HTTP/1.1\r\n" + host +
           "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "400"},
      {"POST / HTTP/1.1\r\n" + host + "Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "400"},
      {"GET / HTTP/1.1\r\n" + host + "X-A: a\r\n b\r\n\r\n", "400"},
      {"GET / HTTP/1.1\n" + std::string("Host: web.vmctl.localhost\n\n"), "400"},
      {"GET http://example.com/ HTTP/1.1\r\n" + host + "\r\n", "400"},
      {"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "405"},
      {"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "400"},
      {"GET / HTTP/1.1\r\n\r\n", "400"},
      {"POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", "501"},
  };
  for (const Case& c : cases) {
    std::string response = Raw(c.request);
    EXPECT_TRUE(response.starts_with("HTTP/1.1 " + c.status)) << c.request << "\n" << response;
  }
  EXPECT_EQ(upstream_.requests(), 0) << "nothing refused reaches the app";

  // A bad chunk size ends the connection: the bytes after it never become a request.
  std::string smuggled = "POST /sha256 HTTP/1.1\r\n" + host +
                         "Transfer-Encoding: chunked\r\n\r\nzz\r\nGET /headers HTTP/1.1\r\n" +
                         host + "\r\n";
  std::string response = Raw(smuggled);
  EXPECT_EQ(response.find("X-Vmctl"), std::string::npos) << response;
  EXPECT_LE(upstream_.requests(), 1);
}

TEST_F(ServerTest, OversizedHeadsGet431) {
  StartServer();
  std::string response =
      Raw("GET / HTTP/1.1\r\nHost: web.vmctl.localhost\r\nX-Big: " + std::string(20000, 'a') +
          "\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 431")) << response.substr(0, 100);
}

TEST_F(ServerTest, SlowlorisIsCutOffAtTheHeaderTimeout) {
  StartServer();
  RawTls client(port_, "web.vmctl.localhost");
  ASSERT_TRUE(client.ok());
  auto start = std::chrono::steady_clock::now();
  client.Write("GET / HTTP/1.1\r\nHost: web.vmctl.localhost\r\nX-A: ");
  std::this_thread::sleep_for(300ms);
  client.Write("b");
  std::string rest = client.ReadAll();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 5s);
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(ServerTest, UpstreamResetMidBodyCutsTheClientOff) {
  StartServer();
  auto [out, status] = Curl("web.vmctl.localhost", "/reset", "-o /dev/null");
  EXPECT_NE(status, 0) << "curl must see a truncated body: " << out;
  // The proxy itself is fine.
  auto [again, ok] = Curl("web.vmctl.localhost", "/headers");
  EXPECT_EQ(ok, 0) << again;
}

TEST_F(ServerTest, AClientVanishingMidUploadClosesTheUpstream) {
  StartServer();
  {
    RawTls client(port_, "web.vmctl.localhost");
    ASSERT_TRUE(client.ok());
    client.Write(
        "POST /sha256 HTTP/1.1\r\nHost: web.vmctl.localhost\r\nContent-Length: 100000000\r\n\r\n");
    client.Write(std::string(100000, 'x'));
    for (int i = 0; i < 100 && upstream_.open() == 0; ++i) std::this_thread::sleep_for(20ms);
    EXPECT_EQ(upstream_.open(), 1u);
  }
  for (int i = 0; i < 200 && (upstream_.open() > 0 || server_->connections() > 0); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(upstream_.open(), 0u);
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(ServerTest, LargeUploadsAndDownloadsStream) {
  StartServer();
  constexpr size_t kSize = 256u << 20;
  std::string file = (dir_ / "big").string();
  auto [made, s] =
      Shell(fmt::format("head -c {} /dev/urandom > {} && sha256sum {}", kSize, file, file));
  ASSERT_EQ(s, 0) << made;
  std::string expected = made.substr(0, 64);
  size_t peak_before = PeakRssKib();
  auto [uploaded, s1] = Curl("web.vmctl.localhost", "/sha256", "--data-binary @" + file);
  EXPECT_EQ(uploaded, expected);
  auto [chunked, s2] = Curl("web.vmctl.localhost", "/sha256",
                            "-H 'Transfer-Encoding: chunked' --data-binary @" + file);
  EXPECT_EQ(chunked, expected);
  EXPECT_LT(PeakRssKib() - peak_before, 64u * 1024) << "uploads stream in constant memory";

  std::string pattern;
  while (pattern.size() < kSize) pattern += "0123456789";
  pattern.resize(kSize);
  std::string pattern_hash = Sha256Hex(pattern);
  pattern.clear();
  pattern.shrink_to_fit();
  for (std::string path : {fmt::format("/bytes/{}", kSize), fmt::format("/bytes/{}?c", kSize)}) {
    auto [downloaded, s3] = Shell(
        fmt::format("curl -sS --max-time 60 --cacert {} --resolve web.vmctl.localhost:{}:127.0.0.1 "
                    "'https://web.vmctl.localhost:{}{}' | sha256sum",
                    certificates_->cert(), port_, port_, path));
    EXPECT_EQ(downloaded.substr(0, 64), pattern_hash) << path;
  }
}

TEST_F(ServerTest, WebSocketsPassThrough) {
  StartServer();
  net::io_context io;
  net::ssl::context ctx(net::ssl::context::tls_client);
  ctx.load_verify_file(certificates_->cert());
  ctx.set_verify_mode(net::ssl::verify_peer);
  websocket::stream<beast::ssl_stream<tcp::socket>> ws(io, ctx);
  SSL_set_tlsext_host_name(ws.next_layer().native_handle(), "web.vmctl.localhost");
  beast::get_lowest_layer(ws).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
  ws.next_layer().handshake(net::ssl::stream_base::client);
  ws.handshake(fmt::format("web.vmctl.localhost:{}", port_), "/ws");
  for (const std::string& message : {std::string("hello"), std::string(100000, 'w')}) {
    ws.write(net::buffer(message));
    beast::flat_buffer echo;
    ws.read(echo);
    EXPECT_EQ(beast::buffers_to_string(echo.data()), message);
  }
  // The close handshake passes through; the proxy then ends the TCP connection without a TLS
  // close_notify, which the client reports as a truncated stream.
  beast::error_code ec;
  ws.close(websocket::close_code::normal, ec);
  EXPECT_TRUE(!ec || ec == net::ssl::error::stream_truncated) << ec.message();
}

// A TCP connection to the proxy that sends `bytes` and reads nothing yet.
int RawConnect(uint16_t port, std::string_view bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

// Reads until the proxy closes the connection (or the read timeout), then closes it.
void AwaitClose(int fd) {
  char byte;
  while (::read(fd, &byte, 1) > 0) {
  }
  ::close(fd);
}

TEST_F(ServerTest, BadTlsLeavesOtherConnectionsAlone) {
  StartServer();
  RawTls good(port_, "web.vmctl.localhost", certificates_->cert());
  ASSERT_TRUE(good.ok());
  const std::string request = "GET /headers HTTP/1.1\r\nHost: web.vmctl.localhost\r\n\r\n";
  good.Write(request);
  EXPECT_NE(good.ReadUntil("X-Vmctl-Email").find("X-Vmctl-Email"), std::string::npos);
  size_t fds_before = OpenFds();  // with the upstream connection that request left in the pool
  {
    RawTls no_sni(port_, "", certificates_->cert());
    EXPECT_TRUE(no_sni.ok()) << "no SNI gets the domain's certificate";
    RawTls unknown(port_, "example.org");
    EXPECT_FALSE(unknown.ok());
    RawTls bad_name(port_, "a..b");
    EXPECT_FALSE(bad_name.ok());
    AwaitClose(RawConnect(port_, "\x16\x03\x01\x00\x05garbagegarbagegarbage"));
    // A record header and the start of a ClientHello that promise 200 bytes, then silence: the
    // header timeout ends it.
    int stalled =
        RawConnect(port_, std::string("\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11));
    good.Write(request);
    EXPECT_NE(good.ReadUntil("X-Vmctl-Email").find("X-Vmctl-Email"), std::string::npos)
        << "a stalled handshake holds up nobody";
    AwaitClose(stalled);
  }
  for (int i = 0; i < 250 && (server_->connections() > 1 || OpenFds() > fds_before); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server_->connections(), 1u) << "only the good connection is left";
  EXPECT_EQ(OpenFds(), fds_before);
  good.Write(request);
  EXPECT_NE(good.ReadUntil("X-Vmctl-Email").find("X-Vmctl-Email"), std::string::npos);
}

TEST_F(ServerTest, EndsTlsWithCloseNotifyAndLetsClientsLeaveWithout) {
  StartServer();
  {
    RawTls client(port_, "web.vmctl.localhost");
    ASSERT_TRUE(client.ok());
    client.Write("GET /headers HTTP/1.1\r\nHost: web.vmctl.localhost\r\nConnection: close\r\n\r\n");
    EXPECT_NE(client.ReadAll().find("X-Vmctl-Email"), std::string::npos);
    EXPECT_TRUE(client.ReceivedCloseNotify()) << "a response with Connection: close";
  }
  {
    RawTls client(port_, "web.vmctl.localhost");
    ASSERT_TRUE(client.ok());
    ASSERT_TRUE(client.SendCloseNotify());
    EXPECT_EQ(client.ReadAll(), "");
    EXPECT_TRUE(client.ReceivedCloseNotify()) << "the client's close_notify is answered";
  }
  ASSERT_NO_FATAL_FAILURE(AwaitNoConnections());
  size_t fds_before = OpenFds();
  {
    // Each ends its TCP connection without close_notify: idle, and in the middle of a request.
    RawTls idle(port_, "web.vmctl.localhost");
    ASSERT_TRUE(idle.ok());
    RawTls half(port_, "web.vmctl.localhost");
    ASSERT_TRUE(half.ok());
    half.Write("GET /headers HTTP/1.1\r\nHost: web.vm");
  }
  for (int i = 0; i < 250 && (server_->connections() > 0 || OpenFds() > fds_before); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_EQ(OpenFds(), fds_before);
  auto [out, status] = Curl("web.vmctl.localhost", "/headers");
  EXPECT_EQ(status, 0) << out;
}

TEST_F(ServerTest, HoldsTenThousandIdleConnectionsAndGivesBackFdsAndMemory) {
  constexpr size_t kConnections = 10000;
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  ASSERT_GE(limit.rlim_cur, kConnections + 1000) << "raise ulimit -n";
  StartServer();
  // A first request on each event loop (connections go to them in turn) leaves an upstream
  // connection in that loop's pool and OpenSSL's lazily made tables behind; they stay, so they
  // are part of the start.
  for (int loop = 0; loop < ProxyOptions().threads; ++loop) {
    auto [first, first_status] = Curl("web.vmctl.localhost", "/headers");
    ASSERT_EQ(first_status, 0) << first;
  }
  ASSERT_NO_FATAL_FAILURE(AwaitNoConnections());
  size_t fds_before = OpenFds();
  size_t heap_before = HeapInUse();
  size_t heap_held = 0;
  {
    RawTls idle(port_, "web.vmctl.localhost");
    ASSERT_TRUE(idle.ok());
    FILE* clients = ::popen(fmt::format("exec {} {} web.vmctl.localhost {}", VMCTL_IDLE_TLS_CLIENTS,
                                        port_, kConnections)
                                .c_str(),
                            "r");
    ASSERT_NE(clients, nullptr);
    char line[64] = {};
    int pid = 0;
    bool ready = std::fgets(line, sizeof(line), clients) != nullptr &&
                 std::sscanf(line, "ready %d", &pid) == 1;
    EXPECT_TRUE(ready) << "the idle clients failed (their stderr is above)";
    if (ready) {
      for (int i = 0; i < 500 && server_->connections() < kConnections + 1; ++i) {
        std::this_thread::sleep_for(20ms);
      }
      EXPECT_EQ(server_->connections(), kConnections + 1);
      EXPECT_GE(OpenFds(), fds_before + kConnections);
      heap_held = HeapInUse();
      auto [out, status] = Curl("web.vmctl.localhost", "/headers");
      EXPECT_EQ(status, 0) << out;
      idle.Write("GET /headers HTTP/1.1\r\nHost: web.vmctl.localhost\r\n\r\n");
      EXPECT_NE(idle.ReadUntil("X-Vmctl-Email").find("X-Vmctl-Email"), std::string::npos);
      ::kill(pid, SIGKILL);
    }
    ::pclose(clients);
  }
  for (int i = 0; i < 500 && (server_->connections() > 0 || OpenFds() > fds_before); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_EQ(OpenFds(), fds_before);
  // What the connections held comes back, but for a little the allocator's and OpenSSL's
  // per-thread caches keep.
  size_t held = heap_held > heap_before ? heap_held - heap_before : 0;
  EXPECT_GT(held, kConnections * 1024) << "the measure sees the connections";
  EXPECT_LE(HeapInUse(), heap_before + std::max<size_t>(held / 20, 1u << 20))
      << "before " << heap_before << ", with the connections " << heap_held;
  server_.reset();
  // The in-process upstream closes its ends of the pooled connections once it reads their EOF.
  for (int i = 0; i < 100 && OpenFds() > fds_at_start_; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(OpenFds(), fds_at_start_);
}

TEST_F(ServerTest, StopEndsOpenConnectionsAndWaits) {
  StartServer();
  RawTls idle(port_, "web.vmctl.localhost");
  ASSERT_TRUE(idle.ok());
  RawTls waiting(port_, "web.vmctl.localhost");
  ASSERT_TRUE(waiting.ok());
  waiting.Write("GET /hang HTTP/1.1\r\nHost: web.vmctl.localhost\r\n\r\n");
  for (int i = 0; i < 100 && upstream_.open() == 0; ++i) std::this_thread::sleep_for(20ms);
  auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms) << "not by the response timeout";
  EXPECT_EQ(server_->connections(), 0u);
  EXPECT_EQ(idle.ReadAll(), "");
}

TEST_F(ServerTest, AFirstHandshakeWaitsForItsCertificate) {
  StartServer();
  std::atomic<bool> first_ok = false, second_ok = true;
  std::thread first([&] { first_ok = RawTls(port_, kIssuedName).ok(); });
  std::thread second([&] { second_ok = RawTls(port_, kIssuedName).ok(); });
  certificates_->WaitForWaiters(2);
  RawTls other(port_, "web.vmctl.localhost");
  EXPECT_TRUE(other.ok()) << "other handshakes go on meanwhile";
  certificates_->Finish(true);
  first.join();
  second.join();
  EXPECT_TRUE(first_ok);
  EXPECT_TRUE(second_ok);
}

TEST_F(ServerTest, AHandshakeWhoseCertificateDoesNotComeFails) {
  StartServer();
  std::atomic<bool> ok = true;
  std::thread client([&] { ok = RawTls(port_, kIssuedName).ok(); });
  certificates_->WaitForWaiters(1);
  certificates_->Finish(false);
  client.join();
  EXPECT_FALSE(ok);
}

TEST_F(ServerTest, StopEndsHandshakesWaitingForACertificate) {
  StartServer();
  std::thread client([&] { EXPECT_FALSE(RawTls(port_, kIssuedName).ok()); });
  certificates_->WaitForWaiters(1);
  server_->Stop();
  EXPECT_EQ(server_->connections(), 0u);
  client.join();
  certificates_->Finish(false);  // a late `ready` finds the connection gone
}

TEST_F(ServerTest, PlainHttpRedirectsAndAnswersAcmeChallenges) {
  StartServer();
  uint16_t http = server_->http_port();
  auto [redirect, s1] =
      Shell(fmt::format("curl -sS -i --resolve web.vmctl.localhost:{0}:127.0.0.1 "
                        "'http://web.vmctl.localhost:{0}/a?b=1' 2>&1",
                        http));
  EXPECT_NE(redirect.find("HTTP/1.1 301"), std::string::npos) << redirect;
  EXPECT_NE(redirect.find(fmt::format("Location: https://web.vmctl.localhost:{}/a?b=1", port_)),
            std::string::npos)
      << redirect;
  auto [post, s2] =
      Shell(fmt::format("curl -sS -i -X POST --resolve web.vmctl.localhost:{0}:127.0.0.1 "
                        "'http://web.vmctl.localhost:{0}/form' 2>&1",
                        http));
  EXPECT_NE(post.find("HTTP/1.1 308"), std::string::npos) << post;
  auto [token, s3] =
      Shell(fmt::format("curl -sS --resolve x.vmctl.localhost:{0}:127.0.0.1 "
                        "'http://x.vmctl.localhost:{0}/.well-known/acme-challenge/tok' 2>&1",
                        http));
  EXPECT_EQ(token, "tok.thumbprint");
  auto [unknown, s4] =
      Shell(fmt::format("curl -sS -i --resolve x.vmctl.localhost:{0}:127.0.0.1 "
                        "'http://x.vmctl.localhost:{0}/.well-known/acme-challenge/other' 2>&1",
                        http));
  EXPECT_NE(unknown.find("HTTP/1.1 404"), std::string::npos) << unknown;
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(ServerTest, ApiRequestsGoToTheApiSocket) {
  std::string socket_path = (dir_ / "api.sock").string();
  net::io_context io;
  net::local::stream_protocol::acceptor acceptor(
      io, net::local::stream_protocol::endpoint(socket_path));
  std::thread api([&] {
    net::local::stream_protocol::socket socket(io);
    acceptor.accept(socket);
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::read(socket, buffer, request);
    http::response<http::string_body> response{http::status::ok, 11};
    response.body() = fmt::format("{} as {}\n", request.target(), request["X-Vmctl-User"]);
    response.prepare_payload();
    http::write(socket, response);
  });
  ProxyOptions options = Options();
  options.api_socket = socket_path;
  StartServer(options);
  auto [out, status] = Curl("vmctl.localhost", "/api/v1/vms", "-H 'X-Vmctl-User: root'");
  api.join();
  EXPECT_EQ(out, "/v1/vms as u-alice\n");
}

TEST_F(ServerTest, StartFailsCleanlyWhenThePortIsTaken) {
  StartServer();
  ProxyOptions options = Options();
  options.https_listen = {fmt::format("127.0.0.1:{}", port_)};
  Server second(options, *certificates_, *access_, nullptr);
  auto started = second.Start();
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.error().code(), ErrorCode::kUnavailable);
}

TEST(ListenAddressTest, Parses) {
  EXPECT_EQ(*ParseListenAddress("127.0.0.1:8443"),
            std::pair(std::string("127.0.0.1"), uint16_t{8443}));
  EXPECT_EQ(ParseListenAddress("[::1]:443")->first, "::1");
  for (const char* bad : {"", "8443", "localhost:8443", "127.0.0.1:", "127.0.0.1:99999", "::1:443",
                          "[::1]", "1.2.3.4:x"}) {
    EXPECT_FALSE(ParseListenAddress(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace vmctl::proxy
