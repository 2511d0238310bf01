#include "agent/guest/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmctl::agent::guest {
namespace {

constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// What the child reports through the CLOEXEC pipe when it cannot exec.
struct ChildFailure {
  enum Stage : int { kTty, kCwd, kExec } stage;
  int error;
};

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Result<void> SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoError("fcntl", errno);
  }
  return Ok();
}

// The agent blocks the signals it reads through signalfd and ignores SIGPIPE and SIGHUP; all of
// that would be inherited across exec.
void ResetSignals() {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::signal(SIGHUP, SIG_DFL);
}

// Tries each candidate like execvp: a later EACCES wins over ENOENT so "permission denied" is
// reported for a non-executable file found in PATH.
int ExecFirst(const std::vector<std::string>& candidates, char** argv, char** envp) {
  int result = ENOENT;
  bool saw_eacces = false;
  for (const auto& path : candidates) {
    ::execve(path.c_str(), argv, envp);
    if (errno == EACCES) {
      saw_eacces = true;
    } else if (errno != ENOENT && errno != ENOTDIR) {
      return errno;
    }
    result = errno;
  }
  return saw_eacces ? EACCES : result;
}

[[noreturn]] void ReportAndExit(int fd, ChildFailure failure) {
  ssize_t ignored = ::write(fd, &failure, sizeof(failure));
  (void)ignored;
  ::_exit(127);
}

Error FailureError(const ChildFailure& f, const SpawnRequest& request) {
  switch (f.stage) {
    case ChildFailure::kTty:
      return ErrnoError("open pty", f.error);
    case ChildFailure::kCwd:
      return ErrnoError("cwd " + request.cwd, f.error);
    case ChildFailure::kExec:
      break;
  }
  if (f.error == ENOENT) return NotFound(request.argv[0] + ": command not found");
  if (f.error == EACCES) return FailedPrecondition(request.argv[0] + ": permission denied");
  return ErrnoError("exec " + request.argv[0], f.error);
}

}  // namespace

std::string EnvValue(const std::vector<std::string>& env, std::string_view name,
                     std::string_view fallback) {
  for (const auto& entry : env) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=') {
      return entry.substr(name.size() + 1);
    }
  }
  return std::string(fallback);
}

std::vector<std::string> ExecCandidates(std::string_view argv0, std::string_view path) {
  if (argv0.find('/') != std::string_view::npos) return {std::string(argv0)};
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t colon = path.find(':', start);
    std::string_view dir =
        path.substr(start, colon == std::string_view::npos ? colon : colon - start);
    out.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + std::string(argv0));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return out;
}

Result<void> SetWindowSize(int pty_fd, int rows, int cols) {
  winsize ws{};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (::ioctl(pty_fd, TIOCSWINSZ, &ws) < 0) return ErrnoError("TIOCSWINSZ", errno);
  return Ok();
}

Result<SpawnedChild> Spawn(const SpawnRequest& request) {
  if (request.argv.empty()) return InvalidArgument("argv is empty");
  // Everything the child needs is prepared before fork, so the child only makes system calls.
  std::vector<std::string> candidates =
      ExecCandidates(request.argv[0], EnvValue(request.env, "PATH", kDefaultPath));
  std::vector<char*> argv = CStrings(request.argv);
  std::vector<char*> envp = CStrings(request.env);

  int report[2];
  if (::pipe2(report, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
  UniqueFd report_read(report[0]), report_write(report[1]);

  SpawnedChild child;
  UniqueFd child_in, child_out, child_err;
  std::string slave_name;
  if (request.tty) {
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master.valid()) return ErrnoError("posix_openpt", errno);
    if (::grantpt(master.get()) < 0 || ::unlockpt(master.get()) < 0) {
      return ErrnoError("unlockpt", errno);
    }
    char name[128];
    if (::ptsname_r(master.get(), name, sizeof(name)) != 0) return ErrnoError("ptsname", errno);
    slave_name = name;
    VMCTL_TRY(SetWindowSize(master.get(), request.rows, request.cols));
    child.in = UniqueFd(::fcntl(master.get(), F_DUPFD_CLOEXEC, 0));
    if (!child.in.valid()) return ErrnoError("dup", errno);
    child.out = std::move(master);
  } else {
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
    child_in.reset(in[0]);
    child.in.reset(in[1]);
    if (::pipe2(out, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
    child.out.reset(out[0]);
    child_out.reset(out[1]);
    if (::pipe2(err, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
    child.err.reset(err[0]);
    child_err.reset(err[1]);
  }

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    ResetSignals();
    ::setsid();
    if (request.tty) {
      // Opening the slave without O_NOCTTY as a session leader makes it the controlling tty.
      int slave = ::open(slave_name.c_str(), O_RDWR);
      if (slave < 0) ReportAndExit(report[1], {ChildFailure::kTty, errno});
      ::ioctl(slave, TIOCSCTTY, 0);
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      if (slave > 2) ::close(slave);
    } else {
      ::dup2(child_in.get(), 0);
      ::dup2(child_out.get(), 1);
      ::dup2(child_err.get(), 2);
    }
    if (::chdir(request.cwd.c_str()) < 0) ReportAndExit(report[1], {ChildFailure::kCwd, errno});
    int e = ExecFirst(candidates, argv.data(), envp.data());
    ReportAndExit(report[1], {ChildFailure::kExec, e});
  }

  report_write.reset();
  child_in.reset();
  child_out.reset();
  child_err.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = ::read(report_read.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return FailureError(failure, request);
  }
  child.pid = pid;
  for (const UniqueFd* fd : {&child.in, &child.out, &child.err}) {
    if (fd->valid()) VMCTL_TRY(SetNonBlocking(fd->get()));
  }
  return child;
}

Result<void> RunHelper(const std::vector<std::string>& args) {
  if (args.empty()) return InvalidArgument("empty command");
  std::vector<std::string> candidates = ExecCandidates(args[0], kDefaultPath);
  std::vector<char*> argv = CStrings(args);
  std::vector<std::string> env_strings = {"PATH=" + std::string(kDefaultPath)};
  std::vector<char*> envp = CStrings(env_strings);
  int out[2];
  if (::pipe2(out, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
  UniqueFd out_read(out[0]), out_write(out[1]);
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    ResetSignals();
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    int e = ExecFirst(candidates, argv.data(), envp.data());
    const char* msg = std::strerror(e);
    ssize_t ignored = ::write(2, msg, std::strlen(msg));
    (void)ignored;
    ::_exit(127);
  }
  out_write.reset();
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out_read.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    // Only the start of a diagnostic is useful in an error message.
    if (output.size() < 4096) output.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return ErrnoError("waitpid", errno);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Ok();
  while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
  std::string command;
  for (const auto& a : args) command += (command.empty() ? "" : " ") + a;
  return Internal(
      command + " failed: " + (output.empty() ? "exit status " + std::to_string(status) : output));
}

Result<pid_t> StartBackground(const std::vector<std::string>& args) {
  if (args.empty()) return InvalidArgument("empty command");
  std::vector<std::string> candidates = ExecCandidates(args[0], kDefaultPath);
  std::vector<char*> argv = CStrings(args);
  std::vector<std::string> env_strings = {"PATH=" + std::string(kDefaultPath)};
  std::vector<char*> envp = CStrings(env_strings);
  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    ResetSignals();
    ExecFirst(candidates, argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace vmctl::agent::guest
