#include "agent/guest/server.h"

// clang-format off: vm_sockets.h needs sys/socket.h first.
#include <linux/vm_sockets.h>
#include <sys/socket.h>
// clang-format on
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "agent/guest/spawn.h"
#include "agent/guest/system.h"
#include "agent/guest/virtio_port.h"
#include "base/frame.h"
#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::agent::guest {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kReadChunk = 64 * 1024;
// Back-pressure: children's output is not read while a connection has this much unsent, and a
// connection is not read while one of its streams has this much stdin the child did not take.
constexpr size_t kOutputHighWater = 1024 * 1024;
constexpr size_t kStdinHighWater = 1024 * 1024;
constexpr milliseconds kPortRetry{200};
constexpr milliseconds kHostCheck{100};
constexpr milliseconds kReopenBackoff{100};
constexpr milliseconds kVsockRetry{1000};
constexpr milliseconds kShutdownFlush{2000};

__attribute__((format(printf, 1, 2))) void Log(const char* format, ...) {
  std::fprintf(stderr, "vmctl-agent: ");
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

struct Stream {
  uint64_t id = 0;
  pid_t pid = -1;
  bool tty = false;
  UniqueFd in, out, err;
  std::string stdin_buffer;
  bool stdin_close = false;  // close `in` once stdin_buffer is written
  std::optional<int> exit_code;
};

enum class Transport { kUnix, kVsock, kVirtio };

struct Session {
  uint64_t id = 0;
  Transport transport = Transport::kUnix;
  UniqueFd fd;
  bool is_socket = false;
  // A virtio-serial port opened while no host is attached: its poll() reports POLLHUP until one
  // is, so it is checked on a timer instead of being polled.
  bool waiting_for_host = false;
  bool ended = false;
  FrameDecoder decoder;
  std::string out;
  size_t out_offset = 0;
  std::map<uint64_t, Stream> streams;
  uint64_t next_stream = 1;

  size_t Unsent() const { return out.size() - out_offset; }
  bool StdinFull() const {
    for (const auto& [id, s] : streams) {
      if (s.stdin_buffer.size() > kStdinHighWater) return true;
    }
    return false;
  }
};

Error ErrorFromJson(const json::exception& e) { return InvalidArgument(e.what()); }

class Server {
 public:
  explicit Server(const ServerOptions& options) : options_(options) {}

  int Run();

 private:
  // What a pollfd entry belongs to.
  struct Target {
    enum Kind { kSignal, kUnixListener, kVsockListener, kSession, kStdin, kStdout, kStderr } kind;
    uint64_t session = 0;
    uint64_t stream = 0;
  };

  Result<void> Setup();
  void TrySetupVsock();
  void VirtioTick();
  void OpenVirtioPort();
  void Accept(int listener, Transport transport);
  Session& AddSession(UniqueFd fd, Transport transport, bool is_socket);
  void EndSession(Session& s, const std::string& reason);

  void OnSessionReadable(Session& s);
  void HandleFrame(Session& s, const json& frame);
  void HandleRequest(Session& s, const json& frame);
  Result<json> Exec(Session& s, const json& frame);
  void HandleStreamMessage(Session& s, const json& frame);
  void OnStreamOutput(Session& s, Stream& stream, bool is_stderr);
  void OnStreamInput(Stream& stream);
  void FinishIfDone(Session& s, Stream& stream);

  void Send(Session& s, const json& message);
  void Flush(Session& s);
  void FlushBlocking(Session& s, milliseconds limit);
  void PowerOff(Session& s, bool reboot);
  void OnSignals();
  void Reap();
  Session* FindSession(uint64_t id);

  ServerOptions options_;
  json hello_;
  UniqueFd signal_fd_, unix_listener_, vsock_listener_;
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  uint64_t next_session_ = 1;
  std::map<pid_t, std::pair<uint64_t, uint64_t>> children_;  // pid -> (session, stream)
  bool stop_ = false;

  struct {
    bool enabled = false;
    std::optional<uint64_t> session;
    Clock::time_point next_action;
    std::string last_problem;  // logged once until the problem changes
  } virtio_;
  struct {
    bool wanted = false;
    Clock::time_point next_attempt;
    bool logged = false;
  } vsock_;
  std::optional<pid_t> power_pid_;
  bool power_reboot_ = false;
};

Result<void> Server::Setup() {
  hello_ = HelloFields(options_.version);
  hello_["type"] = "hello";
  // SIGPIPE: a vanished peer shows as EPIPE. SIGHUP: nothing to reload.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) return ErrnoError("sigprocmask", errno);
  signal_fd_.reset(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_.valid()) return ErrnoError("signalfd", errno);

  if (options_.listen_unix) {
    VMCTL_ASSIGN_OR_RETURN(unix_listener_, ListenUnix(*options_.listen_unix, 0600));
    ::fcntl(unix_listener_.get(), F_SETFL, O_NONBLOCK);
    Log("listening on unix socket %s", options_.listen_unix->c_str());
  }
  if (options_.vsock_port) {
    vsock_.wanted = true;
    TrySetupVsock();
  }
  virtio_.enabled = options_.virtio_port || options_.discover_virtio_port;
  virtio_.next_action = Clock::now();
  return Ok();
}

void Server::TrySetupVsock() {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    // The kernel has no vsock at all: this will not change while we run.
    Log("vsock unavailable (%s); serving without it", std::strerror(errno));
    vsock_.wanted = false;
    return;
  }
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_port = *options_.vsock_port;
  addr.svm_cid = VMADDR_CID_ANY;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
      ::listen(fd.get(), 16) < 0) {
    // Typically the transport module is not loaded yet; it may be soon.
    if (!vsock_.logged) {
      Log("vsock port %u not available yet (%s); retrying", *options_.vsock_port,
          std::strerror(errno));
      vsock_.logged = true;
    }
    vsock_.next_attempt = Clock::now() + kVsockRetry;
    return;
  }
  Log("listening on vsock port %u", *options_.vsock_port);
  vsock_listener_ = std::move(fd);
  vsock_.wanted = false;
}

