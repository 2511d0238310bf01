// Milestone 1 benchmark: create -> running latency split into control-plane time, guest boot to
// the agent's hello and the rest of the boot, daemon memory per running VM, stop and rm latency;
// and, as the peer, the same guest booted by a bare QEMU command line to its agent's hello,
// measured the same way in the same run.
//
// Usage: vmctl_bench [--vms N] [--image-cache DIR]   (writes a Markdown table to stdout)
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <thread>

#include "base/frame.h"
#include "base/io.h"
#include "base/process.h"
#include "base/unique_fd.h"
#include "bench/host.h"
#include "bench/stats.h"

namespace vmctl::bench {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Daemon {
  std::filesystem::path dir, bin;
  ProcessRef process;

  RunOutput Vmctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {bin.string(), "--socket", (dir / "api.sock").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto out = RunCommand(argv);
    if (!out.ok()) return {-1, "", out.error().message()};
    return *out;
  }
  std::string Sql(const std::string& sql) const {
    auto out = RunCommand({"sqlite3", (dir / "state/vmctl.db").string(), sql});
    return out.ok() ? out->out : "";
  }
};

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"vmctl milestone-1 benchmark"};
  int vms = 10;
  std::string cache = "/var/cache/vmctl/images";
  std::string bin =
      (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "vmctl").string();
  app.add_option("--vms", vms, "VMs to create")->capture_default_str();
  app.add_option("--image-cache", cache)->capture_default_str();
  app.add_option("--vmctl", bin, "vmctl binary")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  Daemon d{std::filesystem::path("/tmp") / ("vmctl-bench-" + std::to_string(::getpid())), bin, {}};
  std::filesystem::create_directories(d.dir);
  // The daemon's bridge, TAPs and nftables tables live in a namespace of the benchmark's own.
  const std::string netns = "vmctl-bench-" + std::to_string(::getpid());
  (void)RunCommand({"ip", "netns", "add", netns});
  (void)RunCommand({"ip", "-n", netns, "link", "set", "lo", "up"});
  auto spawned = SpawnDetached(
      {"ip", "netns", "exec", netns, bin, "serve", "--state-dir", (d.dir / "state").string(),
       "--socket", (d.dir / "api.sock").string(), "--image-cache", cache, "--prepare-image",
       "--max-vms", "100", "--max-memory-mib", "100000"},
      {.log_file = d.dir / "daemon.log"});
  if (!spawned.ok()) {
    std::cerr << spawned.error().message() << "\n";
    return 1;
  }
  d.process = *spawned;
  while (d.Vmctl({"ls"}).exit_code != 0) {
    if (!d.process.Alive()) {
      std::cerr << TailFile(d.dir / "daemon.log", 3000);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  int64_t rss_idle = ProcField(d.process.pid, "status", "VmRSS");

  // Timings of one create from the events log, which has millisecond timestamps for: request
  // accepted (create), VMM launched (start), agent hello (agent), state running (running).
  auto split = [&](const std::string& name, std::vector<double>* control, std::vector<double>* boot,
                   std::vector<double>* finish) {
    auto vm = json::parse(d.Vmctl({"show", name, "--json"}).out);
    auto rows = d.Sql(fmt::format(
        "select case when kind='state' then 'running' else kind end, at from events where "
        "vm_id='{}' and (kind in ('create','start','agent') or (kind='state' and detail like "
        "'%-> running')) order by id",
        vm["id"].get<std::string>()));
    std::map<std::string, int64_t> at;
    std::istringstream lines(rows);
    std::string line;
    while (std::getline(lines, line)) {
      auto bar = line.find('|');
      if (bar != std::string::npos && !at.count(line.substr(0, bar))) {
        at[line.substr(0, bar)] = std::stoll(line.substr(bar + 1));
      }
    }
    control->push_back(static_cast<double>(at["start"] - at["create"]));
    boot->push_back(static_cast<double>(at["agent"] - at["start"]));
    finish->push_back(static_cast<double>(at["running"] - at["agent"]));
    return vm;
  };
  auto create = [&](const std::string& name, std::vector<double>* total) {
    auto t0 = Clock::now();
    auto out = d.Vmctl({"create", name, "--memory", "256M"});
    total->push_back(Ms(Clock::now() - t0));
    if (out.exit_code != 0) {
      std::cerr << "create failed: " << out.err << "\n";
      std::exit(1);
    }
  };

  // Phase 1, isolated: one VM at a time, so each boot has the machine to itself like the peer.
  std::vector<double> total, control, boot, finish, rm;
  std::vector<std::string> peer_argv;
  std::string runtime_dir;
  for (int i = 0; i < vms; ++i) {
    std::string name = fmt::format("solo{}", i);
    create(name, &total);
    json vm = split(name, &control, &boot, &finish);
    if (i == 0) {
      peer_argv = ProcessRef::Of(vm["pid"].get<pid_t>())->Cmdline();
      runtime_dir = vm["runtime_dir"].get<std::string>();
    }
    auto t0 = Clock::now();
    d.Vmctl({"rm", name});
    rm.push_back(Ms(Clock::now() - t0));
  }

  // Phase 2, density: VMs accumulate, each boot competing with the ones already running.
  std::vector<double> dense_total, dense_control, dense_boot, dense_finish, stop, qemu_rss;
  for (int i = 0; i < vms; ++i) {
    std::string name = fmt::format("dense{}", i);
    create(name, &dense_total);
    json vm = split(name, &dense_control, &dense_boot, &dense_finish);
    qemu_rss.push_back(static_cast<double>(ProcField(vm["pid"].get<pid_t>(), "status", "VmRSS")) /
                       1024.0);
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  int64_t rss_loaded = ProcField(d.process.pid, "status", "VmRSS");
  for (int i = 0; i < vms; ++i) {
    std::string name = fmt::format("dense{}", i);
    auto t0 = Clock::now();
    d.Vmctl({"stop", name});
    stop.push_back(Ms(Clock::now() - t0));
    d.Vmctl({"rm", name});
  }
  (void)d.process.Signal(SIGTERM);
  (void)d.process.WaitExit(std::chrono::seconds(10));

  // The peer: the very same QEMU command line started by hand, timed from spawn to the agent's
  // hello, without the daemon, the database or the disk provisioning.
  std::vector<double> peer;
  std::string image_rootfs;
  {
    auto images = RunCommand({"sqlite3", (d.dir / "state/vmctl.db").string(),
                              "select rootfs from images where name='default'"});
    image_rootfs = images.ok() ? images->out.substr(0, images->out.find('\n')) : "";
  }
  for (int i = 0; i < std::max(3, vms / 3); ++i) {
    auto dir = d.dir / fmt::format("peer{}", i);
    std::filesystem::create_directories(dir);
    (void)RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", image_rootfs,
                      (dir / "root.qcow2").string(), "2048M"});
    // Same NIC as the daemon's VMs: a TAP of the same name in the same namespace.
    std::vector<std::string> argv = {"ip", "netns", "exec", netns};
    for (const auto& arg : peer_argv) {
      auto at = arg.find("ifname=");
      if (at == std::string::npos) continue;
      std::string tap = arg.substr(at + 7, arg.find(',', at) - at - 7);
      (void)RunCommand({"ip", "-n", netns, "tuntap", "add", tap, "mode", "tap"});
    }
    for (auto arg : peer_argv) {
      for (size_t at = arg.find(runtime_dir); at != std::string::npos; at = arg.find(runtime_dir)) {
        arg.replace(at, runtime_dir.size(), dir.string());
      }
      argv.push_back(arg);
    }
    auto t0 = Clock::now();
    auto qemu = SpawnDetached(argv, {.log_file = dir / "vmm.log"});
    if (!qemu.ok()) {
      std::cerr << "peer qemu: " << qemu.error().message() << "\n";
      return 1;
    }
    UniqueFd agent;
    // A peer QEMU that exits at once (say, a disk path it cannot open) must not hang the run.
    while (!agent.valid() && qemu->Alive()) {
      auto c = ConnectUnix(dir / "agent.sock");
      if (c.ok())
        agent = std::move(c).value();
      else
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    (void)WriteFrame(agent.get(), {{"id", 1}, {"op", "hello"}});
    auto frame = ReadFrame(agent.get());
    peer.push_back(Ms(Clock::now() - t0));
    if (!frame.ok()) std::cerr << "peer: no hello: " << frame.error().message() << "\n";
    (void)qemu->Signal(SIGKILL);
    (void)qemu->WaitExit(std::chrono::seconds(10));
  }
  std::filesystem::remove_all(d.dir);
  (void)RunCommand({"ip", "netns", "del", netns});

  auto row = [](const std::string& what, const std::vector<double>& v, const std::string& unit) {
    fmt::print("| {} | {:.0f} {} | {:.0f} {} |\n", what, Percentile(v, 50), unit, Percentile(v, 99),
               unit);
  };
  fmt::print("| metric | p50 | p99 |\n|---|---|---|\n");
  fmt::print("| **isolated: {} creates, one VM at a time** | | |\n", vms);
  row("create → running (CLI wall clock)", total, "ms");
  row("control plane: request → VMM launched", control, "ms");
  row("guest boot: VMM launched → agent hello", boot, "ms");
  row("agent hello → running (network, data disk, boot finished)", finish, "ms");
  row("rm of a running VM", rm, "ms");
  fmt::print("| **peer: bare QEMU, same argv, spawn → agent hello** | | |\n");
  row("boot", peer, "ms");
  fmt::print("| **density: {} VMs kept running** | | |\n", vms);
  row("create → running (CLI wall clock)", dense_total, "ms");
  row("guest boot: VMM launched → agent hello", dense_boot, "ms");
  row("agent hello → running (network, data disk, boot finished)", dense_finish, "ms");
  row("stop (graceful, via the agent)", stop, "ms");
  row("QEMU RSS per VM (256 MiB guest)", qemu_rss, "MiB");
  fmt::print(
      "\nvmctl create / bare QEMU boot (isolated, p50): {:.2f}x; control plane is {:.1f}% "
      "of create.\n",
      Percentile(total, 50) / Percentile(peer, 50),
      100.0 * Percentile(control, 50) / Percentile(total, 50));
  fmt::print("Daemon RSS: {} KiB idle, {} KiB with {} VMs running: {:.0f} KiB per VM.\n", rss_idle,
             rss_loaded, vms,
             static_cast<double>(rss_loaded - rss_idle) / static_cast<double>(vms));
  return 0;
}

}  // namespace vmctl::bench

int main(int argc, char** argv) { return vmctl::bench::Main(argc, argv); }
