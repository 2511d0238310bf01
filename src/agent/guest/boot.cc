#include "agent/guest/boot.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace vmctl::agent::guest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kRetry{1};
// The child's exit status when it could not run systemctl at all.
constexpr int kExecFailed = 127;

}  // namespace

SystemState ParseSystemState(std::string_view output) {
  size_t end = output.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos) return {};
  size_t begin = output.find_last_of(" \t\r\n", end);
  begin = begin == std::string_view::npos ? 0 : begin + 1;
  SystemState s{false, std::string(output.substr(begin, end + 1 - begin))};
  s.finished = s.state == "running" || s.state == "degraded" || s.state == "maintenance" ||
               s.state == "stopping" || s.state == "offline";
  return s;
}

void SystemdBootWatch::Start() {
  retry_ = false;
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    detail_ = std::string("pipe: ") + std::strerror(errno);
    retry_ = true;
    retry_at_ = Clock::now() + kRetry;
    return;
  }
  UniqueFd read_end(out[0]), write_end(out[1]);
  pid_t pid = ::fork();
  if (pid < 0) {
    detail_ = std::string("fork: ") + std::strerror(errno);
    retry_ = true;
    retry_at_ = Clock::now() + kRetry;
    return;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(write_end.get(), 1);
    ::execlp(systemctl_.c_str(), systemctl_.c_str(), "is-system-running", "--wait", nullptr);
    _exit(kExecFailed);
  }
  pid_ = pid;
  output_ = std::move(read_end);
  ::fcntl(output_.get(), F_SETFL, O_NONBLOCK);
}

bool SystemdBootWatch::OnExit(pid_t pid, int status) {
  if (pid_ == 0 || pid != pid_) return false;
  pid_ = 0;
  // The child prints one word, which the pipe holds until it is read here.
  std::string output;
  char buf[256];
  ssize_t n;
  while ((n = ::read(output_.get(), buf, sizeof(buf))) > 0) output.append(buf, n);
  output_.reset();
  SystemState s = ParseSystemState(output);
  if (s.finished) {
    finished_ = true;
    state_ = s.state;
    detail_.clear();
    return true;
  }
  if (s.state.empty() && WIFEXITED(status) && WEXITSTATUS(status) == kExecFailed) {
    // No systemctl to ask: nothing here can tell a finished boot, so do not hold the host up.
    finished_ = true;
    state_ = "unknown";
    detail_ = "cannot run " + systemctl_;
    std::fprintf(stderr, "vmctl-agent: %s\n", detail_.c_str());
    return true;
  }
  if (!s.state.empty()) state_ = s.state;
  retry_ = true;
  retry_at_ = Clock::now() + kRetry;
  return true;
}

int SystemdBootWatch::Tick() {
  if (!retry_) return -1;
  auto now = Clock::now();
  if (retry_at_ <= now) {
    Start();
    return retry_ ? static_cast<int>(kRetry.count() * 1000) : -1;
  }
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(retry_at_ - now).count());
}

nlohmann::json SystemdBootWatch::Status() const {
  return {{"finished", finished_}, {"state", state_}, {"init", "systemd"}, {"detail", detail_}};
}

}  // namespace vmctl::agent::guest