// Drives the virtio-serial port: (re)open it when absent, and notice a host attaching.
void Server::VirtioTick() {
  if (!virtio_.enabled || Clock::now() < virtio_.next_action) return;
  if (!virtio_.session) {
    OpenVirtioPort();
    return;
  }
  Session* s = FindSession(*virtio_.session);
  if (s == nullptr || !s->waiting_for_host) return;
  pollfd p{s->fd.get(), POLLIN | POLLOUT, 0};
  int r = ::poll(&p, 1, 0);
  if (r < 0) return;
  if (p.revents & (POLLERR | POLLNVAL)) {
    EndSession(*s, "port error");
  } else if (p.revents & POLLHUP) {
    virtio_.next_action = Clock::now() + kHostCheck;
  } else {
    s->waiting_for_host = false;
    Log("host attached to the virtio-serial port");
    Flush(*s);
  }
}

void Server::OpenVirtioPort() {
  std::optional<std::filesystem::path> path = options_.virtio_port;
  if (!path) path = FindVirtioPort("/dev", "/sys/class/virtio-ports", kVirtioPortName);
  auto retry = [&](const std::string& problem) {
    if (problem != virtio_.last_problem) Log("%s; retrying", problem.c_str());
    virtio_.last_problem = problem;
    virtio_.next_action = Clock::now() + kPortRetry;
  };
  if (!path) return retry(std::string("virtio-serial port ") + kVirtioPortName + " not found");
  struct stat st {};
  if (::stat(path->c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    auto connected = ConnectUnix(*path);
    if (!connected.ok()) return retry(connected.error().message());
    ::fcntl(connected->get(), F_SETFL, O_NONBLOCK);
    AddSession(std::move(connected).value(), Transport::kVirtio, true);
  } else {
    UniqueFd fd(::open(path->c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd.valid()) return retry("open " + path->string() + ": " + std::strerror(errno));
    Session& s = AddSession(std::move(fd), Transport::kVirtio, false);
    s.waiting_for_host = true;
  }
  Log("opened %s", path->c_str());
  virtio_.last_problem.clear();
  virtio_.next_action = Clock::now();
}

Session& Server::AddSession(UniqueFd fd, Transport transport, bool is_socket) {
  auto session = std::make_unique<Session>();
  session->id = next_session_++;
  session->transport = transport;
  session->fd = std::move(fd);
  session->is_socket = is_socket;
  Session& s = *session;
  sessions_[s.id] = std::move(session);
  if (transport == Transport::kVirtio) virtio_.session = s.id;
  // Bytes written before the host attaches are delivered when it does, so the greeting can be
  // queued right away.
  Send(s, hello_);
  return s;
}

void Server::Accept(int listener, Transport transport) {
  for (;;) {
    UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        Log("accept: %s", std::strerror(errno));
      }
      return;
    }
    AddSession(std::move(fd), transport, true);
  }
}

