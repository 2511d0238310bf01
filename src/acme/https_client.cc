#include "acme/https_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>

#include "base/ascii.h"

namespace vmctl::acme {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

bool IsIpLiteral(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// One request's resolve, connect, handshake, write and read, as chained completion handlers on
// the caller's io_context. (Not a coroutine: clang 14 cannot compile Asio coroutines with the
// sanitizer build's flags.)
class Exchange {
 public:
  Exchange(asio::io_context& ioc, asio::ssl::context& ctx, HttpsUrl url,
           http::request<http::string_body> req, size_t max_body)
      : url_(std::move(url)), req_(std::move(req)), resolver_(ioc), stream_(ioc, ctx) {
    parser_.body_limit(max_body);
    if (req_.method() == http::verb::head) parser_.skip(true);
  }

  void Start() {
    SSL* ssl = stream_.native_handle();
    if (IsIpLiteral(url_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), url_.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, url_.host.c_str());
      SSL_set1_host(ssl, url_.host.c_str());
    }
    resolver_.async_resolve(url_.host, url_.port,
                            [this](beast::error_code ec, tcp::resolver::results_type endpoints) {
                              if (Failed(ec, "connecting")) return;
                              beast::get_lowest_layer(stream_).async_connect(
                                  endpoints, [this](beast::error_code ec, const tcp::endpoint&) {
                                    if (!Failed(ec, "TLS handshake")) Handshake();
                                  });
                            });
  }

  std::string stage = "resolving";
  beast::error_code error;
  bool done = false;
  HttpResponse response;

 private:
  // Records a failure, or moves on to the next stage's name.
  bool Failed(beast::error_code ec, const char* next) {
    if (ec) {
      error = ec;
      return true;
    }
    stage = next;
    return false;
  }

  void Handshake() {
    stream_.async_handshake(asio::ssl::stream_base::client, [this](beast::error_code ec) {
      if (Failed(ec, "sending the request")) return;
      http::async_write(stream_, req_, [this](beast::error_code ec, size_t) {
        if (Failed(ec, "reading the response")) return;
        http::async_read(stream_, buffer_, parser_, [this](beast::error_code ec, size_t) {
          if (!Failed(ec, "done")) Finish();
        });
      });
    });
  }

  void Finish() {
    auto& res = parser_.get();
    response.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      response.headers[LowercaseAscii(field.name_string())] = std::string(field.value());
    }
    response.body = std::move(res.body());
    done = true;
  }

  HttpsUrl url_;
  http::request<http::string_body> req_;
  tcp::resolver resolver_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
};

}  // namespace

std::string HttpResponse::Header(const std::string& lowercase_name) const {
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? "" : it->second;
}

Result<HttpsUrl> ParseHttpsUrl(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) return InvalidArgument("not an https URL");
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  HttpsUrl out;
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target[0] == '?') out.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos || url.find('#') != std::string_view::npos) {
    return InvalidArgument("URL with userinfo or a fragment");
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return InvalidArgument("URL with a space or control character");
    }
  }
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument("bad IPv6 address in URL");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return InvalidArgument("bad URL authority");
    if (!after.empty()) port = after.substr(1);
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return InvalidArgument("URL without a host");
  if (port.data() == nullptr) {
    out.port = "443";
  } else {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return InvalidArgument("bad port in URL");
    }
    out.port = std::to_string(value);
  }
  return out;
}

struct HttpsClient::Impl {
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  HttpsClientOptions options;
};

HttpsClient::HttpsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpsClient::~HttpsClient() = default;

Result<std::unique_ptr<HttpsClient>> HttpsClient::Create(const HttpsClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  beast::error_code ec;
  impl->ctx.set_verify_mode(asio::ssl::verify_peer, ec);
  if (options.ca_bundle.empty()) {
    impl->ctx.set_default_verify_paths(ec);
  } else {
    impl->ctx.load_verify_file(options.ca_bundle.string(), ec);
  }
  if (ec) {
    return InvalidArgument("loading CA certificates " + options.ca_bundle.string() + ": " +
                           ec.message());
  }
  SSL_CTX_set_min_proto_version(impl->ctx.native_handle(), TLS1_2_VERSION);
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(impl)));
}

Result<HttpResponse> HttpsClient::Request(std::string_view method, std::string_view url,
                                          std::string_view body, std::string_view content_type,
                                          std::string_view accept) {
  VMCTL_ASSIGN_OR_RETURN(HttpsUrl parsed, ParseHttpsUrl(url).WithContext(std::string(url)));
  http::request<http::string_body> req(http::string_to_verb(method), parsed.target, 11);
  bool default_port = parsed.port == "443";
  std::string host =
      parsed.host.find(':') != std::string::npos ? "[" + parsed.host + "]" : parsed.host;
  req.set(http::field::host, default_port ? host : host + ":" + parsed.port);
  req.set(http::field::user_agent, "vmctl-acme/1");
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  if (!accept.empty()) req.set(http::field::accept, accept);
  req.body() = std::string(body);
  if (method != "GET" && method != "HEAD") req.prepare_payload();

  asio::io_context ioc;
  // Destroyed before `ioc`; handlers still queued after a timeout are dropped, never run.
  Exchange x(ioc, impl_->ctx, parsed, std::move(req), impl_->options.max_body);
  x.Start();
  ioc.run_for(impl_->options.timeout);
  std::string where = " " + std::string(method) + " " + std::string(url);
  if (x.done) return std::move(x.response);
  if (x.error) return Unavailable(x.stage + where + ": " + x.error.message());
  return DeadlineExceeded(x.stage + where + ": timed out");
}

}  // namespace vmctl::acme
