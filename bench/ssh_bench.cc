// SSH gateway benchmark: what proxy mode (`ssh -p 2222 VM@host`) costs over logging into the
// VM's sshd directly, in the same run, with the real OpenSSH client: scp throughput both ways,
// connection setup time, keystroke echo latency on a PTY, and host memory per idle session. The
// memory peer is the host's own OpenSSH sshd, since per-connection memory inside a TCG guest is
// not what the gateway's is compared with.
//
// Runs the daemon, and the sshd peer, inside a network namespace it creates and removes. The
// benchmark process itself enters that namespace, so clients are started without an
// `ip netns exec` wrapper whose cost would land in the latencies.
// Usage: vmctl_ssh_bench [--image-cache DIR]   (Markdown on stdout, progress on stderr)
#include <fcntl.h>
#include <fmt/format.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "base/process.h"
#include "bench/host.h"
#include "bench/stats.h"
#include "testing/sshd/local_sshd.h"

namespace vmctl::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int64_t kScpBytes = 64 << 20;
constexpr int kScpRuns = 3;
constexpr int kConnectRuns = 10;
constexpr int kKeystrokes = 50;
constexpr int kIdleSessions = 50;
constexpr const char* kGatewayPort = "2222";
constexpr const char* kPeerSshdPort = "2022";

// A background client kept alive by holding its stdin open; our child, so it is reaped by pid.
struct Client {
  pid_t pid = 0;
  int in_fd = -1;
  int out_fd = -1;
};

// One way of reaching a shell: through the gateway or to an sshd directly.
struct Target {
  std::string port;
  std::string destination;  // user@host
  std::vector<std::string> options = {};
};

struct Bench {
  std::string ns;
  fs::path dir, bin, key;
  ProcessRef daemon;
  std::unique_ptr<testing::LocalSshd> sshd;
  std::vector<Client> clients;
  bool vm_created = false;
};

Bench g;

void Log(const std::string& line) { std::cerr << "ssh_bench: " << line << std::endl; }

std::vector<std::string> SshOptions(const std::string& program) {
  // -F /dev/null: the host's ssh_config (GSSAPI, SendEnv...) must not differ between machines.
  std::vector<std::string> argv = {program, "-F", "/dev/null", "-i", g.key.string()};
  for (const char* option : {"StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null",
                             "IdentitiesOnly=yes", "LogLevel=ERROR"}) {
    argv.insert(argv.end(), {"-o", option});
  }
  return argv;
}

std::vector<std::string> SshArgv(const Target& t, const std::vector<std::string>& extra,
                                 const std::string& command) {
  auto argv = SshOptions("ssh");
  argv.insert(argv.end(), t.options.begin(), t.options.end());
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.insert(argv.end(), {"-p", t.port, t.destination});
  if (!command.empty()) argv.push_back(command);
  return argv;
}

RunOutput Run(const std::vector<std::string>& argv, const std::string& stdin_data = "",
              std::chrono::seconds timeout = std::chrono::seconds(120)) {
  RunOptions options;
  options.stdin_data = stdin_data;
  options.timeout = timeout;
  auto out = RunCommand(argv, options);
  return out.ok() ? *out : RunOutput{-1, "", out.error().message()};
}

RunOutput Ssh(const Target& t, const std::string& command, const std::string& stdin_data = "") {
  return Run(SshArgv(t, {}, command), stdin_data);
}

// Every process whose command line mentions `needle`, except us.
std::vector<pid_t> ProcessesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 0 || pid == ::getpid()) continue;
    auto cmdline = ReadFile(entry.path() / "cmdline");
    if (cmdline.ok() && cmdline->find(needle) != std::string::npos) out.push_back(pid);
  }
  return out;
}

