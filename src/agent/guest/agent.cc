#include "agent/guest/agent.h"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <memory>

#include "agent/guest/boot.h"
#include "agent/guest/init.h"
#include "base/frame.h"
#include "base/io.h"
#include "base/unique_fd.h"

extern char** environ;

namespace vmctl::agent::guest {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Output of children is read only while the connection's send buffer is below this, so a slow
// host applies back-pressure instead of growing the agent's memory.
constexpr size_t kHighWater = 1 << 20;
// Process output is read in pieces whose frames (base64 plus envelope) stay below the 32 KiB that
// the guest's virtio console driver accepts in one write, so each port write is one whole frame.
constexpr size_t kOutputChunk = 16 * 1024;
// Host input is read in larger pieces; nothing constrains its size.
constexpr size_t kReadChunk = 64 * 1024;
// After a process exits, output still buffered in its pipes is drained for this long; children
// it left running in the background may hold the pipes open forever.
constexpr milliseconds kDrainAfterExit{200};
constexpr milliseconds kVirtioRetry{200};
constexpr std::string_view kPortName = "org.vmctl.agent";

void Log(const std::string& message) { std::fprintf(stderr, "vmctl-agent: %s\n", message.c_str()); }

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

json ErrorReply(int64_t id, const Error& e) {
  return {{"id", id},
          {"ok", false},
          {"error", {{"code", ErrorCodeName(e.code())}, {"message", e.message()}}}};
}

struct Conn {
  UniqueFd fd;
  bool virtio = false;
  bool host_connected = false;  // virtio only: last observed state
  Clock::time_point paused_until{};
  FrameDecoder decoder;
  std::string out;
  bool dead = false;

  void Send(const json& frame) { out += EncodeFrame(frame); }
};

struct Proc {
  int64_t stream = 0;
  pid_t pid = 0;
  Conn* conn = nullptr;  // null once its connection is gone
  bool tty = false;
  UniqueFd in, out, err;
  std::string inbuf;
  bool close_in = false;
  // A pty whose slave side is closed reads EIO; its master stays open until the process is
  // reaped, because closing it hangs up the terminal and sends SIGHUP to a process that may only
  // be closing its output on the way out.
  bool out_eof = false;
  bool exited = false;
  int status = 0;
  Clock::time_point exited_at{};
};

std::filesystem::path FindVirtioPort() {
  std::error_code ec;
  std::filesystem::path link = std::filesystem::path("/dev/virtio-ports") / kPortName;
  if (std::filesystem::exists(link, ec)) return link;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/class/virtio-ports", ec)) {
    auto name = ReadFile(entry.path() / "name");
    if (name.ok() && name->rfind(kPortName, 0) == 0) {
      return std::filesystem::path("/dev") / entry.path().filename();
    }
  }
  return {};
}

class Agent {
 public:
  explicit Agent(AgentConfig config) : config_(std::move(config)) {}

