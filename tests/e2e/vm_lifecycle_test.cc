// End-to-end tests of Milestone 1 with real QEMU/TCG guests booted from the default image:
// the vmctl CLI talks to a real daemon, which drives real VMMs and the real guest agent.
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <thread>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using nlohmann::json;
using std::chrono::seconds;

std::string KernelVersion(const TestDaemon& d) {
  auto out = d.Vmctl({"image", "ls", "--json"});
  auto images = json::parse(out.out, nullptr, false);
  if (!images.is_array()) return "";
  for (const auto& i : images) {
    if (i.value("name", "") == "default") return i.value("kernel_version", "");
  }
  return "";
}

// systemd says the boot is over, and the early-boot service that empties /tmp has run.
void ExpectBooted(const TestDaemon& d, const std::string& name) {
  auto state = d.Vmctl({"exec", name, "--", "systemctl", "is-system-running"});
  EXPECT_TRUE(state.out == "running\n" || state.out == "degraded\n") << state.out << state.err;
  auto tmpfiles = d.Vmctl({"exec", name, "--", "systemctl", "show", "-p", "ActiveState", "-p",
                           "ActiveEnterTimestampMonotonic", "systemd-tmpfiles-setup.service"});
  EXPECT_NE(tmpfiles.out.find("ActiveState=active"), std::string::npos) << tmpfiles.out;
  EXPECT_EQ(tmpfiles.out.find("ActiveEnterTimestampMonotonic=0\n"), std::string::npos)
      << tmpfiles.out;
}

