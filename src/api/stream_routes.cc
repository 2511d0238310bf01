#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "api/exchange.h"
#include "api/exec_frames.h"
#include "base/frame.h"
#include "base/io.h"

namespace vmctl::api {
namespace {

using nlohmann::json;

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

bool HandleExec(controller::VmService& vms, const Exchange& ex, const std::string& name) {
  Socket& socket = ex.socket;
  const Request& req = ex.req;
  beast::flat_buffer& buffer = ex.buffer;
  const unsigned v = req.version();
  if (!beast::iequals(req[http::field::upgrade], kExecUpgrade)) {
    return SendError(
        socket, v, InvalidArgument(fmt::format("exec needs the header Upgrade: {}", kExecUpgrade)),
        false);
  }
  auto request = ParseExecRequest(req.body());
  if (!request.ok()) return SendError(socket, v, request.error(), false);
  auto started = vms.Exec(ex.owner, name, *request);
  if (!started.ok()) return SendError(socket, v, started.error(), false);
  std::unique_ptr<agent::ExecSession> session = std::move(started).value();

  http::response<http::empty_body> res{http::status::switching_protocols, v};
  res.set(http::field::upgrade, kExecUpgrade);
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
      if (!broken) (void)WriteFrame(fd, EncodeExecOutput(ExecError(error)));
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
    ExecOutput output;
    if (!event.ok()) {
      output = ExecError(event.error());
    } else if (event->kind == agent::ExecEvent::Kind::kExit) {
      output.kind = ExecOutput::Kind::kExit;
      output.exit_code = event->exit_code;
    } else {
      output.kind = event->kind == agent::ExecEvent::Kind::kStdout ? ExecOutput::Kind::kStdout
                                                                   : ExecOutput::Kind::kStderr;
      output.data = std::move(event->data);
    }
    bool last = !event.ok() || event->kind == agent::ExecEvent::Kind::kExit;
    if (last) finished = true;
    if (!send(EncodeExecOutput(output))) {
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

bool HandleLogs(controller::VmService& vms, const Exchange& ex, const std::string& name,
                bool follow) {
  Socket& socket = ex.socket;
  const Request& req = ex.req;
  auto path = vms.ConsoleLog(ex.owner, name);
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
    if (!vms.Get(ex.owner, name).ok()) break;
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

}  // namespace

Routed RouteVmStreams(controller::VmService& vms, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() != 4 || parts[1] != "vms") return std::nullopt;
  if (parts[3] == "exec") {
    if (ex.req.method() != http::verb::post) return ex.BadMethod();
    return HandleExec(vms, ex, parts[2]);
  }
  if (parts[3] == "logs") {
    if (ex.req.method() != http::verb::get) return ex.BadMethod();
    return HandleLogs(vms, ex, parts[2], ex.target.query.Flag("follow"));
  }
  return std::nullopt;
}

}  // namespace vmctl::api