  int Run() {
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    sigchld_ = UniqueFd(::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
    if (config_.use_vsock) OpenVsock();
    if (!config_.listen_unix.empty()) {
      auto listener = ListenUnix(config_.listen_unix, 0600);
      if (!listener.ok()) {
        Log("cannot listen on " + config_.listen_unix.string() + ": " + listener.error().message());
        return 1;
      }
      unix_listener_ = std::move(listener).value();
      SetNonBlocking(unix_listener_.get());
    }
    Log("started");
    if (config_.init) {
      StartAsInit();
    } else if (!config_.systemctl.empty()) {
      boot_watch_ = std::make_unique<SystemdBootWatch>(config_.systemctl);
      boot_watch_->Start();
    }
    for (;;) Iterate();
  }

 private:
  void StartAsInit() {
    if (auto grown = GrowRootFilesystem(); !grown.ok()) Log(grown.error().message());
    InitPlan plan;
    auto text = ReadFile(config_.init_plan);
    auto parsed = text.ok() ? ParseInitPlan(*text) : Result<InitPlan>(text.error());
    if (parsed.ok()) {
      plan = std::move(parsed).value();
    } else {
      // No services, but the VM still answers the host, which can exec into it to look.
      Log("no services started: " + parsed.error().message());
    }
    supervisor_ = std::make_unique<Supervisor>(std::move(plan));
    supervisor_->Start();
  }

  void OpenVsock() {
    UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
      Log(std::string("no vsock in this kernel (") + std::strerror(errno) +
          "), serving virtio-serial only");
      return;
    }
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = static_cast<unsigned>(config_.vsock_port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd.get(), 16) != 0) {
      Log(std::string("vsock listen failed: ") + std::strerror(errno));
      return;
    }
    vsock_listener_ = std::move(fd);
  }

  // Opens the virtio-serial port when it exists; retried every loop until it does.
  void MaybeOpenVirtio() {
    if (!config_.use_virtio || virtio_ || Clock::now() < virtio_retry_) return;
    virtio_retry_ = Clock::now() + kVirtioRetry;
    std::filesystem::path path =
        config_.virtio_port.empty() ? FindVirtioPort() : config_.virtio_port;
    if (path.empty()) return;
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd.valid()) return;
    auto conn = std::make_unique<Conn>();
    conn->fd = std::move(fd);
    conn->virtio = true;
    // Bytes written before the host connects are delivered when it does.
    conn->Send(Hello());
    virtio_ = conn.get();
    conns_.push_back(std::move(conn));
    Log("serving " + path.string());
  }

  json BootStatus() const {
    if (supervisor_) return supervisor_->Status();
    if (boot_watch_) return boot_watch_->Status();
    // No init system the agent knows to ask: nothing to wait for.
    return {{"finished", true}, {"state", "running"}, {"init", "none"}, {"detail", ""}};
  }

  json Hello() {
    json hello = HelloInfo();
    hello["type"] = "hello";
    return hello;
  }

  void Iterate() {
    MaybeOpenVirtio();
    std::vector<pollfd> fds;
    enum class Tag { kSigchld, kVsock, kUnix, kConn, kProcOut, kProcErr, kProcIn };
    struct Ref {
      Tag tag;
      Conn* conn = nullptr;
      Proc* proc = nullptr;
    };
    std::vector<Ref> refs;
    auto add = [&](int fd, short events, Ref ref) {
      fds.push_back({fd, events, 0});
      refs.push_back(ref);
    };
    add(sigchld_.get(), POLLIN, {Tag::kSigchld});
    if (vsock_listener_.valid()) add(vsock_listener_.get(), POLLIN, {Tag::kVsock});
    if (unix_listener_.valid()) add(unix_listener_.get(), POLLIN, {Tag::kUnix});
    int timeout = -1;
    auto now = Clock::now();
    for (auto& c : conns_) {
      if (c->virtio && now < c->paused_until) {
        timeout = 50;
        continue;
      }
      add(c->fd.get(), static_cast<short>(POLLIN | (c->out.empty() ? 0 : POLLOUT)),
          {Tag::kConn, c.get()});
    }
    if (config_.use_virtio && !virtio_) timeout = 50;
    for (auto& [pid, p] : procs_) {
      bool room = p->conn && p->conn->out.size() < kHighWater;
      if (room && p->out.valid() && !p->out_eof) {
        add(p->out.get(), POLLIN, {Tag::kProcOut, nullptr, p.get()});
      }
      if (room && p->err.valid()) add(p->err.get(), POLLIN, {Tag::kProcErr, nullptr, p.get()});
      if (p->in.valid() && !p->inbuf.empty()) {
        add(p->in.get(), POLLOUT, {Tag::kProcIn, nullptr, p.get()});
      }
      if (p->exited) timeout = 20;
    }
    for (int due :
         {supervisor_ ? supervisor_->Tick() : -1, boot_watch_ ? boot_watch_->Tick() : -1}) {
      if (due >= 0) timeout = timeout < 0 ? due : std::min(timeout, due);
    }
    int n = ::poll(fds.data(), fds.size(), timeout);
    if (n < 0 && errno != EINTR) Log(std::string("poll: ") + std::strerror(errno));
    for (size_t i = 0; n > 0 && i < fds.size(); ++i) {
      short rev = fds[i].revents;
      if (!rev) continue;
      const Ref& r = refs[i];
      switch (r.tag) {
        case Tag::kSigchld: {
          signalfd_siginfo info;
          while (::read(sigchld_.get(), &info, sizeof(info)) > 0) {
          }
          break;
        }
        case Tag::kVsock:
        case Tag::kUnix:
          Accept(r.tag == Tag::kVsock ? vsock_listener_.get() : unix_listener_.get());
          break;
        case Tag::kConn:
          OnConn(*r.conn, rev);
          break;
        case Tag::kProcOut:
        case Tag::kProcErr:
          ReadOutput(*r.proc, r.tag == Tag::kProcOut);
          break;
        case Tag::kProcIn:
          WriteInput(*r.proc);
          break;
      }
    }
    Reap();
    FinishExited();
    for (auto& c : conns_) Flush(*c);
    CloseDeadConns();
  }

  void Accept(int listener) {
    for (;;) {
      UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (!fd.valid()) return;
      auto conn = std::make_unique<Conn>();
      conn->fd = std::move(fd);
      conn->Send(Hello());
      conns_.push_back(std::move(conn));
    }
  }

  void OnConn(Conn& c, short rev) {
    if (c.virtio && (rev & POLLHUP) && !(rev & POLLIN)) {
      // No host on the other end of the port (yet, or any more).
      if (c.host_connected) ResetVirtio(c);
      c.paused_until = Clock::now() + kVirtioRetry;
      return;
    }
    if (rev & (POLLIN | POLLHUP | POLLERR)) {
      char buf[kReadChunk];
      ssize_t n = ::read(c.fd.get(), buf, sizeof(buf));
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n <= 0) {
        if (c.virtio && n == 0) {
          ResetVirtio(c);
          c.paused_until = Clock::now() + kVirtioRetry;
        } else {
          c.dead = true;
        }
        return;
      }
      if (c.virtio) c.host_connected = true;
      c.decoder.Feed(std::string_view(buf, static_cast<size_t>(n)));
      for (;;) {
        auto frame = c.decoder.Next();
        if (!frame.ok()) {
          Log("bad frame from host: " + frame.error().message());
          if (c.virtio) {
            ResetVirtio(c);
          } else {
            c.dead = true;
          }
          return;
        }
        if (!frame->has_value()) break;
        Handle(c, **frame);
      }
    }
    if (rev & POLLOUT) Flush(c);
  }

  // The host side of the port went away: everything of its session ends, and the next host
  // gets a fresh session that starts with a hello.
  void ResetVirtio(Conn& c) {
    KillProcsOf(&c);
    c.host_connected = false;
    c.decoder = FrameDecoder();
    c.out.clear();
    c.Send(Hello());
  }

  void Flush(Conn& c) {
    while (!c.out.empty() && !c.dead) {
      // On the virtio port, one write per frame: a host that detaches then loses whole frames
      // only, and the next host never starts reading in the middle of one.
      size_t len = c.out.size();
      if (c.virtio && len >= 4) {
        auto b = [&](int i) { return static_cast<size_t>(static_cast<uint8_t>(c.out[i])); };
        len = std::min(len, 4 + (b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3)));
      }
      ssize_t n = ::write(c.fd.get(), c.out.data(), len);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        if (!c.virtio) c.dead = true;
        return;
      }
      c.out.erase(0, static_cast<size_t>(n));
    }
  }

  void CloseDeadConns() {
    for (auto it = conns_.begin(); it != conns_.end();) {
      if ((*it)->dead) {
        KillProcsOf(it->get());
        if (it->get() == virtio_) virtio_ = nullptr;
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void KillProcsOf(Conn* c) {
    for (auto& [pid, p] : procs_) {
      if (p->conn != c) continue;
      p->conn = nullptr;
      if (!p->exited) ::kill(-p->pid, SIGKILL);
      p->in.reset();
      p->out.reset();
      p->err.reset();
    }
  }

  Proc* FindStream(Conn& c, int64_t stream) {
    for (auto& [pid, p] : procs_) {
      if (p->conn == &c && p->stream == stream) return p.get();
    }
    return nullptr;
  }

  void Handle(Conn& c, const json& f) {
    if (f.contains("op")) {
      int64_t id = f.value("id", int64_t{0});
      std::string op = f.value("op", "");
      auto reply = [&](const Result<json>& r) {
        if (!r.ok()) {
          c.Send(ErrorReply(id, r.error()));
          return;
        }
        json out = *r;
        out["id"] = id;
        out["ok"] = true;
        c.Send(out);
      };
      if (op == "hello") {
        reply(HelloInfo());
      } else if (op == "ping") {
        reply(json{{"pong", true}});
      } else if (op == "exec") {
        auto started = StartProc(c, id, f);
        if (!started.ok()) {
          c.Send(ErrorReply(id, started.error()));
        } else {
          reply(json{{"stream", id}});
        }
      } else if (op == "configure_network") {
        reply(ConfigureNetwork(f, config_.ops));
      } else if (op == "set_authorized_keys") {
        reply(SetAuthorizedKeys(f, config_.ops));
      } else if (op == "host_keys") {
        reply(HostKeys(config_.ops));
      } else if (op == "boot_status") {
        reply(BootStatus());
      } else if (op == "stats") {
        reply(Stats());
      } else if (op == "time_sync") {
        reply(TimeSync(f));
      } else if (op == "prepare_disk") {
        reply(PrepareDisk(f));
      } else if (op == "grow_fs") {
        reply(GrowFilesystem(f));
      } else if (op == "shutdown") {
        reply(json::object());
        Flush(c);
        PowerOff(f.value("reboot", false));
      } else {
        c.Send(ErrorReply(id, Unimplemented("unknown op '" + op + "'")));
      }
      return;
    }
    std::string type = f.value("type", "");
    Proc* p = FindStream(c, f.value("stream", int64_t{-1}));
    if (!p) return;  // the process already ended; late input is dropped
    if (type == "stdin") {
      auto data = Base64Decode(f.value("data", ""));
      if (data.ok() && p->in.valid()) {
        p->inbuf += *data;
        WriteInput(*p);
      }
    } else if (type == "stdin_close") {
      p->close_in = true;
      if (p->tty && p->in.valid()) p->inbuf += '\x04';  // EOF at the terminal's line discipline
      WriteInput(*p);
    } else if (type == "resize" && p->tty && p->out.valid()) {
      winsize ws{};
      ws.ws_row = static_cast<unsigned short>(f.value("rows", 24));
      ws.ws_col = static_cast<unsigned short>(f.value("cols", 80));
      ::ioctl(p->out.get(), TIOCSWINSZ, &ws);
    } else if (type == "signal" && !p->exited) {
      ::kill(-p->pid, f.value("signal", SIGTERM));
    }
  }

  Result<void> StartProc(Conn& c, int64_t stream, const json& f) {
    if (!f.contains("argv") || !f["argv"].is_array() || f["argv"].empty()) {
      return InvalidArgument("exec needs a non-empty argv");
    }
    std::vector<std::string> argv;
    for (const auto& a : f["argv"]) {
      if (!a.is_string()) return InvalidArgument("argv must contain strings");
      argv.push_back(a.get<std::string>());
    }
    bool tty = f.value("tty", false);
    std::map<std::string, std::string> env = {
        {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        {"HOME", "/root"},
        {"LANG", "C.UTF-8"}};
    if (tty) env["TERM"] = "xterm-256color";
    if (f.contains("env") && f["env"].is_object()) {
      for (const auto& [k, v] : f["env"].items()) {
        if (v.is_string()) env[k] = v.get<std::string>();
      }
    }
    std::string cwd = f.value("cwd", "");
    if (cwd.empty()) cwd = "/";
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> cargv, cenv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    for (auto& e : env_strings) cenv.push_back(e.data());
    cenv.push_back(nullptr);

    int status_pipe[2];
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) return ErrnoError("pipe", errno);
    UniqueFd st_rd(status_pipe[0]), st_wr(status_pipe[1]);
    auto proc = std::make_unique<Proc>();
    proc->stream = stream;
    proc->conn = &c;
    proc->tty = tty;
    UniqueFd child_in, child_out, child_err, slave;
    if (tty) {
      UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!master.valid() || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) {
        return ErrnoError("posix_openpt", errno);
      }
      winsize ws{};
      ws.ws_row = static_cast<unsigned short>(f.value("rows", 24));
      ws.ws_col = static_cast<unsigned short>(f.value("cols", 80));
      ::ioctl(master.get(), TIOCSWINSZ, &ws);
      slave = UniqueFd(::open(::ptsname(master.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!slave.valid()) return ErrnoError("open pty", errno);
      proc->in = UniqueFd(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
      proc->out = std::move(master);
    } else {
      int in[2], out[2], err[2];
      if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
        return ErrnoError("pipe", errno);
      }
      child_in = UniqueFd(in[0]);
      proc->in = UniqueFd(in[1]);
      proc->out = UniqueFd(out[0]);
      child_out = UniqueFd(out[1]);
      proc->err = UniqueFd(err[0]);
      child_err = UniqueFd(err[1]);
    }
    pid_t pid = ::fork();
    if (pid < 0) return ErrnoError("fork", errno);
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      if (tty) {
        ::setsid();
        ::ioctl(slave.get(), TIOCSCTTY, 0);
        ::dup2(slave.get(), 0);
        ::dup2(slave.get(), 1);
        ::dup2(slave.get(), 2);
      } else {
        ::setpgid(0, 0);
        ::dup2(child_in.get(), 0);
        ::dup2(child_out.get(), 1);
        ::dup2(child_err.get(), 2);
      }
      int e = 0;
      if (::chdir(cwd.c_str()) != 0) {
        e = errno;
      } else {
        environ = cenv.data();
        ::execvp(cargv[0], cargv.data());
        e = errno;
      }
      (void)!::write(st_wr.get(), &e, sizeof(e));
      _exit(127);
    }
    st_wr.reset();
    child_in.reset();
    child_out.reset();
    child_err.reset();
    slave.reset();
    int child_errno = 0;
    ssize_t got;
    while ((got = ::read(st_rd.get(), &child_errno, sizeof(child_errno))) < 0 && errno == EINTR) {
    }
    if (got == sizeof(child_errno)) {
      ::waitpid(pid, nullptr, 0);
      if (child_errno == ENOENT) return NotFound("command not found: " + argv[0]);
      if (child_errno == EACCES) return FailedPrecondition("permission denied: " + argv[0]);
      return ErrnoError("exec " + argv[0] + " in " + cwd, child_errno);
    }
    proc->pid = pid;
    for (int fd : {proc->in.get(), proc->out.get(), proc->err.get()}) {
      if (fd >= 0) SetNonBlocking(fd);
    }
    procs_[pid] = std::move(proc);
    return Ok();
  }

  void ReadOutput(Proc& p, bool is_stdout) {
    UniqueFd& fd = is_stdout ? p.out : p.err;
    char buf[kOutputChunk];
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {  // EOF, or EIO from a pty whose last slave closed
      if (p.tty) {
        p.out_eof = true;
      } else {
        fd.reset();
      }
      return;
    }
    if (p.conn) {
      p.conn->Send({{"type", is_stdout ? "stdout" : "stderr"},
                    {"stream", p.stream},
                    {"data", Base64Encode(std::string_view(buf, static_cast<size_t>(n)))}});
    }
  }

  void WriteInput(Proc& p) {
    while (p.in.valid() && !p.inbuf.empty()) {
      ssize_t n = ::write(p.in.get(), p.inbuf.data(), p.inbuf.size());
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        p.inbuf.clear();  // the reader is gone (EPIPE)
        break;
      }
      p.inbuf.erase(0, static_cast<size_t>(n));
    }
    if (p.close_in && p.inbuf.empty() && !p.tty) p.in.reset();
  }

  void Reap() {
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      auto it = procs_.find(pid);
      if (it == procs_.end()) {
        if (boot_watch_ && boot_watch_->OnExit(pid, status)) continue;
        // As init the agent also reaps orphans; services are the supervisor's.
        if (supervisor_) supervisor_->OnExit(pid, status);
        continue;
      }
      it->second->exited = true;
      it->second->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      it->second->exited_at = Clock::now();
    }
  }

  void FinishExited() {
    auto now = Clock::now();
    for (auto it = procs_.begin(); it != procs_.end();) {
      Proc& p = *it->second;
      if (!p.exited) {
        ++it;
        continue;
      }
      bool drained = (!p.out.valid() || p.out_eof) && !p.err.valid();
      if (!drained && p.conn && now - p.exited_at < kDrainAfterExit) {
        ++it;
        continue;
      }
      if (p.conn) {
        // Whatever is still buffered in the pipes goes out before the exit status.
        while (p.out.valid()) ReadOutputOnce(p, true);
        while (p.err.valid()) ReadOutputOnce(p, false);
        p.conn->Send({{"type", "exit"}, {"stream", p.stream}, {"code", p.status}});
      }
      it = procs_.erase(it);
    }
  }

  void ReadOutputOnce(Proc& p, bool is_stdout) {
    UniqueFd& fd = is_stdout ? p.out : p.err;
    char buf[kOutputChunk];
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n <= 0) {
      fd.reset();
      return;
    }
    p.conn->Send({{"type", is_stdout ? "stdout" : "stderr"},
                  {"stream", p.stream},
                  {"data", Base64Encode(std::string_view(buf, static_cast<size_t>(n)))}});
  }

  void PowerOff(bool reboot) {
    if (config_.simulate_poweroff) {
      Log("simulated power off");
      std::exit(0);
    }
    if (config_.init) {
      PowerOffAsInit(reboot);
      return;
    }
    ::sync();
    pid_t pid = ::fork();
    if (pid == 0) {
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execlp("systemctl", "systemctl", reboot ? "reboot" : "poweroff", nullptr);
      // No systemd: power off directly.
      ::sync();
      ::reboot(reboot ? RB_AUTOBOOT : RB_POWER_OFF);
      _exit(1);
    }
  }

  AgentConfig config_;
  UniqueFd sigchld_, vsock_listener_, unix_listener_;
  std::list<std::unique_ptr<Conn>> conns_;
  Conn* virtio_ = nullptr;
  Clock::time_point virtio_retry_{};
  std::map<pid_t, std::unique_ptr<Proc>> procs_;
  std::unique_ptr<Supervisor> supervisor_;        // only as init
  std::unique_ptr<SystemdBootWatch> boot_watch_;  // only under systemd
};

}  // namespace

int RunAgent(const AgentConfig& config) { return Agent(config).Run(); }

}  // namespace vmctl::agent::guest
