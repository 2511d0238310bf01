#include "api/server.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/request.h"
#include "base/frame.h"
#include "base/io.h"

namespace vmctl::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using Socket = net::local::stream_protocol::socket;
using Request = http::request<http::string_body>;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kNdjson = "application/x-ndjson";
constexpr size_t kMaxBody = 1 << 20;

json ErrorBody(const Error& error) {
  return {{"error", {{"code", ErrorCodeName(error.code())}, {"message", error.message()}}}};
}

// Messages may carry bytes from outside (a guest's console tail, a name): never a reason to throw.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The socket as Beast's SyncReadStream, failing reads with timed_out once the deadline passes.
class DeadlineReader {
 public:
  explicit DeadlineReader(Socket& socket) : socket_(socket) {}
  void ExpiresAt(Clock::time_point deadline) { deadline_ = deadline; }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline_ - Clock::now());
    if (!WaitReadable(socket_.native_handle(), std::max(left, std::chrono::milliseconds(0))).ok()) {
      ec = net::error::timed_out;
      return 0;
    }
    return socket_.read_some(buffers, ec);
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  Socket& socket_;
  Clock::time_point deadline_ = Clock::time_point::max();
};

// RFC 9112 section 6: a body is framed by exactly one of Content-Length and
// "Transfer-Encoding: chunked"; anything else could be read differently by a proxy in front.
Result<void> CheckFraming(const http::request_header<>& header) {
  size_t encodings = header.count(http::field::transfer_encoding);
  if (encodings == 0) return Ok();
  if (encodings > 1 || !beast::iequals(header[http::field::transfer_encoding], "chunked")) {
    return InvalidArgument("unsupported Transfer-Encoding: only 'chunked' is accepted");
  }
  if (header.count(http::field::content_length) > 0) {
    return InvalidArgument("a request must not carry both Transfer-Encoding and Content-Length");
  }
  return Ok();
}

bool ConnectionEnded(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe;
}

bool SendJson(Socket& socket, unsigned version, http::status status, const json& body,
              bool keep_alive) {
  http::response<http::string_body> res{status, version};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(keep_alive);
  res.body() = Dump(body) + "\n";
  res.prepare_payload();
  beast::error_code ec;
  http::write(socket, res, ec);
  return !ec && keep_alive;
}

bool SendError(Socket& socket, unsigned version, const Error& error, bool keep_alive) {
  return SendJson(socket, version, static_cast<http::status>(error.HttpStatus()), ErrorBody(error),
                  keep_alive);
}

// A chunked response body written piece by piece: NDJSON progress or a followed log.
class ChunkedWriter {
 public:
  ChunkedWriter(Socket& socket, unsigned version, std::string_view content_type) : socket_(socket) {
    http::response<http::empty_body> res{http::status::ok, version};
    res.set(http::field::content_type, content_type);
    res.chunked(true);
    res.keep_alive(false);
    http::response_serializer<http::empty_body> serializer{res};
    http::write_header(socket_, serializer, ec_);
  }
  bool Write(std::string_view data) {
    if (ec_ || data.empty()) return !ec_;
    net::write(socket_, http::make_chunk(net::buffer(data.data(), data.size())), ec_);
    return !ec_;
  }
  bool Line(const json& line) { return Write(Dump(line) + "\n"); }
  void End() {
    if (!ec_) net::write(socket_, http::make_chunk_last(), ec_);
  }

 private:
  Socket& socket_;
  beast::error_code ec_;
};

bool WantsProgress(const Request& req) {
  return req[http::field::accept].find(kNdjson) != std::string_view::npos;
}

// Runs a long operation, streaming its progress as NDJSON when the client asked for it, and
// answering with one JSON document otherwise.
json ErrorFrame(const Error& error) {
  return {{"type", "error"}, {"code", ErrorCodeName(error.code())}, {"message", error.message()}};
}

