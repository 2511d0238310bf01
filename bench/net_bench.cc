// Network benchmark: host <-> VM TCP throughput (iperf3) and latency (ping) through the VM's TAP,
// with and without a --bandwidth limit, and the time networking adds to create. The peer, in the
// same run, is the same measurement between two network namespaces joined by a veth pair: the
// host's own path without a VM.
//
// Runs the daemon inside a network namespace it creates and removes.
// Usage: vmctl_net_bench [--image-cache DIR] [--seconds N]   (Markdown on stdout)
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::bench {
namespace {

using nlohmann::json;

struct Env {
  std::string ns, peer_ns;
  std::filesystem::path dir, bin;
  ProcessRef daemon;

  RunOutput In(const std::string& netns, const std::vector<std::string>& argv,
               const std::string& stdin_data = "") const {
    std::vector<std::string> full = {"ip", "netns", "exec", netns};
    full.insert(full.end(), argv.begin(), argv.end());
    RunOptions options;
    if (!stdin_data.empty()) options.stdin_data = stdin_data;
    auto out = RunCommand(full, options);
    return out.ok() ? *out : RunOutput{-1, "", out.error().message()};
  }
  RunOutput Vmctl(const std::vector<std::string>& args, const std::string& stdin_data = "") const {
    std::vector<std::string> argv = {bin.string(), "--socket", (dir / "api.sock").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    RunOptions options;
    if (!stdin_data.empty()) options.stdin_data = stdin_data;
    auto out = RunCommand(argv, options);
    return out.ok() ? *out : RunOutput{-1, "", out.error().message()};
  }
};

[[noreturn]] void Die(const std::string& what, const RunOutput& out) {
  std::cerr << what << " failed (" << out.exit_code << "): " << out.out << out.err << "\n";
  std::exit(1);
}

// Mbit/s of an iperf3 client run (JSON), as the receiver counted it.
double Mbps(const RunOutput& out) {
  auto j = json::parse(out.out, nullptr, false);
  if (j.is_discarded() || !j.contains("end")) return 0;
  return j["end"]["sum_received"].value("bits_per_second", 0.0) / 1e6;
}

// Average RTT in ms from ping's summary line.
double PingAvg(const RunOutput& out) {
  std::smatch m;
  static const std::regex kSummary(R"(= [0-9.]+/([0-9.]+)/)");
  return std::regex_search(out.out, m, kSummary) ? std::stod(m[1]) : 0;
}

// Copies the host's iperf3 and the libraries the guest image lacks into the VM.
void InstallIperf(const Env& e, const std::string& vm) {
  auto put = [&](const std::string& from, const std::string& to) {
    auto data = ReadFile(from);
    if (!data.ok()) Die("read " + from, {1, "", data.error().message()});
    auto r = e.Vmctl({"exec", vm, "--", "sh", "-c",
                      "mkdir -p /usr/local/lib && cat > " + to + " && chmod +x " + to},
                     *data);
    if (r.exit_code != 0) Die("copy " + from, r);
  };
  put("/usr/bin/iperf3", "/usr/local/bin/iperf3");
  put("/lib/x86_64-linux-gnu/libiperf.so.0", "/usr/local/lib/libiperf.so.0");
  put("/lib/x86_64-linux-gnu/libsctp.so.1", "/usr/local/lib/libsctp.so.1");
  auto started = e.Vmctl({"exec", vm, "--", "sh", "-c",
                          "LD_LIBRARY_PATH=/usr/local/lib setsid -f /usr/local/bin/iperf3 -s "
                          ">/dev/null 2>&1"});
  if (started.exit_code != 0) Die("start iperf3 in the guest", started);
  std::this_thread::sleep_for(std::chrono::seconds(1));
}

struct PathResult {
  double to_mbps = 0, from_mbps = 0, rtt_ms = 0;
};

PathResult Measure(const Env& e, const std::string& client_ns, const std::string& server,
                   int seconds) {
  PathResult r;
  std::string t = std::to_string(seconds);
  r.to_mbps = Mbps(e.In(client_ns, {"iperf3", "-J", "-t", t, "-c", server}));
  r.from_mbps = Mbps(e.In(client_ns, {"iperf3", "-J", "-R", "-t", t, "-c", server}));
  r.rtt_ms = PingAvg(e.In(client_ns, {"ping", "-q", "-c", "50", "-i", "0.05", server}));
  return r;
}

// "TAP vt... attached in 12 ms" and "guest configured as ... in 40 ms" from the events log.
std::pair<int64_t, int64_t> NetworkEvents(const Env& e, const std::string& vm) {
  auto shown = json::parse(e.Vmctl({"show", vm, "--json"}).out);
  auto rows = RunCommand({"sqlite3", (e.dir / "state/vmctl.db").string(),
                          fmt::format("select detail from events where vm_id='{}' and "
                                      "kind='network' order by id",
                                      shown["id"].get<std::string>())});
  std::pair<int64_t, int64_t> out{-1, -1};
  static const std::regex kMs(R"(in ([0-9]+) ms)");
  std::smatch m;
  std::string text = rows.ok() ? rows->out : "";
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!std::regex_search(line, m, kMs)) continue;
    (line.find("attached") != std::string::npos ? out.first : out.second) = std::stoll(m[1]);
  }
  return out;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"vmctl network benchmark"};
  std::string cache = "/var/cache/vmctl/images";
  int seconds = 5;
  Env e;
  e.bin = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "vmctl";
  app.add_option("--image-cache", cache)->capture_default_str();
  app.add_option("--seconds", seconds, "length of each iperf3 run")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::string id = std::to_string(::getpid());
  e.ns = "vmctl-nb-" + id;
  e.peer_ns = "vmctl-nbp-" + id;
  e.dir = std::filesystem::path("/tmp") / ("vmctl-net-bench-" + id);
  std::filesystem::create_directories(e.dir);
  for (const auto& ns : {e.ns, e.peer_ns}) {
    auto added = RunCommand({"ip", "netns", "add", ns});
    if (!added.ok() || added->exit_code != 0)
      Die("ip netns add", added.ok() ? *added : RunOutput{});
    e.In(ns, {"ip", "link", "set", "lo", "up"});
  }
  // The peer path: a veth pair from the host namespace to another namespace.
  e.In(e.ns, {"sh", "-c",
              "ip link add pv0 type veth peer name pv1 && ip link set pv1 netns " + e.peer_ns +
                  " && ip addr add 192.0.2.1/24 dev pv0 && ip link set pv0 up"});
  e.In(e.peer_ns, {"sh", "-c", "ip addr add 192.0.2.2/24 dev pv1 && ip link set pv1 up"});
  std::vector<std::string> serve = {"ip",
                                    "netns",
                                    "exec",
                                    e.ns,
                                    e.bin.string(),
                                    "serve",
                                    "--state-dir",
                                    (e.dir / "state").string(),
                                    "--socket",
                                    (e.dir / "api.sock").string(),
                                    "--image-cache",
                                    cache,
                                    "--prepare-image"};
  auto spawned = SpawnDetached(serve, {.log_file = e.dir / "daemon.log"});
  if (!spawned.ok()) Die("start the daemon", {1, "", spawned.error().message()});
  e.daemon = *spawned;
  while (e.Vmctl({"ls"}).exit_code != 0) {
    if (!e.daemon.Alive()) Die("daemon", {1, "", TailFile(e.dir / "daemon.log", 3000)});
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  std::vector<std::pair<int64_t, int64_t>> net_times;
  for (int i = 0; i < 3; ++i) {
    std::string name = fmt::format("probe{}", i);
    auto created = e.Vmctl({"create", name, "--memory", "256M"});
    if (created.exit_code != 0) Die("create", created);
    net_times.push_back(NetworkEvents(e, name));
    e.Vmctl({"rm", name});
  }
  auto created = e.Vmctl({"create", "fast", "--memory", "512M"});
  if (created.exit_code != 0) Die("create", created);
  auto limited = e.Vmctl({"create", "slow", "--memory", "512M", "--bandwidth", "100mbit"});
  if (limited.exit_code != 0) Die("create --bandwidth", limited);
  std::string fast_ip = json::parse(e.Vmctl({"show", "fast", "--json"}).out)["address"];
  std::string slow_ip = json::parse(e.Vmctl({"show", "slow", "--json"}).out)["address"];
  InstallIperf(e, "fast");
  InstallIperf(e, "slow");
  e.In(e.peer_ns, {"sh", "-c", "setsid -f iperf3 -s >/dev/null 2>&1"});
  std::this_thread::sleep_for(std::chrono::seconds(1));

  PathResult vm = Measure(e, e.ns, fast_ip, seconds);
  // The upload policer's bucket holds one second of traffic on top of the rate (nftables byte
  // limits), so short runs overshoot; longer ones show the sustained rate.
  PathResult slow = Measure(e, e.ns, slow_ip, seconds * 4);
  PathResult peer = Measure(e, e.ns, "192.0.2.2", seconds);

  auto cpu = RunCommand({"sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"});
  std::string model = cpu.ok() ? cpu->out.substr(0, cpu->out.find('\n')) : "";
  fmt::print("### Network ({} s iperf3 runs, {} s for the limited VM; {} cores,{})\n\n", seconds,
             seconds * 4, std::thread::hardware_concurrency(), model);
  fmt::print("| path | host → VM Mbit/s | VM → host Mbit/s | ping RTT ms |\n|---|---|---|---|\n");
  auto row = [](const std::string& name, const PathResult& r) {
    fmt::print("| {} | {:.0f} | {:.0f} | {:.3f} |\n", name, r.to_mbps, r.from_mbps, r.rtt_ms);
  };
  row("VM through its TAP (QEMU/TCG, virtio-net)", vm);
  row("VM with `--bandwidth 100mbit`", slow);
  row("peer: veth between two namespaces (no VM)", peer);
  fmt::print("\nVM / peer: throughput to VM {:.3f}×, from VM {:.3f}×, RTT {:.1f}×.\n",
             vm.to_mbps / peer.to_mbps, vm.from_mbps / peer.from_mbps, vm.rtt_ms / peer.rtt_ms);
  fmt::print(
      "\nNetwork time added to create (TAP + rules attach; guest configuration by the "
      "agent):\n\n| create | attach ms | guest config ms |\n|---|---|---|\n");
  for (size_t i = 0; i < net_times.size(); ++i) {
    fmt::print("| {} | {} | {} |\n", i + 1, net_times[i].first, net_times[i].second);
  }

  e.Vmctl({"rm", "fast"});
  e.Vmctl({"rm", "slow"});
  (void)e.daemon.Signal(SIGTERM);
  (void)e.daemon.WaitExit(std::chrono::seconds(20));
  // Background iperf3 servers and anything else left in the namespaces end with them.
  for (const auto& ns : {e.ns, e.peer_ns}) {
    auto pids = RunCommand({"ip", "netns", "pids", ns});
    if (pids.ok()) {
      std::istringstream in(pids->out);
      for (pid_t pid; in >> pid;) ::kill(pid, SIGKILL);
    }
    (void)RunCommand({"ip", "netns", "del", ns});
  }
  std::filesystem::remove_all(e.dir);
  return 0;
}

}  // namespace vmctl::bench

int main(int argc, char** argv) { return vmctl::bench::Main(argc, argv); }
