// A small web app for tests and benchmarks of the HTTPS proxy: it runs inside test VMs (a static
// binary, so an image of busybox and this file is enough) and natively on the host side as the
// benchmark's upstream, which must not be what limits the measurement.
//
//   GET  /               "hello from NAME\n"
//   GET  /empty          an empty 200 (the benchmark's request)
//   GET  /headers        the request's headers as a JSON object (name -> [values])
//   POST /upload         {"bytes":N,"sha256":"..."} of the body, read as it streams
//   GET  /download?bytes=N  N bytes of a fixed pattern, streamed; /download-sha256?bytes=N its hash
//   GET  /set-cookie     two Set-Cookie headers, one with a Domain= attribute
//   GET  /slow?ms=N      answers after N ms
//   GET  /ws             a WebSocket echo
//
// Usage: web_upstream [--name NAME] [--threads N] ADDRESS:PORT...
#include <openssl/evp.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

std::string g_name = "web_upstream";

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t size) { EVP_DigestUpdate(ctx_, data, size); }
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(ctx_, digest, &length);
    std::string hex;
    for (unsigned int i = 0; i < length; ++i) {
      static constexpr char kDigits[] = "0123456789abcdef";
      hex += kDigits[digest[i] >> 4];
      hex += kDigits[digest[i] & 15];
    }
    return hex;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// Byte i of every download: a pattern that catches reordered or dropped chunks.
void FillPattern(uint64_t offset, char* out, size_t size) {
  for (size_t i = 0; i < size; ++i) out[i] = static_cast<char>(((offset + i) * 131) % 251);
}

uint64_t QueryNumber(std::string_view target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return 0;
  std::string_view query = target.substr(q + 1);
  const std::string prefix = std::string(key) + "=";
  for (size_t start = 0; start <= query.size();) {
    size_t end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(start, end - start);
    if (pair.starts_with(prefix)) {
      uint64_t value = 0;
      std::from_chars(pair.data() + prefix.size(), pair.data() + pair.size(), value);
      return value;
    }
    start = end + 1;
  }
  return 0;
}

std::string_view PathOf(std::string_view target) { return target.substr(0, target.find('?')); }

awaitable<void> Echo(websocket::stream<beast::tcp_stream> ws,
                     http::request<http::empty_body> upgrade) {
  co_await ws.async_accept(upgrade, use_awaitable);
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buffer, asio::as_tuple(use_awaitable));
    if (ec) co_return;
    ws.text(ws.got_text());
    co_await ws.async_write(buffer.data(), use_awaitable);
    buffer.consume(n);
  }
}

awaitable<void> Send(beast::tcp_stream& stream, http::response<http::string_body> res) {
  res.prepare_payload();
  co_await http::async_write(stream, res, use_awaitable);
}

awaitable<void> Download(beast::tcp_stream& stream, unsigned version, bool keep_alive,
                         uint64_t bytes) {
  http::response<http::buffer_body> res{http::status::ok, version};
  res.set(http::field::content_type, "application/octet-stream");
  res.content_length(bytes);
  res.keep_alive(keep_alive);
  res.body().data = nullptr;
  res.body().more = true;
  http::response_serializer<http::buffer_body> sr{res};
  co_await http::async_write_header(stream, sr, use_awaitable);
  std::vector<char> chunk(64 * 1024);
  for (uint64_t sent = 0; sent < bytes;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), bytes - sent));
    FillPattern(sent, chunk.data(), n);
    res.body().data = chunk.data();
    res.body().size = n;
    res.body().more = sent + n < bytes;
    auto [ec, ignored] = co_await http::async_write(stream, sr, asio::as_tuple(use_awaitable));
    if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
    sent += n;
  }
  if (bytes == 0) {
    res.body().more = false;
    co_await http::async_write(stream, sr, use_awaitable);
  }
}

// Reads the body of the request whose header `parser` holds, hashing it as it arrives.
awaitable<http::response<http::string_body>> Upload(
    beast::tcp_stream& stream, beast::flat_buffer& buffer,
    http::request_parser<http::buffer_body>& parser) {
  Sha256 sha;
  uint64_t total = 0;
  std::vector<char> chunk(64 * 1024);
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    auto [ec, ignored] =
        co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
    if (ec && ec != http::error::need_buffer) throw beast::system_error(ec);
    size_t got = chunk.size() - parser.get().body().size;
    sha.Update(chunk.data(), got);
    total += got;
  }
  http::response<http::string_body> res{http::status::ok, parser.get().version()};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(parser.get().keep_alive());
  res.body() = nlohmann::json{{"bytes", total}, {"sha256", sha.Hex()}}.dump() + "\n";
  co_return res;
}