Session* Server::FindSession(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() || it->second->ended ? nullptr : it->second.get();
}

void Server::EndSession(Session& s, const std::string& reason) {
  if (s.ended) return;
  s.ended = true;
  // Whatever this connection started dies with it, so nothing runs without an owner.
  for (auto& [id, stream] : s.streams) {
    if (!stream.exit_code) ::kill(-stream.pid, SIGKILL);
  }
  if (s.transport == Transport::kVirtio) {
    Log("virtio-serial session ended (%s); reopening the port", reason.c_str());
    virtio_.session.reset();
    virtio_.next_action = Clock::now() + kReopenBackoff;
  } else if (!reason.empty()) {
    Log("connection ended: %s", reason.c_str());
  }
}

void Server::Send(Session& s, const json& message) { s.out += EncodeFrame(message); }

void Server::Flush(Session& s) {
  if (s.ended || s.waiting_for_host) return;
  while (s.Unsent() > 0) {
    const char* data = s.out.data() + s.out_offset;
    ssize_t n = s.is_socket ? ::send(s.fd.get(), data, s.Unsent(), MSG_NOSIGNAL | MSG_DONTWAIT)
                            : ::write(s.fd.get(), data, s.Unsent());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      EndSession(s, std::string("write: ") + std::strerror(errno));
      return;
    }
    s.out_offset += static_cast<size_t>(n);
  }
  if (s.out_offset == s.out.size()) {
    s.out.clear();
    s.out_offset = 0;
  } else if (s.out_offset > kOutputHighWater) {
    s.out.erase(0, s.out_offset);
    s.out_offset = 0;
  }
}

void Server::FlushBlocking(Session& s, milliseconds limit) {
  auto deadline = Clock::now() + limit;
  Flush(s);
  while (!s.ended && !s.waiting_for_host && s.Unsent() > 0 && Clock::now() < deadline) {
    pollfd p{s.fd.get(), POLLOUT, 0};
    ::poll(&p, 1, 50);
    Flush(s);
  }
}

void Server::OnSessionReadable(Session& s) {
  std::string buffer(kReadChunk, '\0');
  ssize_t n = ::read(s.fd.get(), buffer.data(), buffer.size());
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    EndSession(s, std::string("read: ") + std::strerror(errno));
    return;
  }
  if (n == 0) {
    EndSession(s, s.transport == Transport::kVirtio ? "host detached" : "");
    return;
  }
  s.decoder.Feed(std::string_view(buffer.data(), static_cast<size_t>(n)));
  while (!s.ended) {
    auto frame = s.decoder.Next();
    if (!frame.ok()) {
      EndSession(s, "protocol error: " + frame.error().message());
      return;
    }
    if (!frame->has_value()) return;
    HandleFrame(s, **frame);
  }
}

void Server::HandleFrame(Session& s, const json& frame) {
  try {
    if (frame.contains("op")) {
      HandleRequest(s, frame);
    } else if (frame.contains("type")) {
      HandleStreamMessage(s, frame);
    } else {
      Log("ignoring a frame with neither op nor type");
    }
  } catch (const json::exception& e) {
    // A malformed message from the host is its bug; answering it keeps the connection usable.
    if (frame.contains("id")) {
      Send(s, {{"id", frame["id"]},
               {"ok", false},
               {"error", {{"code", "invalid_argument"}, {"message", e.what()}}}});
    } else {
      Log("ignoring a malformed message: %s", e.what());
    }
  }
}

