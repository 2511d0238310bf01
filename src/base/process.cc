#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"

extern char** environ;

namespace vmctl {
namespace {

// Field 22 of /proc/PID/stat; the comm field (2) may contain spaces and parens, so parse after the
// last ')'. Also returns the state letter so zombies can be told apart.
bool ReadStat(pid_t pid, uint64_t* start_time, char* state) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  rest >> *state;
  // After state (field 3), start_time is field 22: skip fields 4..21.
  for (int i = 4; i < 22; ++i) rest >> field;
  rest >> *start_time;
  return static_cast<bool>(rest);
}

std::vector<char*> CArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

Error ExecError(const std::string& program, int e) {
  if (e == ENOENT) return NotFound("program not found: " + program);
  return ErrnoError("exec " + program, e);
}

}  // namespace

Result<ProcessRef> ProcessRef::Of(pid_t pid) {
  ProcessRef ref{pid, 0};
  char state = 0;
  if (pid <= 0 || !ReadStat(pid, &ref.start_time, &state)) {
    return NotFound("no process " + std::to_string(pid));
  }
  return ref;
}

bool ProcessRef::Alive() const {
  uint64_t start = 0;
  char state = 0;
  if (pid <= 0 || !ReadStat(pid, &start, &state)) return false;
  return start == start_time && state != 'Z' && state != 'X';
}

Result<void> ProcessRef::Signal(int sig) const {
  if (!Alive()) return Ok();
  if (::kill(pid, sig) < 0 && errno != ESRCH) return ErrnoError("kill", errno);
  return Ok();
}