// The client's half of an exec stream: its frames, to the process, until it hangs up or sends a
// frame of the wrong shape (then `fail` ends the stream with that error).
void ForwardInput(int fd, const std::string& early, agent::ExecSession& session,
                  const std::atomic<bool>& finished,
                  const std::function<void(const Error&)>& fail) {
  FrameDecoder decoder;
  decoder.Feed(early);
  for (;;) {
    for (;;) {
      auto frame = decoder.Next();
      if (!frame.ok()) return fail(frame.error());
      if (!frame->has_value()) break;
      auto input = ParseExecInput(**frame);
      if (!input.ok()) return fail(input.error());
      switch (input->kind) {
        case ExecInput::Kind::kStdin:
          (void)session.WriteStdin(input->data);
          break;
        case ExecInput::Kind::kStdinClose:
          (void)session.CloseStdin();
          break;
        case ExecInput::Kind::kResize:
          (void)session.Resize(input->rows, input->cols);
          break;
        case ExecInput::Kind::kSignal:
          (void)session.Signal(input->signal);
          break;
      }
    }
    auto data = ReadSome(fd, 65536);
    if (!data.ok() || data->empty()) {
      // The client went away: nobody is left to read the output, so end the process.
      if (!finished) (void)session.Signal(SIGKILL);
      return;
    }
    decoder.Feed(*data);
  }
}

bool RunWithProgress(Socket& socket, const Request& req, http::status ok_status,
                     const std::function<Result<json>(const controller::Progress&)>& op) {
  if (!WantsProgress(req)) {
    auto result = op(nullptr);
    if (!result.ok()) return SendError(socket, req.version(), result.error(), req.keep_alive());
    return SendJson(socket, req.version(), ok_status, *result, req.keep_alive());
  }
  ChunkedWriter out(socket, req.version(), kNdjson);
  auto result = op([&](const std::string& line) { out.Line({{"progress", line}}); });
  if (result.ok()) {
    out.Line({{"result", *result}});
  } else {
    out.Line(ErrorBody(result.error()));
  }
  out.End();
  return false;
}

}  // namespace

struct Server::Impl {
  Impl(controller::VmService& v, controller::ImageService& i, ServerOptions o)
      : vms(v), images(i), options(std::move(o)) {}

  controller::VmService& vms;
  controller::ImageService& images;
  ServerOptions options;
  net::io_context ioc;
  std::unique_ptr<net::local::stream_protocol::acceptor> acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<int> connections{0};

  // The user a request acts as: the X-Vmctl-User header (set by the SSH gateway, which
  // authenticated the user), else the local admin. The socket's file mode is the access control.
  std::string Owner(const Request& req) const {
    auto user = req.find("X-Vmctl-User");
    return user == req.end() ? options.owner : std::string(user->value());
  }

  void HandleConnection(Socket socket);
  void ServeConnection(Socket& socket);
  // Reads the next request within the timeouts; nullopt when the connection is to end (having
  // answered what needed an answer).
  std::optional<Request> ReadRequest(Socket& socket, beast::flat_buffer& buffer);
  bool Dispatch(Socket& socket, beast::flat_buffer& buffer, const Request& req);
  bool HandleVm(Socket& socket, beast::flat_buffer& buffer, const Request& req,
                const std::string& name, const std::string& action, const Query& query);
  bool HandleExec(Socket& socket, beast::flat_buffer& buffer, const Request& req,
                  const std::string& name);
  bool HandleLogs(Socket& socket, const Request& req, const std::string& name, bool follow);
};

Server::Server(controller::VmService& vms, controller::ImageService& images, ServerOptions options)
    : impl_(std::make_unique<Impl>(vms, images, std::move(options))) {}

Server::~Server() { Stop(); }

Result<void> Server::Listen() {
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd,
                         ListenUnix(impl_->options.socket_path, impl_->options.socket_mode));
  impl_->acceptor = std::make_unique<net::local::stream_protocol::acceptor>(impl_->ioc);
  beast::error_code ec;
  impl_->acceptor->assign(net::local::stream_protocol(), fd.release(), ec);
  if (ec) return Internal("cannot use the API socket: " + ec.message());
  return Ok();
}

