// Real handshakes against a CertStore: a small Boost.Asio TLS server on NewSniServerContext, as
// the proxy's listener, with curl and `openssl s_client` as clients.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <thread>

#include "base/process.h"
#include "tls/cert_store.h"
#include "tls/certificates.h"
#include "tls/server_context.h"
#include "tls/test_util.h"

namespace vmctl::tls {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr char kDomain[] = "vmctl.localhost";

// Answers every request on 127.0.0.1:port() with "ok", one event-loop thread.
class TestServer {
 public:
  explicit TestServer(CertificateSource& source) : ssl_(MakeContext(source)) {
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::address_v4::loopback(), 0});
    acceptor_.listen();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  using Stream = asio::ssl::stream<tcp::socket>;

  static asio::ssl::context MakeContext(CertificateSource& source) {
    auto listener = NewSniServerContext(source);
    EXPECT_TRUE(listener.ok());
    SSL_CTX_up_ref(listener->get());  // asio's context frees its own reference
    return asio::ssl::context(listener->get());
  }

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto stream = std::make_shared<Stream>(std::move(socket), ssl_);
      stream->async_handshake(asio::ssl::stream_base::server,
                              [this, stream](boost::system::error_code ec) {
                                if (!ec) Serve(stream);
                              });
      Accept();
    });
  }

  void Serve(std::shared_ptr<Stream> stream) {
    auto buffer = std::make_shared<asio::streambuf>();
    asio::async_read_until(
        *stream, *buffer, "\r\n\r\n", [stream, buffer](boost::system::error_code ec, size_t) {
          if (ec) return;
          static const std::string kResponse =
              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: "
              "close\r\n\r\nok";
          asio::async_write(*stream, asio::buffer(kResponse),
                            [stream](boost::system::error_code, size_t) {
                              stream->async_shutdown([stream](boost::system::error_code) {});
                            });
        });
  }

  asio::io_context io_;
  asio::ssl::context ssl_;
  tcp::acceptor acceptor_{io_};
  std::thread thread_;
};

class HandshakeTest : public TlsTest {
 protected:
  void SetUp() override {
    TlsTest::SetUp();
    auto certs = OpenCertificates(dir_, kDomain, /*use_local_ca=*/true);
    ASSERT_TRUE(certs.ok()) << certs.error().message();
    certs_ = std::move(certs).value();
    server_ = std::make_unique<TestServer>(*certs_.store);
  }
  void TearDown() override {
    server_.reset();
    TlsTest::TearDown();
  }

  void Install(const std::vector<std::string>& names) {
    auto issued = certs_.local_ca->Issue(names);
    ASSERT_TRUE(issued.ok()) << issued.error().message();
    auto installed = certs_.store->Install(names, issued->chain_pem, issued->key_pem);
    ASSERT_TRUE(installed.ok()) << installed.error().message();
  }

  std::string Ca() const { return certs_.local_ca->certificate_path().string(); }