template <class Request>
http::response<http::string_body> Simple(const Request& req, http::status status, std::string body,
                                         std::string_view type = "text/plain") {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::content_type, type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  return res;
}

awaitable<void> Serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    auto [ec, ignored] =
        co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(use_awaitable));
    if (ec) co_return;
    const auto& req = parser.get();
    const std::string_view target(req.target().data(), req.target().size());
    const std::string_view path = PathOf(target);
    const bool keep_alive = req.keep_alive();
    if (websocket::is_upgrade(req) && path == "/ws") {
      http::request<http::empty_body> upgrade(req.base());
      co_await Echo(websocket::stream<beast::tcp_stream>(std::move(stream)), std::move(upgrade));
      co_return;
    }
    if (path == "/upload" && req.method() == http::verb::post) {
      co_await Send(stream, co_await Upload(stream, buffer, parser));
    } else {
      // Every other endpoint ignores a body; it is read and dropped so keep-alive stays in sync.
      char sink[16 * 1024];
      while (!parser.is_done()) {
        parser.get().body().data = sink;
        parser.get().body().size = sizeof(sink);
        auto [rec, n] =
            co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
        if (rec && rec != http::error::need_buffer) co_return;
      }
      if (path == "/download") {
        co_await Download(stream, req.version(), keep_alive, QueryNumber(target, "bytes"));
      } else if (path == "/download-sha256") {
        Sha256 sha;
        std::vector<char> chunk(64 * 1024);
        const uint64_t bytes = QueryNumber(target, "bytes");
        for (uint64_t done = 0; done < bytes;) {
          size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), bytes - done));
          FillPattern(done, chunk.data(), n);
          sha.Update(chunk.data(), n);
          done += n;
        }
        co_await Send(stream, Simple(req, http::status::ok, sha.Hex() + "\n"));
      } else if (path == "/headers") {
        nlohmann::json headers = nlohmann::json::object();
        for (const auto& field : req) {
          headers[std::string(field.name_string())].push_back(std::string(field.value()));
        }
        co_await Send(stream,
                      Simple(req, http::status::ok, headers.dump() + "\n", "application/json"));
      } else if (path == "/set-cookie") {
        auto res = Simple(req, http::status::ok, "cookies\n");
        res.insert(http::field::set_cookie, "app=1; Domain=vmctl.localhost; Path=/; HttpOnly");
        res.insert(http::field::set_cookie, "plain=2; Path=/");
        co_await Send(stream, std::move(res));
      } else if (path == "/slow") {
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_after(std::chrono::milliseconds(QueryNumber(target, "ms")));
        co_await timer.async_wait(use_awaitable);
        co_await Send(stream, Simple(req, http::status::ok, "slow\n"));
      } else if (path == "/empty") {
        co_await Send(stream, Simple(req, http::status::ok, ""));
      } else if (path == "/") {
        co_await Send(stream, Simple(req, http::status::ok, "hello from " + g_name + "\n"));
      } else {
        co_await Send(stream, Simple(req, http::status::not_found, "no such page\n"));
      }
    }
    if (!keep_alive) {
      beast::error_code ignored_ec;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored_ec);
      co_return;
    }
  }
}

awaitable<void> Accept(tcp::acceptor acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(use_awaitable);
    socket.set_option(tcp::no_delay(true));
    auto executor = socket.get_executor();
    asio::co_spawn(executor, Serve(std::move(socket)), [](std::exception_ptr) {});
  }
}

int Usage() {
  std::fprintf(stderr, "usage: web_upstream [--name NAME] [--threads N] ADDRESS:PORT...\n");
  return 2;
}

}  // namespace

// The one boundary: a bad argument or a failed bind ends the program with a message.
int main(int argc, char** argv) try {
  int threads = 1;
  std::vector<tcp::endpoint> endpoints;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--name" && i + 1 < argc) {
      g_name = argv[++i];
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::max(1, std::atoi(argv[++i]));
    } else {
      auto colon = arg.rfind(':');
      if (colon == std::string_view::npos) return Usage();
      endpoints.emplace_back(asio::ip::make_address(std::string(arg.substr(0, colon))),
                             static_cast<uint16_t>(std::atoi(argv[i] + colon + 1)));
    }
  }
  if (endpoints.empty()) return Usage();
  asio::io_context io(threads);
  for (const auto& endpoint : endpoints) {
    tcp::acceptor acceptor(io, endpoint, /*reuse_addr=*/true);
    std::printf("listening on %s:%u\n", endpoint.address().to_string().c_str(),
                acceptor.local_endpoint().port());
    asio::co_spawn(io, Accept(std::move(acceptor)), asio::detached);
  }
  std::fflush(stdout);
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "web_upstream: %s\n", e.what());
  return 1;
}