TEST(VmLifecycleTest, CreateExecStdinExitStatusLogsAndRmLeavesNothing) {
  TestDaemon d;
  d.Start();
  auto created = d.Vmctl({"create", "demo"});
  ASSERT_EQ(created.exit_code, 0) << created.err << TailFile(d.log(), 3000);
  EXPECT_NE(created.err.find("==> "), std::string::npos) << "create shows progress";
  EXPECT_NE(created.out.find("vmctl exec demo"), std::string::npos) << created.out;
  // Running means booted: systemd's start-up jobs are done, so nothing wipes /tmp any more.
  EXPECT_NE(created.err.find("The guest finished booting (systemd: "), std::string::npos)
      << created.err;
  ExpectBooted(d, "demo");
  ASSERT_EQ(d.Vmctl({"exec", "demo", "--", "sh", "-c", "echo kept > /tmp/probe"}).exit_code, 0);

  auto uname = d.Vmctl({"exec", "demo", "--", "uname", "-r"});
  ASSERT_EQ(uname.exit_code, 0) << uname.err;
  EXPECT_EQ(uname.out, KernelVersion(d) + "\n");

  EXPECT_EQ(d.Vmctl({"exec", "demo", "--", "sh", "-c", "exit 7"}).exit_code, 7);

  auto cat = d.Vmctl({"exec", "demo", "--", "cat"}, "hi\n");
  EXPECT_EQ(cat.exit_code, 0);
  EXPECT_EQ(cat.out, "hi\n");

  auto err = d.Vmctl({"exec", "demo", "--", "sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(err.exit_code, 3);
  EXPECT_EQ(err.out, "out\n");
  EXPECT_EQ(err.err, "err\n");

  auto missing = d.Vmctl({"exec", "demo", "--", "no-such-command"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no-such-command"), std::string::npos) << missing.err;

  auto ls = json::parse(d.Vmctl({"ls", "--json"}).out);
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["name"], "demo");
  EXPECT_EQ(ls[0]["state"], "running");
  EXPECT_EQ(ls[0]["backend"], "qemu");

  auto logs = d.Vmctl({"logs", "demo"});
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_NE(logs.out.find("vmctl-init: mounted /dev/vda"), std::string::npos) << logs.out;

  // Duplicate names are refused while the first VM exists.
  auto dup = d.Vmctl({"create", "demo"});
  EXPECT_EQ(dup.exit_code, 4);
  EXPECT_NE(dup.err.find("is taken"), std::string::npos) << dup.err;

  EXPECT_EQ(d.Vmctl({"exec", "demo", "--", "cat", "/tmp/probe"}).out, "kept\n");

  json vm = *d.Show("demo");
  std::filesystem::path runtime = vm["runtime_dir"].get<std::string>();
  ProcessRef qemu = *ProcessRef::Of(vm["pid"].get<pid_t>());
  ASSERT_TRUE(std::filesystem::exists(runtime));

  ASSERT_EQ(d.Vmctl({"rm", "demo"}).exit_code, 0);
  EXPECT_FALSE(qemu.Alive());
  EXPECT_FALSE(std::filesystem::exists(runtime)) << "disk, sockets and logs are gone";
  EXPECT_TRUE(d.ProcessesUsingStateDir().empty());
  auto db = d.state_dir() / "vmctl.db";
  EXPECT_EQ(Sql(db, "select count(*) from vms"), "0");
  EXPECT_EQ(
      Sql(db, "select count(*) from events where vm_id='" + vm["id"].get<std::string>() + "'"),
      "0");
  EXPECT_TRUE(std::filesystem::is_empty(d.state_dir() / "vms"));
  EXPECT_EQ(d.Vmctl({"show", "demo"}).exit_code, 3);
}

TEST(VmLifecycleTest, VmsSurviveKill9OfTheDaemon) {
  TestDaemon d;
  d.Start();
  ASSERT_EQ(d.Vmctl({"create", "one"}).exit_code, 0) << TailFile(d.log(), 3000);
  ASSERT_EQ(d.Vmctl({"create", "two"}).exit_code, 0) << TailFile(d.log(), 3000);
  auto pid_one = (*d.Show("one"))["pid"].get<pid_t>();
  auto pid_two = (*d.Show("two"))["pid"].get<pid_t>();

  d.Kill9();
  d.Start();

  auto ls = json::parse(d.Vmctl({"ls", "--json"}).out);
  ASSERT_EQ(ls.size(), 2u);
  for (const auto& vm : ls) EXPECT_EQ(vm["state"], "running") << vm.dump();
  EXPECT_EQ((*d.Show("one"))["pid"].get<pid_t>(), pid_one);
  EXPECT_EQ((*d.Show("two"))["pid"].get<pid_t>(), pid_two);
  for (const char* name : {"one", "two"}) {
    auto out = d.Vmctl({"exec", name, "--", "hostname"});
    EXPECT_EQ(out.exit_code, 0) << name << ": " << out.err;
  }
}

TEST(VmLifecycleTest, Kill9OfTheVmmMarksStoppedAndStartKeepsTheDisk) {
  TestDaemon d;
  d.Start();
  ASSERT_EQ(d.Vmctl({"create", "keep"}).exit_code, 0) << TailFile(d.log(), 3000);
  ASSERT_EQ(
      d.Vmctl({"exec", "keep", "--", "sh", "-c", "echo precious > /root/data && sync"}).exit_code,
      0);
  auto pid = (*d.Show("keep"))["pid"].get<pid_t>();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_EQ(d.WaitForState("keep", "stopped", seconds(10)), "stopped");
  auto stopped_exec = d.Vmctl({"exec", "keep", "--", "true"});
  EXPECT_EQ(stopped_exec.exit_code, 5);
  EXPECT_NE(stopped_exec.err.find("vmctl start keep"), std::string::npos) << stopped_exec.err;

  auto started = d.Vmctl({"start", "keep"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto data = d.Vmctl({"exec", "keep", "--", "cat", "/root/data"});
  EXPECT_EQ(data.out, "precious\n") << data.err;

  // A graceful stop powers the guest off through its agent; restart boots it again.
  auto stop = d.Vmctl({"stop", "keep"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ((*d.Show("keep"))["state"], "stopped");
  EXPECT_TRUE(d.ProcessesUsingStateDir().empty());
  ASSERT_EQ(d.Vmctl({"restart", "keep"}).exit_code, 0);
  EXPECT_EQ(d.Vmctl({"exec", "keep", "--", "cat", "/root/data"}).out, "precious\n");
}

TEST(VmLifecycleTest, Kill9OfTheDaemonMidCreateRecovers) {
  TestDaemon d;
  d.Start();
  // Create in the background and crash the daemon while the guest boots.
  std::thread create([&] { d.Vmctl({"create", "midway"}); });
  auto deadline = std::chrono::steady_clock::now() + seconds(60);
  bool booting = false;
  while (std::chrono::steady_clock::now() < deadline && !booting) {
    auto vm = d.Show("midway");
    booting = vm && (*vm)["state"] == "starting" && (*vm)["pid"].get<int>() != 0;
    if (!booting) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(booting);
  d.Kill9();
  create.join();
  d.Start();
  // The VMM was adopted; the daemon finishes the boot by itself.
  EXPECT_EQ(d.WaitForState("midway", "running", seconds(120)), "running")
      << TailFile(d.log(), 3000);
  // Finished exactly as a normal boot: booted, its pool address on its NIC and reachable, the
  // data disk mounted.
  ExpectBooted(d, "midway");
  std::string address = (*d.Show("midway"))["address"].get<std::string>();
  ASSERT_FALSE(address.empty());
  auto addr = d.Vmctl({"exec", "midway", "--", "ip", "-4", "-o", "addr", "show"});
  EXPECT_NE(addr.out.find(" " + address + "/"), std::string::npos) << addr.out;
  auto ping = d.Vmctl({"exec", "midway", "--", "sh", "-c",
                       "ping -c 1 -W 5 $(ip -4 route show default | cut -d' ' -f3)"});
  EXPECT_EQ(ping.exit_code, 0) << ping.out << ping.err;
  auto mounts = d.Vmctl({"exec", "midway", "--", "grep", " /data ", "/proc/mounts"});
  EXPECT_EQ(mounts.out.rfind("/dev/vdb /data ext4 ", 0), 0u) << mounts.out << mounts.err;
  EXPECT_EQ(d.ProcessesUsingStateDir().size(), 1u);
}

}  // namespace
}  // namespace vmctl::e2e