  RunOutput Curl(const std::string& host, std::vector<std::string> extra = {}) {
    std::string port = std::to_string(server_->port());
    std::vector<std::string> argv = {
        "curl",     "-sS", "--max-time", "20",
        "--cacert", Ca(),  "--resolve",  host + ":" + port + ":127.0.0.1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.push_back("https://" + host + ":" + port + "/");
    auto out = RunCommand(argv);
    EXPECT_TRUE(out.ok());
    return out.ok() ? *out : RunOutput{-1, "", ""};
  }

  // `openssl s_client` with `sni` (nullopt: none sent); its output includes the served chain.
  RunOutput SClient(std::optional<std::string> sni, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {"openssl",
                                     "s_client",
                                     "-connect",
                                     "127.0.0.1:" + std::to_string(server_->port()),
                                     "-CAfile",
                                     Ca(),
                                     "-verify_return_error"};
    if (sni) {
      argv.insert(argv.end(), {"-servername", *sni, "-verify_hostname", *sni});
    } else {
      argv.push_back("-noservername");
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunOptions options;
    options.stdin_data = "";
    options.timeout = std::chrono::seconds(20);
    auto out = RunCommand(argv, options);
    EXPECT_TRUE(out.ok());
    return out.ok() ? *out : RunOutput{-1, "", ""};
  }

  // The leaf a handshake served, from s_client's output.
  static UniqueX509 ServedLeaf(const RunOutput& out) {
    EXPECT_EQ(out.exit_code, 0) << out.out << out.err;
    return FirstCertificate(out.out);
  }

  Certificates certs_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(HandshakeTest, CurlReachesAVmNameWithTheLocalCa) {
  RunOutput out = Curl("web.vmctl.localhost", {"-w", " %{http_version}"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "ok 1.1") << "ALPN picked http/1.1";
  out = Curl("vmctl.localhost", {"--http2", "-w", " %{http_version}"});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(out.out, "ok 1.1") << "h2 is not offered yet";
  out = Curl("web.vmctl.localhost", {"--cacert", "/etc/ssl/certs/ca-certificates.crt"});
  EXPECT_NE(out.exit_code, 0) << "only the local CA vouches for it";
}

TEST_F(HandshakeTest, SniPicksTheCertificateAndNoSniGetsTheDomains) {
  Install({"special.vmctl.localhost"});
  UniqueX509 vm = ServedLeaf(SClient("web.vmctl.localhost"));
  ASSERT_NE(vm, nullptr);
  EXPECT_EQ(DnsNames(vm.get()), (std::vector<std::string>{kDomain, "*.vmctl.localhost"}));
  UniqueX509 exact = ServedLeaf(SClient("special.vmctl.localhost"));
  ASSERT_NE(exact, nullptr);
  EXPECT_EQ(DnsNames(exact.get()), std::vector<std::string>{"special.vmctl.localhost"});
  UniqueX509 none = ServedLeaf(SClient(std::nullopt));
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(X509_cmp(none.get(), vm.get()), 0);
}

TEST_F(HandshakeTest, UnknownSniFailsTheHandshake) {
  for (const char* name : {"unknown.example", "a.web.vmctl.localhost"}) {
    RunOutput out = SClient(name);
    EXPECT_NE(out.exit_code, 0) << name;
    EXPECT_NE(out.err.find("unrecognized name"), std::string::npos) << out.err;
  }
  RunOutput ok = Curl("web.vmctl.localhost");
  EXPECT_EQ(ok.out, "ok") << "the server carries on";
}

TEST_F(HandshakeTest, OnlyTls12And13) {
  RunOutput out = SClient("web.vmctl.localhost", {"-tls1_3"});
  EXPECT_NE(out.out.find("TLSv1.3"), std::string::npos) << out.out;
  out = SClient("web.vmctl.localhost", {"-tls1_2"});
  EXPECT_NE(out.out.find("Cipher is ECDHE-ECDSA-"), std::string::npos) << out.out;
  out = SClient("web.vmctl.localhost", {"-tls1_2", "-cipher", "AES128-GCM-SHA256"});
  EXPECT_NE(out.exit_code, 0) << "no cipher without forward secrecy";
}

TEST_F(HandshakeTest, AlpnSelectsHttp1) {
  RunOutput out = SClient("web.vmctl.localhost", {"-alpn", "h2,http/1.1"});
  EXPECT_NE(out.out.find("ALPN protocol: http/1.1"), std::string::npos) << out.out;
  out = SClient("web.vmctl.localhost", {"-alpn", "h2"});
  EXPECT_EQ(out.exit_code, 0) << "no shared protocol: carries on without ALPN";
  EXPECT_NE(out.out.find("No ALPN negotiated"), std::string::npos) << out.out;
}

TEST_F(HandshakeTest, SessionsResumeWithTickets) {
  std::string session = (dir_ / "session").string();
  RunOutput first = SClient("web.vmctl.localhost", {"-tls1_2", "-sess_out", session});
  EXPECT_NE(first.out.find("New, TLSv1.2"), std::string::npos) << first.out;
  RunOutput again = SClient("web.vmctl.localhost", {"-tls1_2", "-sess_in", session});
  EXPECT_NE(again.out.find("Reused, TLSv1.2"), std::string::npos) << again.out;
}

TEST_F(HandshakeTest, InstallSwapsTheCertificateWhileServing) {
  UniqueX509 before = ServedLeaf(SClient("web.vmctl.localhost"));
  ASSERT_NE(before, nullptr);
  Install({kDomain, "*.vmctl.localhost"});
  UniqueX509 after = ServedLeaf(SClient("web.vmctl.localhost"));
  ASSERT_NE(after, nullptr);
  EXPECT_NE(X509_cmp(before.get(), after.get()), 0);
  auto stored = ReadFile(dir_ / "tls/certs/vmctl.localhost.crt");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(X509_cmp(FirstCertificate(*stored).get(), after.get()), 0);
  EXPECT_EQ(Curl("web.vmctl.localhost").out, "ok");
}

}  // namespace
}  // namespace vmctl::tls