void Server::HandleRequest(Session& s, const json& frame) {
  const json id = frame.value("id", json());
  const std::string op = frame.at("op").get<std::string>();
  Result<json> result = json::object();
  bool power_off = false;
  if (op == "hello") {
    result = HelloFields(options_.version);
  } else if (op == "ping") {
    result = json::object();
  } else if (op == "exec") {
    result = Exec(s, frame);
  } else if (op == "stats") {
    result = Stats();
  } else if (op == "host_keys") {
    result = HostKeys(options_.etc_dir);
  } else if (op == "set_authorized_keys") {
    result = SetAuthorizedKeys(frame, options_.etc_dir);
  } else if (op == "configure_network") {
    result = ConfigureNetwork(frame, options_.etc_dir);
  } else if (op == "time_sync") {
    result = TimeSync(frame);
  } else if (op == "shutdown") {
    power_reboot_ = frame.value("reboot", false);
    power_off = true;
  } else {
    result = Unimplemented("unknown op \"" + op + "\"");
  }
  json answer;
  if (result.ok()) {
    answer = std::move(result).value();
    answer["id"] = id;
    answer["ok"] = true;
  } else {
    answer = {
        {"id", id},
        {"ok", false},
        {"error",
         {{"code", ErrorCodeName(result.error().code())}, {"message", result.error().message()}}}};
  }
  Send(s, answer);
  if (power_off) PowerOff(s, power_reboot_);
}

Result<json> Server::Exec(Session& s, const json& frame) {
  SpawnRequest request;
  try {
    request.argv = frame.at("argv").get<std::vector<std::string>>();
    request.cwd = frame.value("cwd", std::string("/"));
    request.tty = frame.value("tty", false);
    request.rows = frame.value("rows", 24);
    request.cols = frame.value("cols", 80);
  } catch (const json::exception& e) {
    return ErrorFromJson(e);
  }
  if (request.argv.empty() || request.argv[0].empty()) return InvalidArgument("argv is empty");
  if (request.cwd.empty()) request.cwd = "/";
  if (request.rows < 1 || request.rows > 65535 || request.cols < 1 || request.cols > 65535) {
    return InvalidArgument("rows and cols must be within 1..65535");
  }
  std::map<std::string, std::string> env = {
      {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, {"HOME", "/root"}};
  if (request.tty) env["TERM"] = "xterm-256color";
  if (auto it = frame.find("env"); it != frame.end() && !it->is_null()) {
    if (!it->is_object()) return InvalidArgument("env must be an object");
    for (const auto& [name, value] : it->items()) {
      if (name.empty() || name.find('=') != std::string::npos || !value.is_string()) {
        return InvalidArgument("bad environment variable \"" + name + "\"");
      }
      env[name] = value.get<std::string>();
    }
  }
  for (const auto& [name, value] : env) request.env.push_back(name + "=" + value);

  VMCTL_ASSIGN_OR_RETURN(SpawnedChild child, Spawn(request));
  Stream stream;
  stream.id = s.next_stream++;
  stream.pid = child.pid;
  stream.tty = request.tty;
  stream.in = std::move(child.in);
  stream.out = std::move(child.out);
  stream.err = std::move(child.err);
  children_[stream.pid] = {s.id, stream.id};
  uint64_t id = stream.id;
  s.streams.emplace(id, std::move(stream));
  return json{{"stream", id}};
}

void Server::HandleStreamMessage(Session& s, const json& frame) {
  const std::string type = frame.at("type").get<std::string>();
  if (!frame.contains("stream")) return;
  auto it = s.streams.find(frame.at("stream").get<uint64_t>());
  // Messages for a stream that just finished cross its exit frame; they are moot.
  if (it == s.streams.end()) return;
  Stream& stream = it->second;
  if (type == "stdin") {
    auto data = Base64Decode(frame.at("data").get<std::string>());
    if (!data.ok()) {
      Log("stream %llu: bad stdin data", static_cast<unsigned long long>(stream.id));
      return;
    }
    if (stream.in.valid() && !stream.stdin_close) stream.stdin_buffer += *data;
  } else if (type == "stdin_close") {
    if (!stream.in.valid() || stream.stdin_close) return;
    if (stream.tty) {
      // A pty has no end of file of its own: send the terminal's EOF character, like a user
      // pressing ^D, and keep the pty open for the output.
      termios t{};
      char eof = ::tcgetattr(stream.in.get(), &t) == 0 ? static_cast<char>(t.c_cc[VEOF]) : '\x04';
      stream.stdin_buffer += eof;
    }
    stream.stdin_close = true;
    if (stream.stdin_buffer.empty()) stream.in.reset();
  } else if (type == "resize") {
    if (stream.tty && stream.out.valid()) {
      (void)SetWindowSize(stream.out.get(), frame.at("rows").get<int>(),
                          frame.at("cols").get<int>());
    }
  } else if (type == "signal") {
    int sig = frame.at("signal").get<int>();
    if (sig > 0 && sig < NSIG) ::kill(-stream.pid, sig);
  }
}

void Server::OnStreamOutput(Session& s, Stream& stream, bool is_stderr) {
  UniqueFd& fd = is_stderr ? stream.err : stream.out;
  std::string buffer(kReadChunk, '\0');
  ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n > 0) {
    buffer.resize(static_cast<size_t>(n));
    Send(s, {{"type", is_stderr ? "stderr" : "stdout"},
             {"stream", stream.id},
             {"data", Base64Encode(buffer)}});
    return;
  }
  // EOF, or EIO from a pty master once every slave descriptor is closed.
  fd.reset();
  if (stream.tty) {
    stream.in.reset();
    stream.stdin_buffer.clear();
  }
  FinishIfDone(s, stream);
}