Result<void> ProcessRef::WaitExit(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd.valid() && Alive()) {
    pollfd p{pidfd.get(), POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r > 0) return Ok();
  }
  // The pidfd may refer to a reused pid or be unavailable; the authoritative test is Alive().
  while (Alive()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceeded("process " + std::to_string(pid) + " did not exit in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Ok();
}

Result<void> ProcessRef::Kill(std::chrono::milliseconds timeout) const {
  VMCTL_TRY(Signal(SIGKILL));
  return WaitExit(timeout);
}

std::vector<std::string> ProcessRef::Cmdline() const {
  std::vector<std::string> out;
  auto data = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  if (!data.ok()) return out;
  std::string cur;
  for (char c : *data) {
    if (c == '\0') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return out;
}

Result<ProcessRef> SpawnDetached(const std::vector<std::string>& argv,
                                 const DetachedOptions& options) {
  if (argv.empty()) return InvalidArgument("empty argv");
  // status pipe: closed by a successful exec (CLOEXEC) or carries the exec errno.
  // pid pipe: the first child reports the grandchild's pid before exiting.
  int status_pipe[2], pid_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
  UniqueFd status_rd(status_pipe[0]), status_wr(status_pipe[1]);
  if (::pipe2(pid_pipe, O_CLOEXEC) < 0) return ErrnoError("pipe", errno);
  UniqueFd pid_rd(pid_pipe[0]), pid_wr(pid_pipe[1]);
  auto cargv = CArgv(argv);

  pid_t child = ::fork();
  if (child < 0) return ErrnoError("fork", errno);
  if (child == 0) {
    ::setsid();
    pid_t grandchild = ::fork();
    if (grandchild != 0) {
      (void)!::write(pid_wr.get(), &grandchild, sizeof(grandchild));
      _exit(grandchild < 0 ? 1 : 0);
    }
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDONLY);
    int log = ::open(options.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (devnull < 0 || log < 0 || ::chdir(options.cwd.c_str()) < 0) {
      int e = errno;
      (void)!::write(status_wr.get(), &e, sizeof(e));
      _exit(127);
    }
    ::dup2(devnull, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    // The VMM inherits only stdio and the CLOEXEC status pipe.
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != status_wr.get()) ::close(fd);
    }
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    (void)!::write(status_wr.get(), &e, sizeof(e));
    _exit(127);
  }
  status_wr.reset();
  pid_wr.reset();
  while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_t grandchild = -1;
  if (::read(pid_rd.get(), &grandchild, sizeof(grandchild)) != sizeof(grandchild) ||
      grandchild <= 0) {
    return Internal("fork of " + argv[0] + " failed");
  }
  int e = 0;
  ssize_t n;
  while ((n = ::read(status_rd.get(), &e, sizeof(e))) < 0 && errno == EINTR) {
  }
  if (n == sizeof(e)) return ExecError(argv[0], e);
  auto ref = ProcessRef::Of(grandchild);
  if (!ref.ok()) return Internal(argv[0] + " exited immediately after start");
  return ref;
}

Result<RunOutput> RunCommand(const std::vector<std::string>& argv, const RunOptions& options) {
  if (argv.empty()) return InvalidArgument("empty argv");
  int in_pipe[2], out_pipe[2], err_pipe[2], status_pipe[2];
  // stdin is a socket so that feeding a child that exits early gives EPIPE from send(2) with
  // MSG_NOSIGNAL instead of a SIGPIPE that would kill the caller.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pipe) < 0 ||
      ::pipe2(out_pipe, O_CLOEXEC) < 0 || ::pipe2(err_pipe, O_CLOEXEC) < 0 ||
      ::pipe2(status_pipe, O_CLOEXEC) < 0) {
    return ErrnoError("pipe", errno);
  }
  UniqueFd in_rd(in_pipe[0]), in_wr(in_pipe[1]), out_rd(out_pipe[0]), out_wr(out_pipe[1]),
      err_rd(err_pipe[0]), err_wr(err_pipe[1]), st_rd(status_pipe[0]), st_wr(status_pipe[1]);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    auto eq = entry.find('=');
    if (eq != std::string::npos && options.env.count(entry.substr(0, eq))) continue;
    env_storage.push_back(entry);
  }
  for (const auto& [k, v] : options.env) env_storage.push_back(k + "=" + v);
  auto cenv = CArgv(env_storage);
  auto cargv = CArgv(argv);

  pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(in_rd.get(), 0);
    ::dup2(out_wr.get(), 1);
    if (!options.pass_stderr) ::dup2(err_wr.get(), 2);
    if (!options.cwd.empty() && ::chdir(options.cwd.c_str()) < 0) {
      int e = errno;
      (void)!::write(st_wr.get(), &e, sizeof(e));
      _exit(127);
    }
    ::signal(SIGPIPE, SIG_DFL);
    environ = cenv.data();
    ::execvp(cargv[0], cargv.data());
    int e = errno;
    (void)!::write(st_wr.get(), &e, sizeof(e));
    _exit(127);
  }
  in_rd.reset();
  out_wr.reset();
  err_wr.reset();
  st_wr.reset();
  int exec_errno = 0;
  if (::read(st_rd.get(), &exec_errno, sizeof(exec_errno)) == sizeof(exec_errno)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return ExecError(argv[0], exec_errno);
  }

  std::string input = options.stdin_data.value_or("");
  size_t in_off = 0;
  if (input.empty()) in_wr.reset();
  if (in_wr.valid()) ::fcntl(in_wr.get(), F_SETFL, O_NONBLOCK);
  RunOutput result;
  auto deadline = std::chrono::steady_clock::now() + options.timeout;
  bool timed_out = false;
  while (out_rd.valid() || err_rd.valid() || in_wr.valid()) {
    std::vector<pollfd> fds;
    if (out_rd.valid()) fds.push_back({out_rd.get(), POLLIN, 0});
    if (err_rd.valid()) fds.push_back({err_rd.get(), POLLIN, 0});
    if (in_wr.valid()) fds.push_back({in_wr.get(), POLLOUT, 0});
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int r = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError("poll", errno);
    for (const auto& p : fds) {
      if (!p.revents) continue;
      if (p.fd == in_wr.get()) {
        ssize_t n = ::send(in_wr.get(), input.data() + in_off, input.size() - in_off, MSG_NOSIGNAL);
        if (n > 0) in_off += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN) in_off = input.size();
        if (in_off >= input.size()) in_wr.reset();
        continue;
      }
      char buf[65536];
      ssize_t n = ::read(p.fd, buf, sizeof(buf));
      if (n <= 0) {
        if (p.fd == out_rd.get())
          out_rd.reset();
        else
          err_rd.reset();
        continue;
      }
      (p.fd == out_rd.get() ? result.out : result.err).append(buf, static_cast<size_t>(n));
    }
  }
  if (timed_out) ::kill(-pid, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return DeadlineExceeded(argv[0] + " did not finish within " +
                            std::to_string(options.timeout.count() / 1000) + " s");
  }
  result.exit_code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  return result;
}

Result<RunOutput> RunCommandChecked(const std::vector<std::string>& argv,
                                    const RunOptions& options) {
  VMCTL_ASSIGN_OR_RETURN(RunOutput out, RunCommand(argv, options));
  if (out.exit_code != 0) {
    std::string tail = out.err.size() > 2000 ? out.err.substr(out.err.size() - 2000) : out.err;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    return Internal(argv[0] + " failed (exit " + std::to_string(out.exit_code) + ")" +
                    (tail.empty() ? "" : ": " + tail));
  }
  return out;
}

std::optional<std::filesystem::path> FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return std::filesystem::path(name);
    return std::nullopt;
  }
  const char* path = ::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::filesystem::path candidate = std::filesystem::path(dirs.substr(start, end - start)) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace vmctl
