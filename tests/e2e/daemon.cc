#include "tests/e2e/daemon.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "base/io.h"

namespace vmctl::e2e {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

size_t OpenFdCount(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    ++n;
  }
  return n;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

NetNs::NetNs(const std::string& prefix) {
  static std::atomic<int> counter{0};
  name_ = prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  auto added = RunCommand({"ip", "netns", "add", name_});
  if (!added.ok() || added->exit_code != 0) {
    ADD_FAILURE() << "ip netns add " << name_ << ": "
                  << (added.ok() ? added->err : added.error().message());
  }
  Sh("ip link set lo up");
}

NetNs::~NetNs() {
  for (auto& p : spawned_) {
    (void)p.Signal(SIGKILL);
    (void)p.WaitExit(std::chrono::seconds(5));
  }
  (void)RunCommand({"ip", "netns", "del", name_});
}

RunOutput NetNs::Run(const std::vector<std::string>& argv, std::chrono::seconds timeout) const {
  std::vector<std::string> full = Prefix();
  full.insert(full.end(), argv.begin(), argv.end());
  auto out = RunCommand(full, RunOptions{.timeout = timeout});
  if (!out.ok()) return RunOutput{-1, "", out.error().message()};
  return *out;
}

void NetNs::Sh(const std::string& script) const {
  auto out = Run({"sh", "-c", script});
  EXPECT_EQ(out.exit_code, 0) << "in " << name_ << ": " << script << "\n" << out.out << out.err;
}

ProcessRef NetNs::Spawn(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  std::vector<std::string> full = Prefix();
  full.insert(full.end(), argv.begin(), argv.end());
  auto spawned = SpawnDetached(full, {.log_file = log});
  EXPECT_TRUE(spawned.ok()) << spawned.error().message();
  if (!spawned.ok()) return {};
  spawned_.push_back(*spawned);
  return *spawned;
}

std::filesystem::path TestDaemon::Binary() {
  return std::filesystem::path(Env("VMCTL_BUILD_DIR", "build")) / "bin" / "vmctl";
}

TestDaemon::TestDaemon(std::vector<std::string> extra_args) : extra_args_(std::move(extra_args)) {
  static std::atomic<int> counter{0};
  // Short: Unix socket paths of the VMs live below it.
  dir_ = std::filesystem::path("/tmp") /
         ("vmctl-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

std::vector<std::string> TestDaemon::ServeArgv() const {
  std::vector<std::string> argv = netns_.Prefix();
  std::vector<std::string> serve = {
      Binary().string(), "serve", "--state-dir", state_dir().string(), "--socket",
      socket().string(), "--image-cache", Env("VMCTL_IMAGE_CACHE", "/var/cache/vmctl/images"),
      "--prepare-image",
      // Tests register keys; registration_test passes its own mode (the last one counts).
      "--registration", "open"};
  argv.insert(argv.end(), serve.begin(), serve.end());
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  return argv;
}

RunOutput TestDaemon::StartExpectingFailure() {
  auto out = RunCommand(ServeArgv(), RunOptions{.timeout = std::chrono::seconds(120)});
  if (!out.ok()) return RunOutput{-1, "", out.error().message()};
  return *out;
}

void TestDaemon::Stop() {
  ASSERT_TRUE(process_.Signal(SIGTERM).ok());
  ASSERT_TRUE(process_.WaitExit(std::chrono::seconds(20)).ok());
}

void TestDaemon::Start() {
  auto argv = ServeArgv();
  auto spawned = SpawnDetached(argv, {.log_file = log()});
  ASSERT_TRUE(spawned.ok()) << spawned.error().message();
  process_ = *spawned;
  for (int i = 0; i < 6000; ++i) {
    if (!process_.Alive()) FAIL() << "daemon exited:\n" << TailFile(log(), 4000);
    if (std::filesystem::exists(socket()) && Vmctl({"ls"}).exit_code == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL() << "daemon did not come up:\n" << TailFile(log(), 4000);
}

void TestDaemon::Kill9() {
  ASSERT_TRUE(process_.Signal(SIGKILL).ok());
  ASSERT_TRUE(process_.WaitExit(std::chrono::seconds(10)).ok());
}

TestDaemon::~TestDaemon() {
  if (process_.Alive()) {
    // Every user's VMs (the SSH gateway's users have their own), each removed as its owner.
    std::istringstream rows(Sql(state_dir() / "vmctl.db", "SELECT owner, name FROM vms"));
    for (std::string row; std::getline(rows, row);) {
      auto bar = row.find('|');
      if (bar == std::string::npos) continue;
      (void)RunCommand({"curl", "-sS", "--max-time", "120", "--unix-socket", socket().string(),
                        "-X", "DELETE", "-H", "X-Vmctl-User: " + row.substr(0, bar),
                        "http://vmctl/v1/vms/" + row.substr(bar + 1)});
    }
    (void)process_.Signal(SIGTERM);
    if (!process_.WaitExit(std::chrono::seconds(10)).ok()) (void)process_.Signal(SIGKILL);
  }
  // Anything still running from this state dir is a leak: report it, then clean up by PID.
  for (pid_t pid : ProcessesUsingStateDir()) {
    ADD_FAILURE() << "leaked process " << pid << " uses " << state_dir();
    ::kill(pid, SIGKILL);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

RunOutput TestDaemon::Vmctl(const std::vector<std::string>& args, const std::string& stdin_data,
                            std::chrono::seconds timeout) const {
  std::vector<std::string> argv = {Binary().string(), "--socket", socket().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  RunOptions options;
  options.stdin_data = stdin_data;
  options.timeout = timeout;
  auto out = RunCommand(argv, options);
  if (!out.ok()) return RunOutput{-1, "", out.error().message()};
  return *out;
}

std::optional<nlohmann::json> TestDaemon::Show(const std::string& name) const {
  auto out = Vmctl({"show", name, "--json"});
  if (out.exit_code != 0) return std::nullopt;
  auto parsed = nlohmann::json::parse(out.out, nullptr, false);
  if (parsed.is_discarded()) return std::nullopt;
  return parsed;
}

std::filesystem::path TestDaemon::UserKey(const std::string& name) const {
  std::filesystem::path key = dir_ / ("id_" + name);
  if (!std::filesystem::exists(key)) {
    EXPECT_TRUE(RunCommandChecked({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                   name + "@test", "-f", key.string()})
                    .ok());
  }
  return key;
}

std::string TestDaemon::WaitForState(const std::string& name, const std::string& state,
                                     std::chrono::seconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto vm = Show(name);
    last = vm ? vm->value("state", "") : "(unknown)";
    if (last == state) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return last;
}

std::vector<pid_t> TestDaemon::ProcessesUsingStateDir() const {
  std::vector<pid_t> out;
  std::string marker = state_dir().string() + "/";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto ref = ProcessRef::Of(std::stoi(name));
    if (!ref.ok() || !ref->Alive() || ref->pid == process_.pid) continue;
    for (const auto& arg : ref->Cmdline()) {
      if (arg.find(marker) != std::string::npos) {
        out.push_back(ref->pid);
        break;
      }
    }
  }
  return out;
}

std::string Sql(const std::filesystem::path& db, const std::string& sql) {
  auto out = RunCommand({"sqlite3", db.string(), sql});
  if (!out.ok()) return "error: " + out.error().message();
  return Trim(out->out + out->err);
}

}  // namespace vmctl::e2e