void Server::OnStreamInput(Stream& stream) {
  while (!stream.stdin_buffer.empty()) {
    ssize_t n = ::write(stream.in.get(), stream.stdin_buffer.data(), stream.stdin_buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      // EPIPE: the child closed its stdin or exited; the rest has no reader.
      stream.stdin_buffer.clear();
      stream.in.reset();
      return;
    }
    stream.stdin_buffer.erase(0, static_cast<size_t>(n));
  }
  if (stream.stdin_close) stream.in.reset();
}

void Server::FinishIfDone(Session& s, Stream& stream) {
  if (!stream.exit_code || stream.out.valid() || stream.err.valid()) return;
  const uint64_t id = stream.id;
  Send(s, {{"type", "exit"}, {"stream", id}, {"code", *stream.exit_code}});
  s.streams.erase(id);
}

void Server::PowerOff(Session& s, bool reboot) {
  FlushBlocking(s, kShutdownFlush);
  ::sync();
  const char* verb = reboot ? "reboot" : "poweroff";
  Log("%s requested by the host", verb);
  auto pid = StartBackground({"systemctl", verb});
  if (pid.ok()) {
    power_pid_ = *pid;
    return;
  }
  Log("systemctl %s: %s; calling reboot(2)", verb, pid.error().message().c_str());
  ::reboot(reboot ? RB_AUTOBOOT : RB_POWER_OFF);
}

void Server::OnSignals() {
  signalfd_siginfo info;
  while (::read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
    if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT) stop_ = true;
  }
  Reap();
}

void Server::Reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (power_pid_ && pid == *power_pid_) {
      power_pid_.reset();
      if (code != 0) {
        Log("systemctl failed with status %d; calling reboot(2)", code);
        ::sync();
        ::reboot(power_reboot_ ? RB_AUTOBOOT : RB_POWER_OFF);
      }
      continue;
    }
    auto it = children_.find(pid);
    if (it == children_.end()) continue;
    auto [session_id, stream_id] = it->second;
    children_.erase(it);
    Session* s = FindSession(session_id);
    if (s == nullptr) continue;
    auto stream = s->streams.find(stream_id);
    if (stream == s->streams.end()) continue;
    stream->second.exit_code = code;
    FinishIfDone(*s, stream->second);
  }
}