void Server::Serve() {
  while (!impl_->stopping) {
    Socket socket(impl_->ioc);
    beast::error_code ec;
    impl_->acceptor->accept(socket, ec);
    if (ec) {
      if (impl_->stopping) break;
      spdlog::warn("api: accept failed: {}", ec.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (impl_->connections.fetch_add(1) >= impl_->options.max_connections) {
      impl_->connections.fetch_sub(1);
      static constexpr std::string_view kBusy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Connection: close\r\nContent-Length: 77\r\n\r\n"
          "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections to the "
          "API\"}}\n";
      (void)::send(socket.native_handle(), kBusy.data(), kBusy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
      continue;
    }
    std::thread([impl = impl_.get(), s = std::move(socket)]() mutable {
      impl->HandleConnection(std::move(s));
      impl->connections.fetch_sub(1);
    }).detach();
  }
}

void Server::Stop() {
  if (impl_->stopping.exchange(true)) return;
  if (impl_->acceptor && impl_->acceptor->is_open()) {
    // shutdown(2) on a listening socket wakes a thread blocked in accept(2).
    ::shutdown(impl_->acceptor->native_handle(), SHUT_RDWR);
  }
}

void Server::Impl::HandleConnection(Socket socket) {
  try {
    ServeConnection(socket);
  } catch (const std::exception& e) {
    spdlog::error("api: connection ended by an error: {}", e.what());
  } catch (...) {
    spdlog::error("api: connection ended by an unknown error");
  }
}

std::optional<Request> Server::Impl::ReadRequest(Socket& socket, beast::flat_buffer& buffer) {
  if (buffer.size() == 0 && !WaitReadable(socket.native_handle(), options.idle_timeout).ok()) {
    return std::nullopt;  // idle keep-alive connection
  }
  DeadlineReader reader(socket);
  reader.ExpiresAt(Clock::now() + options.header_timeout);
  http::request_parser<http::string_body> parser;
  parser.body_limit(kMaxBody);
  auto failed = [&](const beast::error_code& ec) {
    if (ConnectionEnded(ec)) return;
    if (ec == net::error::timed_out) {
      SendJson(
          socket, 11, http::status::request_timeout,
          ErrorBody(DeadlineExceeded(fmt::format(
              "the request did not arrive within {} s",
              std::chrono::duration_cast<std::chrono::seconds>(options.header_timeout).count()))),
          false);
      return;
    }
    SendError(socket, 11, InvalidArgument("malformed HTTP request: " + ec.message()), false);
  };
  beast::error_code ec;
  http::read_header(reader, buffer, parser, ec);
  if (ec) {
    failed(ec);
    return std::nullopt;
  }
  const auto& header = parser.get();
  if (auto framing = CheckFraming(header); !framing.ok()) {
    SendError(socket, header.version(), framing.error(), false);
    return std::nullopt;
  }
  if (header.method() == http::verb::unknown) {
    SendJson(socket, header.version(), http::status::not_implemented,
             ErrorBody(Unimplemented("unknown HTTP method")), false);
    return std::nullopt;
  }
  http::read(reader, buffer, parser, ec);
  if (ec) {
    failed(ec);
    return std::nullopt;
  }
  return parser.release();
}

void Server::Impl::ServeConnection(Socket& socket) {
  beast::flat_buffer buffer;
  for (;;) {
    auto req = ReadRequest(socket, buffer);
    if (!req) return;
    bool keep_alive;
    try {
      keep_alive = Dispatch(socket, buffer, *req);
    } catch (const std::exception& e) {
      spdlog::error("api: {} {}: {}", std::string(req->method_string()),
                    Dump(std::string(req->target())), e.what());
      SendError(socket, req->version(), Internal("the request failed; see the daemon's log"),
                false);
      return;
    }
    if (!keep_alive) return;
  }
}

bool Server::Impl::Dispatch(Socket& socket, beast::flat_buffer& buffer, const Request& req) {
  const unsigned v = req.version();
  const bool keep = req.keep_alive();
  auto parsed = ParseTarget(req.target());
  if (!parsed.ok()) return SendError(socket, v, parsed.error(), keep);
  const Target& target = *parsed;
  const auto& parts = target.segments;
  const auto method = req.method();
  spdlog::debug("api: {} {}", std::string(req.method_string()), target.path);
  if (parts.empty() || parts[0] != "v1") {
    return SendError(socket, v, NotFound("no such endpoint: " + target.path), keep);
  }
  auto bad_method = [&] {
    return SendJson(socket, v, http::status::method_not_allowed,
                    ErrorBody(InvalidArgument(fmt::format(
                        "{} is not allowed on {}", std::string(req.method_string()), target.path))),
                    keep);
  };
  if (parts.size() == 2 && parts[1] == "health") {
    return SendJson(socket, v, http::status::ok, {{"ok", true}, {"backend", options.backend_name}},
                    keep);
  }
  if (parts.size() >= 2 && parts[1] == "vms") {
    if (parts.size() == 2) {
      if (method == http::verb::get) {
        auto list = vms.List(Owner(req));
        if (!list.ok()) return SendError(socket, v, list.error(), keep);
        json out = json::array();
        for (const auto& vm : *list) out.push_back(ToJson(vm));
        return SendJson(socket, v, http::status::ok, {{"vms", out}}, keep);
      }
      if (method == http::verb::post) {
        auto request = ParseVmRequest(req.body());
        if (!request.ok()) return SendError(socket, v, request.error(), keep);
        return RunWithProgress(
            socket, req, http::status::created, [&](const controller::Progress& p) -> Result<json> {
              VMCTL_ASSIGN_OR_RETURN(VmRecord vm, vms.Create(Owner(req), *request, p));
              return ToJson(vm);
            });
      }
      return bad_method();
    }
    std::string action = parts.size() >= 4 ? parts[3] : "";
    if (parts.size() > 4) {
      return SendError(socket, v, NotFound("no such endpoint: " + target.path), keep);
    }
    return HandleVm(socket, buffer, req, parts[2], action, target.query);
  }
  if (parts.size() >= 2 && parts[1] == "images") {
    if (parts.size() == 2 && method == http::verb::get) {
      auto list = images.List();
      if (!list.ok()) return SendError(socket, v, list.error(), keep);
      json out = json::array();
      for (const auto& image : *list) out.push_back(ToJson(image));
      return SendJson(socket, v, http::status::ok, {{"images", out}}, keep);
    }
    if (parts.size() == 4 && parts[3] == "build") {
      if (method != http::verb::post) return bad_method();
      auto source = ParseImageSource(req.body());
      if (!source.ok()) return SendError(socket, v, source.error(), keep);
      controller::ImageBuildRequest request{parts[2], *source};
      return RunWithProgress(socket, req, http::status::ok,
                             [&](const controller::Progress& p) -> Result<json> {
                               VMCTL_ASSIGN_OR_RETURN(ImageRecord image, images.Build(request, p));
                               return ToJson(image);
                             });
    }
    if (parts.size() == 3) {
      if (method != http::verb::delete_) return bad_method();
      std::vector<std::string> notes;
      auto removed =
          images.Remove(parts[2], [&](const std::string& line) { notes.push_back(line); });
      if (!removed.ok()) return SendError(socket, v, removed.error(), keep);
      return SendJson(socket, v, http::status::ok, {{"removed", parts[2]}, {"notes", notes}}, keep);
    }
    if (parts.size() == 2) return bad_method();
  }
  return SendError(socket, v, NotFound("no such endpoint: " + target.path), keep);
}

bool Server::Impl::HandleVm(Socket& socket, beast::flat_buffer& buffer, const Request& req,
                            const std::string& name, const std::string& action,
                            const Query& query) {
  const unsigned v = req.version();
  const bool keep = req.keep_alive();
  const auto method = req.method();
  const std::string owner = Owner(req);
  auto reply = [&](const Result<VmRecord>& vm, http::status status = http::status::ok) {
    if (!vm.ok()) return SendError(socket, v, vm.error(), keep);
    return SendJson(socket, v, status, ToJson(*vm), keep);
  };
  auto bad_method = [&] {
    return SendJson(socket, v, http::status::method_not_allowed,
                    ErrorBody(InvalidArgument(
                        fmt::format("{} is not allowed here", std::string(req.method_string())))),
                    keep);
  };
  auto with_progress = [&](auto op) {
    return RunWithProgress(socket, req, http::status::ok,
                           [&](const controller::Progress& p) -> Result<json> {
                             VMCTL_ASSIGN_OR_RETURN(VmRecord vm, op(p));
                             return ToJson(vm);
                           });
  };
  if (action.empty()) {
    if (method == http::verb::get) {
      auto vm = vms.Get(owner, name);
      if (!vm.ok()) return SendError(socket, v, vm.error(), keep);
      json out = ToJson(*vm);
      out["disks"] = json::array();
      auto disks = vms.Disks(owner, name);
      if (disks.ok()) {
        for (const auto& d : *disks) {
          out["disks"].push_back({{"role", d.role},
                                  {"path", d.path},
                                  {"format", d.format},
                                  {"wanted_mib", d.wanted_mib},
                                  {"size_bytes", d.usage.size_bytes},
                                  {"allocated_bytes", d.usage.allocated_bytes}});
        }
      } else {
        out["disks_error"] = disks.error().message();
      }
      return SendJson(socket, v, http::status::ok, out, keep);
    }
    if (method == http::verb::delete_) {
      auto removed = vms.Remove(owner, name);
      if (!removed.ok()) return SendError(socket, v, removed.error(), keep);
      return SendJson(socket, v, http::status::ok, {{"removed", name}}, keep);
    }
    return bad_method();
  }
  if (action == "exec") {
    if (method != http::verb::post) return bad_method();
    return HandleExec(socket, buffer, req, name);
  }
  if (action == "logs") {
    if (method != http::verb::get) return bad_method();
    return HandleLogs(socket, req, name, query.Flag("follow"));
  }
  if (action == "shares") {
    if (method == http::verb::get) {
      auto users = vms.SharedWith(owner, name);
      if (!users.ok()) return SendError(socket, v, users.error(), keep);
      json out = json::array();
      for (const auto& u : *users) out.push_back({{"email", u.email}, {"name", u.name}});
      return SendJson(socket, v, http::status::ok, {{"shares", out}}, keep);
    }
    Result<void> changed = Ok();
    if (method == http::verb::post) {
      auto email = ParseShareRequest(req.body());
      if (!email.ok()) return SendError(socket, v, email.error(), keep);
      changed = vms.Share(owner, name, *email);
    } else if (method == http::verb::delete_) {
      auto email = query.values.find("email");
      if (email == query.values.end()) {
        return SendError(socket, v, InvalidArgument("give ?email=ADDRESS"), keep);
      }
      changed = vms.Unshare(owner, name, email->second);
    } else {
      return bad_method();
    }
    if (!changed.ok()) return SendError(socket, v, changed.error(), keep);
    return SendJson(socket, v, http::status::ok, json::object(), keep);
  }
  if (method != http::verb::post) return bad_method();
  if (action == "start") {
    return with_progress([&](const controller::Progress& p) { return vms.Start(owner, name, p); });
  }
  if (action == "stop") return reply(vms.Stop(owner, name, query.Flag("force")));
  if (action == "resize") {
    auto request = ParseResizeRequest(req.body());
    if (!request.ok()) return SendError(socket, v, request.error(), keep);
    return with_progress([&](const controller::Progress& p) {
      return vms.Resize(owner, name, request->root_disk_mib, request->data_disk_mib, p);
    });
  }
  if (action == "restart") {
    return with_progress(
        [&](const controller::Progress& p) { return vms.Restart(owner, name, p); });
  }
  return SendError(socket, v, NotFound("no such VM action: " + action), keep);
}

bool Server::Impl::HandleExec(Socket& socket, beast::flat_buffer& buffer, const Request& req,
                              const std::string& name) {
  const unsigned v = req.version();
  if (!beast::iequals(req[http::field::upgrade], "vmctl-exec")) {
    return SendError(socket, v, InvalidArgument("exec needs the header Upgrade: vmctl-exec"),
                     false);
  }
  auto request = ParseExecRequest(req.body());
  if (!request.ok()) return SendError(socket, v, request.error(), false);
  auto started = vms.Exec(Owner(req), name, *request);
  if (!started.ok()) return SendError(socket, v, started.error(), false);
  std::unique_ptr<agent::ExecSession> session = std::move(started).value();

  http::response<http::empty_body> res{http::status::switching_protocols, v};
  res.set(http::field::upgrade, "vmctl-exec");
  res.set(http::field::connection, "Upgrade");
  beast::error_code ec;
  http::write(socket, res, ec);
  if (ec) {
    (void)session->Signal(SIGKILL);
    return false;
  }
  // From here the connection carries frames both ways (docs/api.md, "exec").
  const int fd = socket.native_handle();
  std::string early = beast::buffers_to_string(buffer.data());
  buffer.consume(buffer.size());
  std::atomic<bool> finished{false};
  // Both threads write frames; after a bad frame from the client only its error is sent.
  std::mutex write_mu;
  bool broken = false;
  auto send = [&](const json& frame) {
    std::lock_guard lock(write_mu);
    return !broken && WriteFrame(fd, frame).ok();
  };
  auto end_stream = [&](const Error& error) {
    {
      std::lock_guard lock(write_mu);
      if (!broken) (void)WriteFrame(fd, ErrorFrame(error));
      broken = true;
    }
    (void)session->Signal(SIGKILL);
  };
  std::thread reader([&] {
    try {
      ForwardInput(fd, early, *session, finished, end_stream);
    } catch (const std::exception& e) {
      spdlog::error("api: exec stream of VM '{}': {}", name, e.what());
      end_stream(Internal("the exec stream failed; see the daemon's log"));
    }
  });
  for (;;) {
    auto event = session->Next();
    json frame;
    if (!event.ok()) {
      frame = ErrorFrame(event.error());
    } else if (event->kind == agent::ExecEvent::Kind::kExit) {
      frame = {{"type", "exit"}, {"code", event->exit_code}};
    } else {
      frame = {{"type", event->kind == agent::ExecEvent::Kind::kStdout ? "stdout" : "stderr"},
               {"data", Base64Encode(event->data)}};
    }
    bool last = !event.ok() || event->kind == agent::ExecEvent::Kind::kExit;
    if (last) finished = true;
    if (!send(frame)) {
      (void)session->Signal(SIGKILL);
      if (!last) {
        // Drain until the exit so the agent's stream is released.
        while (true) {
          auto rest = session->Next();
          if (!rest.ok() || rest->kind == agent::ExecEvent::Kind::kExit) break;
        }
      }
      finished = true;
      break;
    }
    if (last) break;
  }
  ::shutdown(fd, SHUT_RDWR);
  reader.join();
  return false;
}

bool Server::Impl::HandleLogs(Socket& socket, const Request& req, const std::string& name,
                              bool follow) {
  auto path = vms.ConsoleLog(Owner(req), name);
  if (!path.ok()) return SendError(socket, req.version(), path.error(), false);
  ChunkedWriter out(socket, req.version(), "text/plain; charset=utf-8");
  std::ifstream in;
  std::streamoff offset = 0;
  char buf[65536];
  const int fd = socket.native_handle();
  for (;;) {
    if (!in.is_open()) in.open(*path, std::ios::binary);
    if (in.is_open()) {
      in.clear();
      in.seekg(offset);
      while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
        auto n = in.gcount();
        offset += n;
        if (!out.Write(std::string_view(buf, static_cast<size_t>(n)))) return false;
      }
    }
    if (!follow) break;
    // Follow until the client hangs up or the VM is removed.
    if (!vms.Get(Owner(req), name).ok()) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 250) > 0) {
      char probe;
      if (::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) return false;
    }
    // A log that was truncated or replaced (VM restarted) is read again from its start.
    std::error_code ec;
    auto size = std::filesystem::file_size(*path, ec);
    if (!ec && static_cast<std::streamoff>(size) < offset) offset = 0;
  }
  out.End();
  return false;
}

}  // namespace vmctl::api
