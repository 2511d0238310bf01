#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <optional>
#include <thread>

#include "api/exec_frames.h"
#include "base/frame.h"
#include "base/io.h"
#include "cli/command_support.h"

namespace vmctl::cli {
namespace {

// Raw terminal mode for `exec -t`, restored on destruction.
class RawTerminal {
 public:
  RawTerminal() {
    if (::tcgetattr(0, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

std::atomic<bool> g_winch{false};

int RunExec(const Globals& g, const std::string& name, const std::vector<std::string>& argv,
            bool tty, const std::vector<std::string>& env, const std::string& cwd) {
  agent::ExecRequest request;
  request.argv = argv;
  request.cwd = cwd;
  request.tty = tty;
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(g, InvalidArgument(fmt::format("bad --env '{}': expected NAME=VALUE", e)));
    }
    request.env[e.substr(0, eq)] = e.substr(eq + 1);
  }
  if (tty) {
    winsize ws{};
    if (::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
      request.rows = ws.ws_row;
      request.cols = ws.ws_col;
    }
  }
  std::string early;
  auto conn = Client(g).StartExec(name, request, &early);
  if (!conn.ok()) return Fail(g, conn.error());
  const int fd = conn->get();
  std::optional<RawTerminal> raw;
  if (tty && ::isatty(0)) {
    raw.emplace();
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_winch = true; };
    ::sigaction(SIGWINCH, &sa, nullptr);
  }
  // stdin is forwarded until EOF, then closed remotely (so `echo hi | vmctl exec v -- cat` ends).
  std::thread([fd] {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(0, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        (void)WriteFrame(fd, api::EncodeExecInput({api::ExecInput::Kind::kStdinClose}));
        return;
      }
      api::ExecInput input{api::ExecInput::Kind::kStdin, std::string(buf, static_cast<size_t>(n))};
      if (!WriteFrame(fd, api::EncodeExecInput(input)).ok()) {
        return;
      }
    }
  }).detach();
  FrameDecoder decoder;
  decoder.Feed(early);
  for (;;) {
    for (;;) {
      auto frame = decoder.Next();
      if (!frame.ok()) return Fail(g, frame.error());
      if (!frame->has_value()) break;
      auto output = api::ParseExecOutput(**frame);
      if (!output.ok()) {
        raw.reset();
        return Fail(g, output.error().WithContext("from the daemon"));
      }
      switch (output->kind) {
        case api::ExecOutput::Kind::kStdout:
        case api::ExecOutput::Kind::kStderr:
          (void)WriteAll(output->kind == api::ExecOutput::Kind::kStdout ? 1 : 2, output->data);
          break;
        case api::ExecOutput::Kind::kExit:
          raw.reset();
          return output->exit_code;
        case api::ExecOutput::Kind::kError:
          raw.reset();
          return Fail(g, Error(output->code, output->message));
      }
    }
    if (g_winch.exchange(false)) {
      winsize ws{};
      if (::ioctl(1, TIOCGWINSZ, &ws) == 0) {
        (void)WriteFrame(
            fd, api::EncodeExecInput({api::ExecInput::Kind::kResize, "", ws.ws_row, ws.ws_col}));
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    auto data = ReadSome(fd, 65536);
    if (!data.ok() || data->empty()) {
      raw.reset();
      return Fail(g, Unavailable("the connection to the daemon closed before the command ended"));
    }
    decoder.Feed(*data);
  }
}

}  // namespace

// exec, logs
void AddExecCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  {
    struct Opts {
      std::string name, cwd;
      std::vector<std::string> argv, env;
      bool tty = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "exec", "run a command in a VM: vmctl exec NAME -- CMD [ARGS...]; exits with its status");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("command", o->argv, "command and arguments (after --)")->required();
    cmd->add_flag("-t,--tty", o->tty, "allocate a terminal (interactive shells)");
    cmd->add_option("-e,--env", o->env, "NAME=VALUE environment entries");
    cmd->add_option("-w,--workdir", o->cwd, "working directory in the VM");
    cmd->callback([g, o, done] { done(RunExec(*g, o->name, o->argv, o->tty, o->env, o->cwd)); });
  }
  // logs
  {
    struct Opts {
      std::string name;
      bool follow = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("logs", "print a VM's serial console log");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_flag("-f,--follow", o->follow, "keep printing new output");
    cmd->callback([g, o, done] {
      auto r = Client(*g).Logs(o->name, o->follow, std::cout);
      done(r.ok() ? 0 : Fail(*g, r.error()));
    });
  }
}

}  // namespace vmctl::cli