int Server::Run() {
  if (auto r = Setup(); !r.ok()) {
    Log("%s", r.error().message().c_str());
    return 1;
  }
  std::vector<pollfd> fds;
  std::vector<Target> targets;
  while (!stop_) {
    VirtioTick();
    if (vsock_.wanted && Clock::now() >= vsock_.next_attempt) TrySetupVsock();

    fds.clear();
    targets.clear();
    auto add = [&](int fd, short events, Target target) {
      fds.push_back({fd, events, 0});
      targets.push_back(target);
    };
    add(signal_fd_.get(), POLLIN, {Target::kSignal});
    if (unix_listener_.valid()) add(unix_listener_.get(), POLLIN, {Target::kUnixListener});
    if (vsock_listener_.valid()) add(vsock_listener_.get(), POLLIN, {Target::kVsockListener});
    for (auto& [id, session] : sessions_) {
      Session& s = *session;
      if (s.ended || s.waiting_for_host) continue;
      short events = s.StdinFull() ? 0 : POLLIN;
      if (s.Unsent() > 0) events |= POLLOUT;
      add(s.fd.get(), events, {Target::kSession, s.id});
      bool output_room = s.Unsent() < kOutputHighWater;
      for (auto& [stream_id, stream] : s.streams) {
        if (stream.in.valid() && !stream.stdin_buffer.empty()) {
          add(stream.in.get(), POLLOUT, {Target::kStdin, s.id, stream_id});
        }
        if (!output_room) continue;
        if (stream.out.valid()) add(stream.out.get(), POLLIN, {Target::kStdout, s.id, stream_id});
        if (stream.err.valid()) add(stream.err.get(), POLLIN, {Target::kStderr, s.id, stream_id});
      }
    }

    int timeout = -1;
    auto consider = [&](Clock::time_point when) {
      auto ms = std::chrono::ceil<milliseconds>(when - Clock::now()).count();
      ms = std::max<decltype(ms)>(ms, 0);
      if (timeout < 0 || ms < timeout) timeout = static_cast<int>(ms);
    };
    if (virtio_.enabled) {
      Session* s = virtio_.session ? FindSession(*virtio_.session) : nullptr;
      if (s == nullptr || s->waiting_for_host) consider(virtio_.next_action);
    }
    if (vsock_.wanted) consider(vsock_.next_attempt);

    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) {
      Log("poll: %s", std::strerror(errno));
      return 1;
    }
    for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const Target& t = targets[i];
      switch (t.kind) {
        case Target::kSignal:
          OnSignals();
          continue;
        case Target::kUnixListener:
          Accept(unix_listener_.get(), Transport::kUnix);
          continue;
        case Target::kVsockListener:
          Accept(vsock_listener_.get(), Transport::kVsock);
          continue;
        default:
          break;
      }
      Session* s = FindSession(t.session);
      if (s == nullptr) continue;
      if (t.kind == Target::kSession) {
        if (fds[i].revents & POLLOUT) Flush(*s);
        if (!s->ended && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) OnSessionReadable(*s);
        continue;
      }
      auto stream = s->streams.find(t.stream);
      if (stream == s->streams.end()) continue;
      if (t.kind == Target::kStdin) {
        OnStreamInput(stream->second);
      } else if (t.kind == Target::kStdout && stream->second.out.valid()) {
        OnStreamOutput(*s, stream->second, false);
      } else if (t.kind == Target::kStderr && stream->second.err.valid()) {
        OnStreamOutput(*s, stream->second, true);
      }
    }
    Reap();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (!it->second->ended) Flush(*it->second);
      it = it->second->ended ? sessions_.erase(it) : std::next(it);
    }
  }
  Log("stopping");
  for (auto& [id, session] : sessions_) EndSession(*session, "agent stopping");
  return 0;
}

}  // namespace

int RunServer(const ServerOptions& options) { return Server(options).Run(); }

}  // namespace vmctl::agent::guest