void StopClients() {
  for (const auto& c : g.clients) ::kill(c.pid, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  for (const auto& c : g.clients) {
    while (::waitpid(c.pid, nullptr, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(c.pid, SIGKILL);
        ::waitpid(c.pid, nullptr, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::close(c.in_fd);
    ::close(c.out_fd);
  }
  g.clients.clear();
}

// Idempotent, so a failure anywhere can call it and leave nothing behind.
void Cleanup() {
  StopClients();
  g.sshd.reset();
  if (g.daemon.pid != 0) {
    if (g.vm_created && g.daemon.Alive()) {
      (void)Ssh({kGatewayPort, "127.0.0.1"}, "rm web");
      g.vm_created = false;
    }
    (void)g.daemon.Signal(SIGTERM);
    if (!g.daemon.WaitExit(std::chrono::seconds(20)).ok()) (void)g.daemon.Kill();
    g.daemon = {};
  }
  // A QEMU the daemon failed to stop still holds its disks in the state directory.
  if (!g.dir.empty()) {
    for (pid_t pid : ProcessesMentioning((g.dir / "state").string())) ::kill(pid, SIGKILL);
  }
  if (!g.ns.empty()) {
    auto pids = RunCommand({"ip", "netns", "pids", g.ns});
    if (pids.ok()) {
      std::istringstream in(pids->out);
      for (pid_t pid; in >> pid;) {
        if (pid != ::getpid()) ::kill(pid, SIGKILL);
      }
    }
    (void)RunCommand({"ip", "netns", "del", g.ns});
    g.ns.clear();
  }
  if (!g.dir.empty()) {
    std::error_code ec;
    fs::remove_all(g.dir, ec);
    g.dir.clear();
  }
}

[[noreturn]] void Die(const std::string& what, const RunOutput& out = {}) {
  std::cerr << what << " failed (" << out.exit_code << "): " << out.out << out.err << "\n";
  if (!g.dir.empty()) {
    std::cerr << "daemon log tail:\n" << TailFile(g.dir / "daemon.log", 3000) << "\n";
  }
  Cleanup();
  std::exit(1);
}

RunOutput Check(const std::string& what, RunOutput out) {
  if (out.exit_code != 0) Die(what, out);
  return out;
}

// Retries `ssh ... true` until it succeeds: the VM's sshd comes up well after its agent (the
// image makes its host keys then; seconds to tens of seconds under TCG), and the gateway may hold
// the first attempt meanwhile.
void WaitForSsh(const Target& t, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    auto out = Ssh(t, "true");
    if (out.exit_code == 0) return;
    if (Clock::now() > deadline) Die("ssh -p " + t.port + " " + t.destination + " true", out);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// --- scp throughput ---

double ScpSeconds(const std::vector<std::string>& args) {
  auto argv = SshOptions("scp");
  argv.push_back("-q");
  argv.insert(argv.end(), args.begin(), args.end());
  auto start = Clock::now();
  Check("scp", Run(argv, "", std::chrono::seconds(600)));
  return Ms(Clock::now() - start) / 1000;
}

std::string Sha256(const fs::path& file) {
  return Check("sha256sum", Run({"sha256sum", file.string()})).out.substr(0, 64);
}

struct Throughput {
  std::vector<double> up_mbps, down_mbps;
};

// Both targets' runs interleave, so load from anything else on the host hits them alike.
std::map<std::string, Throughput> MeasureScp(const std::map<std::string, Target>& targets) {
  fs::path source = g.dir / "big";
  Check("random file",
        Run({"sh", "-c", fmt::format("head -c {} /dev/urandom > {}", kScpBytes, source.string())}));
  std::string sum = Sha256(source);
  std::map<std::string, Throughput> out;
  for (int i = 0; i < kScpRuns; ++i) {
    for (const auto& [name, t] : targets) {
      std::string remote = t.destination + ":/root/ssh-bench-" + name;
      fs::path back = g.dir / ("back-" + name);
      fs::remove(back);
      double up = ScpSeconds({"-P", t.port, source.string(), remote});
      double down = ScpSeconds({"-P", t.port, remote, back.string()});
      // A fast copy of the wrong bytes would be no result.
      if (Sha256(back) != sum) Die("scp round trip via " + name + ": hash differs");
      out[name].up_mbps.push_back(static_cast<double>(kScpBytes) / 1e6 / up);
      out[name].down_mbps.push_back(static_cast<double>(kScpBytes) / 1e6 / down);
      Log(fmt::format("scp {} run {}: up {:.1f} s, down {:.1f} s", name, i + 1, up, down));
    }
  }
  for (const auto& [name, t] : targets) Ssh(t, "rm -f /root/ssh-bench-" + name);
  return out;
}

// --- connection setup ---

std::map<std::string, std::vector<double>> MeasureConnect(
    const std::map<std::string, Target>& targets) {
  std::map<std::string, std::vector<double>> out;
  // One unrecorded round first: the first connection after a pause pays for cold caches.
  for (const auto& [name, t] : targets) Check("warm-up ssh " + name, Ssh(t, "true"));
  for (int i = 0; i < kConnectRuns; ++i) {
    for (const auto& [name, t] : targets) {
      auto start = Clock::now();
      Check("ssh " + name + " true", Ssh(t, "true"));
      out[name].push_back(Ms(Clock::now() - start));
    }
  }
  return out;
}

// The key exchange the client and the server it talks to agreed on, from `ssh -v`.
std::string NegotiatedKex(const Target& t) {
  auto out = Run(SshArgv(t, {"-v"}, "true"));
  static const std::string kMarker = "kex: algorithm: ";
  auto at = out.err.find(kMarker);
  if (at == std::string::npos) return "?";
  at += kMarker.size();
  return out.err.substr(at, out.err.find_first_of("\r\n", at) - at);
}

// --- keystroke echo ---

// Appends whatever the fd has within `timeout`; false on EOF or timeout with nothing new.
bool ReadMore(int fd, std::string& buffer, std::chrono::milliseconds timeout) {
  if (!WaitReadable(fd, timeout).ok()) return false;
  auto got = ReadSome(fd, 4096);
  if (!got.ok() || got->empty()) return false;
  buffer += *got;
  return true;
}

bool EndsWithPrompt(const std::string& s) {
  auto end = s.find_last_not_of(' ');
  return end != std::string::npos && end + 1 < s.size() && (s[end] == '#' || s[end] == '$');
}

// An interactive `ssh -tt` on a PTY of our own: ssh puts it in raw mode, as for a person typing.
struct Terminal {
  pid_t pid = 0;
  int master = -1;
};

Terminal OpenTerminal(const Target& t) {
  auto argv = SshArgv(t, {"-tt"}, "");
  struct winsize size = {.ws_row = 24, .ws_col = 120, .ws_xpixel = 0, .ws_ypixel = 0};
  Terminal term;
  term.pid = ::forkpty(&term.master, nullptr, nullptr, &size);
  if (term.pid < 0) Die("forkpty");
  if (term.pid == 0) {
    ::setenv("TERM", "xterm", 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  // The other terminal's ssh must not hold this one open.
  ::fcntl(term.master, F_SETFD, FD_CLOEXEC);
  std::string screen;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (!EndsWithPrompt(screen)) {
    if (Clock::now() > deadline || !ReadMore(term.master, screen, std::chrono::seconds(5))) {
      ::kill(term.pid, SIGKILL);
      ::waitpid(term.pid, nullptr, 0);
      ::close(term.master);
      Die("shell prompt via " + t.destination, {-1, screen, ""});
    }
  }
  // Whatever the shell still prints after its prompt (bracketed-paste mode, title) must not be
  // taken for an echo.
  while (ReadMore(term.master, screen, std::chrono::milliseconds(500))) {
  }
  return term;
}

// Milliseconds from writing one character until the remote shell has echoed it.
double Keystroke(const Terminal& term, char c) {
  std::string echoed;
  auto start = Clock::now();
  if (!WriteAll(term.master, std::string_view(&c, 1)).ok()) Die("write to the PTY");
  while (echoed.find(c) == std::string::npos) {
    if (!ReadMore(term.master, echoed, std::chrono::seconds(10))) Die("echo of a keystroke");
  }
  return Ms(Clock::now() - start);
}

void CloseTerminal(const Terminal& term) {
  // Ctrl-U drops the typed line, so `exit` runs alone.
  (void)WriteAll(term.master,
                 "\x15"
                 "exit\r");
  auto end = Clock::now() + std::chrono::seconds(10);
  std::string rest;
  while (::waitpid(term.pid, nullptr, WNOHANG) == 0) {
    if (Clock::now() > end) {
      ::kill(term.pid, SIGKILL);
      ::waitpid(term.pid, nullptr, 0);
      break;
    }
    ReadMore(term.master, rest, std::chrono::milliseconds(100));
  }
  ::close(term.master);
}

// Both sessions stay open and take turns, so load from anything else on the host hits them alike.
std::map<std::string, std::vector<double>> MeasureEcho(
    const std::map<std::string, Target>& targets) {
  std::map<std::string, Terminal> terms;
  for (const auto& [name, t] : targets) terms[name] = OpenTerminal(t);
  std::map<std::string, std::vector<double>> out;
  for (int i = 0; i < kKeystrokes; ++i) {
    for (const auto& [name, term] : terms) {
      out[name].push_back(Keystroke(term, static_cast<char>('a' + i % 26)));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  for (const auto& [name, term] : terms) CloseTerminal(term);
  return out;
}

// --- memory per idle session ---

// Starts `argv` with a pipe as stdin that we keep open, and waits until its output contains
// `ready`: only then does the server hold the session's state.
void StartIdleClient(const std::vector<std::string>& argv, const std::string& ready) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) Die("pipe2");
  fs::path log = g.dir / "clients.log";
  pid_t pid = ::fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    if (err >= 0) ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  g.clients.push_back({pid, in[1], out[0]});
  std::string seen;
  auto deadline = Clock::now() + std::chrono::seconds(90);
  while (seen.find(ready) == std::string::npos) {
    if (Clock::now() > deadline || !ReadMore(out[0], seen, std::chrono::seconds(30))) {
      Die("idle session " + argv.back(), {-1, seen, TailFile(log, 2000)});
    }
  }
}

struct Memory {
  int64_t rss_kib = 0, pss_kib = 0;
};

Memory MemoryOf(pid_t pid) {
  return {ProcField(pid, "status", "VmRSS"), ProcField(pid, "smaps_rollup", "Pss")};
}

// sshd forks per connection: its cost per session is in those processes, not in the listener
// (nor in the session's command, which the gateway's sessions run inside the VM).
std::vector<pid_t> SshdConnectionProcesses(pid_t listener) {
  std::map<pid_t, pid_t> parent;
  std::map<pid_t, std::string> comm;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 0) continue;
    auto stat = ReadFile(entry.path() / "stat");
    if (!stat.ok()) continue;
    auto open = stat->find('('), close = stat->rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    comm[pid] = stat->substr(open + 1, close - open - 1);
    std::istringstream rest(stat->substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    parent[pid] = ppid;
  }
  std::vector<pid_t> out;
  for (const auto& [pid, name] : comm) {
    if (pid == listener || name != "sshd") continue;
    for (pid_t p = parent[pid]; p > 1; p = parent[p]) {
      if (p == listener) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

void StartPeerSshd() {
  auto pub = ReadFile(g.key.string() + ".pub");
  if (!pub.ok()) Die("read the user's public key");
  auto sshd = testing::LocalSshd::Start(g.dir, std::stoi(kPeerSshdPort), *pub);
  if (!sshd.ok()) Die("start sshd", {-1, "", sshd.error().message()});
  g.sshd = std::move(*sshd);
  Check("ssh to the peer sshd", Ssh(Target{kPeerSshdPort, "root@127.0.0.1"}, "true"));
}

struct MemoryResult {
  Memory before, after;
  int threads_before = 0, threads_after = 0;
};

// Gives the server a moment to finish what a session's start left pending (channel setup,
// upstream connection) before its memory is read.
void Settle() { std::this_thread::sleep_for(std::chrono::seconds(3)); }

void OpenIdle(const Target& t, const std::vector<std::string>& extra, const std::string& command,
              const std::string& ready, const std::string& what) {
  for (int i = 0; i < kIdleSessions; ++i) {
    StartIdleClient(SshArgv(t, extra, command), ready);
    if ((i + 1) % 10 == 0) Log(fmt::format("{}: {} sessions open", what, i + 1));
  }
}

MemoryResult GatewayMemory(const std::function<void()>& open) {
  MemoryResult r;
  Settle();
  r.before = MemoryOf(g.daemon.pid);
  r.threads_before = static_cast<int>(ProcField(g.daemon.pid, "status", "Threads"));
  open();
  Settle();
  r.after = MemoryOf(g.daemon.pid);
  r.threads_after = static_cast<int>(ProcField(g.daemon.pid, "status", "Threads"));
  return r;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"vmctl SSH gateway benchmark"};
  std::string cache = "/var/cache/vmctl/images";
  g.bin = fs::read_symlink("/proc/self/exe").parent_path() / "vmctl";
  app.add_option("--image-cache", cache)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string id = std::to_string(::getpid());
  std::string load_start = LoadAverage();
  // Short: the VMs' Unix sockets live below it.
  g.dir = fs::path("/tmp") / ("vmctl-sshb-" + id);
  fs::create_directories(g.dir);
  g.ns = "vmctl-sshb-" + id;
  auto added = RunCommand({"ip", "netns", "add", g.ns});
  if (!added.ok() || added->exit_code != 0) {
    std::string ns = g.ns;
    g.ns.clear();  // not ours to delete
    Die("ip netns add " + ns, added.ok() ? *added : RunOutput{});
  }
  int ns_fd = ::open(("/run/netns/" + g.ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (ns_fd < 0 || ::setns(ns_fd, CLONE_NEWNET) != 0) Die("setns " + g.ns);
  ::close(ns_fd);
  Check("ip link set lo up", Run({"ip", "link", "set", "lo", "up"}));

  auto spawned =
      SpawnDetached({"ip", "netns", "exec", g.ns, g.bin.string(), "serve", "--state-dir",
                     (g.dir / "state").string(), "--socket", (g.dir / "api.sock").string(),
                     "--image-cache", cache, "--prepare-image", "--registration", "open"},
                    {.log_file = g.dir / "daemon.log"});
  if (!spawned.ok()) Die("start the daemon", {-1, "", spawned.error().message()});
  g.daemon = *spawned;
  Log("daemon pid " + std::to_string(g.daemon.pid) + ", preparing the image");
  while (Run({g.bin.string(), "--socket", (g.dir / "api.sock").string(), "ls"}).exit_code != 0) {
    if (!g.daemon.Alive()) Die("daemon start");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // `ip netns exec` execs the daemon in place, so the pid we hold is the gateway's process.
  if (g.daemon.Cmdline().size() < 2 || g.daemon.Cmdline()[1] != "serve") {
    Die("the daemon's pid is not `vmctl serve`");
  }

  g.key = g.dir / "id_ed25519";
  Check("ssh-keygen", Run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@vmctl", "-f",
                           g.key.string()}));
  Target lobby{kGatewayPort, "127.0.0.1"};
  Check("register", Ssh(lobby, "register bench@example.com"));
  Log("creating VM web");
  auto create_start = Clock::now();
  Check("new --name web --disk 0", Ssh(lobby, "new --name web --disk 0"));
  g.vm_created = true;
  Log(fmt::format("new took {:.1f} s", Ms(Clock::now() - create_start) / 1000));
  Target gateway{kGatewayPort, "web@127.0.0.1"};
  auto created = Clock::now();
  WaitForSsh(gateway, std::chrono::seconds(60));
  Log(fmt::format("VM reachable through the gateway {:.1f} s after new returned",
                  Ms(Clock::now() - created) / 1000));

  auto shown = json::parse(Check("show web", Ssh(lobby, "show web --json")).out, nullptr, false);
  if (shown.is_discarded() || !shown.contains("address")) Die("show web --json: no address");
  std::string address = shown["address"].get<std::string>();
  auto pub = ReadFile(g.key.string() + ".pub");
  if (!pub.ok()) Die("read the public key");
  // Appended: the gateway's own line (tagged vmctl-gateway) must stay.
  Check("install the key in the VM", Ssh(gateway, "cat >> /root/.ssh/authorized_keys", *pub));
  Target direct{"22", "root@" + address};
  WaitForSsh(direct, std::chrono::seconds(30));
  auto guest = Check("guest info", Ssh(gateway, "nproc; free -m | awk '/Mem:/{print $2}'")).out;
  Log("VM address " + address);

  std::map<std::string, Target> paths = {{"direct", direct}, {"gateway", gateway}};

  Log(fmt::format("memory: gateway, {} proxied sessions", kIdleSessions));
  auto proxied =
      GatewayMemory([&] { OpenIdle(gateway, {}, "echo up; exec sleep 600", "up", "proxied"); });
  Log(fmt::format("memory: gateway, {} lobby sessions, the proxied ones still open",
                  kIdleSessions));
  auto lobbies = GatewayMemory([&] { OpenIdle(lobby, {"-tt"}, "", "> ", "lobby"); });
  StopClients();

  Log(fmt::format("memory: host sshd, {} sessions", kIdleSessions));
  StartPeerSshd();
  Target peer{kPeerSshdPort, "root@127.0.0.1"};
  OpenIdle(peer, {}, "echo up; exec sleep 600", "up", "sshd");
  Settle();
  auto sshd_processes = SshdConnectionProcesses(g.sshd->process().pid);
  Memory sshd_sum;
  for (pid_t pid : sshd_processes) {
    auto m = MemoryOf(pid);
    sshd_sum.rss_kib += m.rss_kib;
    sshd_sum.pss_kib += m.pss_kib;
  }
  Memory sshd_listener = MemoryOf(g.sshd->process().pid);
  StopClients();

  Log("connection setup");
  // OpenSSH 9.2 prefers the post-quantum sntrup761x25519 exchange, which libssh 0.10 (the
  // gateway's side of both hops) lacks; this third path tells that cost from the gateway's.
  Target direct_x25519 = direct;
  direct_x25519.options = {"-o", "KexAlgorithms=curve25519-sha256"};
  auto connect_paths = paths;
  connect_paths["direct-x25519"] = direct_x25519;
  auto connect = MeasureConnect(connect_paths);
  std::string kex_direct = NegotiatedKex(direct), kex_gateway = NegotiatedKex(gateway);
  Log("keystroke echo");
  auto echo = MeasureEcho(paths);
  Log("scp");
  Memory before_scp = MemoryOf(g.daemon.pid);
  auto scp = MeasureScp(paths);

  std::string load_end = LoadAverage();
  Memory daemon_end = MemoryOf(g.daemon.pid);
  Cleanup();

  auto cpu = RunCommand({"sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"});
  std::string model = cpu.ok() ? cpu->out.substr(0, cpu->out.find('\n')) : "";
  std::istringstream guest_info(guest);
  std::string guest_cpus, guest_mib;
  guest_info >> guest_cpus >> guest_mib;
  auto ssh_version = RunCommand({"ssh", "-V"});
  std::string version = ssh_version.ok() ? ssh_version->err : "";
  version = version.substr(0, version.find(','));

  fmt::print("### SSH gateway vs. direct ssh to the VM ({} cores,{}; {})\n\n",
             std::thread::hardware_concurrency(), model, version);
  fmt::print(
      "One VM (`new --name web --disk 0`: {} vCPU, {} MiB total in the guest's `free`, QEMU/TCG). "
      "*gateway*: `ssh -p 2222 "
      "web@127.0.0.1` (the gateway on the host, then its own SSH connection to the VM's sshd); "
      "*direct*: `ssh root@{}` to the same sshd over the VM's TAP. Load average (1, 5, 15 min) "
      "at the start: {}; at the end: {}.\n\n",
      guest_cpus, guest_mib, address, load_start, load_end);

  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0; };
  fmt::print("| metric | gateway | direct | gateway / direct |\n|---|---|---|---|\n");
  auto row = [&](const std::string& metric, double gw, double dir, const char* unit) {
    fmt::print("| {} | {:.1f}{} | {:.1f}{} | {:.2f}× |\n", metric, gw, unit, dir, unit,
               ratio(gw, dir));
  };
  row(fmt::format("scp upload, 64 MiB, median of {} (MB/s)", kScpRuns),
      Percentile(scp["gateway"].up_mbps, 50), Percentile(scp["direct"].up_mbps, 50), "");
  row(fmt::format("scp download, 64 MiB, median of {} (MB/s)", kScpRuns),
      Percentile(scp["gateway"].down_mbps, 50), Percentile(scp["direct"].down_mbps, 50), "");
  row(fmt::format("`ssh … true`, p50 of {}", kConnectRuns), Percentile(connect["gateway"], 50),
      Percentile(connect["direct"], 50), " ms");
  row(fmt::format("`ssh … true`, p90 of {}", kConnectRuns), Percentile(connect["gateway"], 90),
      Percentile(connect["direct"], 90), " ms");
  fmt::print(
      "| `ssh … true`, direct with `KexAlgorithms=curve25519-sha256`, p50 / p90 | | {:.1f} / "
      "{:.1f} ms | |\n",
      Percentile(connect["direct-x25519"], 50), Percentile(connect["direct-x25519"], 90));
  row(fmt::format("keystroke echo (`ssh -tt`, bash), p50 of {}", kKeystrokes),
      Percentile(echo["gateway"], 50), Percentile(echo["direct"], 50), " ms");
  row(fmt::format("keystroke echo, p90 of {}", kKeystrokes), Percentile(echo["gateway"], 90),
      Percentile(echo["direct"], 90), " ms");
  fmt::print(
      "\nAdded by the gateway: connection setup {:+.0f} ms (p50), keystroke echo {:+.2f} ms "
      "(p50).\n",
      Percentile(connect["gateway"], 50) - Percentile(connect["direct"], 50),
      Percentile(echo["gateway"], 50) - Percentile(echo["direct"], 50));
  fmt::print(
      "\nKey exchange negotiated by the OpenSSH client: with the gateway `{}`, with the VM's sshd "
      "`{}`. The gateway's own connection to the VM uses libssh's choice.\n",
      kex_gateway, kex_direct);
  auto samples = [](const std::vector<double>& v, const char* format) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ", ") + fmt::format(fmt::runtime(format), x);
    return s;
  };
  fmt::print("\nAll scp runs (MB/s), up: gateway {}; direct {}. Down: gateway {}; direct {}.\n",
             samples(scp["gateway"].up_mbps, "{:.1f}"), samples(scp["direct"].up_mbps, "{:.1f}"),
             samples(scp["gateway"].down_mbps, "{:.1f}"),
             samples(scp["direct"].down_mbps, "{:.1f}"));

  fmt::print(
      "\nHost memory per idle session ({} sessions each; the session command is `echo up; exec "
      "sleep 600`, the lobby is `ssh -tt -p 2222 127.0.0.1` waiting at its prompt):\n\n",
      kIdleSessions);
  fmt::print(
      "| sessions | server | RSS before | RSS after | per session RSS | per session PSS | "
      "threads |\n|---|---|---|---|---|---|---|\n");
  auto per = [](int64_t before, int64_t after) {
    return static_cast<double>(after - before) / kIdleSessions;
  };
  auto gateway_row = [&](const std::string& what, const MemoryResult& m) {
    fmt::print(
        "| {} | vmctl daemon (gateway), growth | {} KiB | {} KiB | {:.0f} KiB | {:.0f} KiB "
        "| {} → {} |\n",
        what, m.before.rss_kib, m.after.rss_kib, per(m.before.rss_kib, m.after.rss_kib),
        per(m.before.pss_kib, m.after.pss_kib), m.threads_before, m.threads_after);
  };
  gateway_row(fmt::format("{} proxied to the VM", kIdleSessions), proxied);
  gateway_row(fmt::format("{} in the lobby (command mode)", kIdleSessions), lobbies);
  fmt::print(
      "| {} to the host's sshd (peer) | OpenSSH sshd, sum over its {} per-connection processes | "
      "– | {} KiB | {:.0f} KiB | {:.0f} KiB | – |\n",
      kIdleSessions, sshd_processes.size(), sshd_sum.rss_kib, per(0, sshd_sum.rss_kib),
      per(0, sshd_sum.pss_kib));
  fmt::print(
      "\nProxied / sshd per session: {:.2f}× (RSS), {:.2f}× (PSS); lobby / sshd: {:.2f}× (RSS). "
      "The sshd listener itself: {} KiB RSS. The daemon: {} KiB RSS before the scp runs, {} KiB "
      "after them.\n",
      ratio(per(proxied.before.rss_kib, proxied.after.rss_kib), per(0, sshd_sum.rss_kib)),
      ratio(per(proxied.before.pss_kib, proxied.after.pss_kib), per(0, sshd_sum.pss_kib)),
      ratio(per(lobbies.before.rss_kib, lobbies.after.rss_kib), per(0, sshd_sum.rss_kib)),
      sshd_listener.rss_kib, before_scp.rss_kib, daemon_end.rss_kib);
  return 0;
}

}  // namespace vmctl::bench

int main(int argc, char** argv) { return vmctl::bench::Main(argc, argv); }
