// End-to-end tests of VM networking with real QEMU/TCG guests. The daemon runs in a network
// namespace the test creates ("the host"); a second namespace behind a veth pair plays the
// outside world, with the host's default route through it. Nothing reaches the real network.
#include <gtest/gtest.h>

#include <thread>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

using nlohmann::json;
using std::chrono::seconds;

// A one-connection-at-a-time HTTP server for guests: perl-base (IO::Socket::INET) is in every
// Debian image, unlike any HTTP server. Answers with the hostname and the client's address.
constexpr const char* kGuestHttpServer = R"(use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die "$!";
while (my $c = $s->accept) {
  my $line = <$c>;
  my $host = `hostname`; chomp $host;
  print $c "HTTP/1.0 200 OK\r\n\r\nhello from $host to " . $c->peerhost . "\n";
  close $c;
}
)";

// The outside world's web server: echoes the address the connection came from.
std::vector<std::string> PeerEchoServer(int port) {
  return {"socat", "TCP-LISTEN:" + std::to_string(port) + ",reuseaddr,fork",
          "SYSTEM:echo HTTP/1.0 200 OK; echo; echo seen-from $SOCAT_PEERADDR"};
}

class NetworkTest : public ::testing::Test {
 protected:
  // Outside world: 198.51.100.1 (and a fake metadata service on 169.254.169.254) behind the
  // host's uplink 198.51.100.2.
  void ConnectOutside(TestDaemon& d) {
    outside_ = std::make_unique<NetNs>("vmctl-out");
    const NetNs& host = d.netns();
    host.Sh("ip link add up0 type veth peer name up1 && ip link set up1 netns " + outside_->name() +
            " && ip addr add 198.51.100.2/24 dev up0 && ip link set up0 up && "
            "ip route add default via 198.51.100.1");
    outside_->Sh(
        "ip addr add 198.51.100.1/24 dev up1 && ip addr add 169.254.169.254/32 dev up1 && "
        "ip link set up1 up");
    outside_->Spawn(PeerEchoServer(8080), d.dir() / "outside-http.log");
  }

  static RunOutput Exec(const TestDaemon& d, const std::string& vm, const std::string& script) {
    return d.Vmctl({"exec", vm, "--", "sh", "-c", script}, "", seconds(60));
  }

  static void StartGuestServer(const TestDaemon& d, const std::string& vm) {
    ASSERT_EQ(
        d.Vmctl({"exec", vm, "--", "sh", "-c", "cat > /root/http.pl"}, kGuestHttpServer).exit_code,
        0);
    auto started = Exec(d, vm, "setsid -f perl /root/http.pl 8000 >/root/http.log 2>&1");
    ASSERT_EQ(started.exit_code, 0) << started.err;
  }

  // curl from the host namespace, retried while the guest server starts (perl in an emulated
  // guest on a loaded machine can take many seconds).
  static RunOutput CurlFromHost(const TestDaemon& d, const std::string& url) {
    RunOutput out;
    auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      out = d.netns().Run({"curl", "-sS", "--max-time", "3", url});
      if (out.exit_code == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return out;
  }

  // VM -> the outside's web server. Its socat forks a shell per connection and now and then
  // closes one without an answer (curl: "Empty reply from server"), so a failure is retried
  // twice; a blocked path fails all three.
  static RunOutput CurlOutside(const TestDaemon& d, const std::string& vm) {
    return Exec(d, vm,
                "for i in 1 2 3; do curl -sS --max-time 5 http://198.51.100.1:8080/ && exit 0; "
                "sleep 1; done; exit 1");
  }

  static std::string Nft(const TestDaemon& d, const std::string& what) {
    return d.netns().Run({"nft", "list", "table", what, "vmctl"}).out;
  }

  std::unique_ptr<NetNs> outside_;
};

TEST_F(NetworkTest, AddressesNatIsolationAntiSpoofingRestartAndCleanup) {
  // The SSH gateway listens on every host address: the port VMs must not reach.
  TestDaemon d({"--ssh-listen", "0.0.0.0:2222"});
  ConnectOutside(d);
  auto& host = const_cast<NetNs&>(d.netns());
  d.Start();
  EXPECT_NE(ReadFile(d.log())->find("NAT to the outside via up0"), std::string::npos)
      << TailFile(d.log(), 2000);

  auto a = d.Vmctl({"create", "alpha"});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("Address 10.0.0.2"), std::string::npos) << a.err;
  auto b = d.Vmctl({"create", "bravo", "--bandwidth", "20mbit"});
  ASSERT_EQ(b.exit_code, 0) << b.err;

  // show and ls --json carry address, MAC and TAP.
  json alpha = *d.Show("alpha"), bravo = *d.Show("bravo");
  EXPECT_EQ(alpha["address"], "10.0.0.2");
  EXPECT_EQ(bravo["address"], "10.0.0.3");
  std::string alpha_tap = alpha["tap"], bravo_tap = bravo["tap"];
  EXPECT_EQ(alpha_tap, "vt" + alpha["id"].get<std::string>());
  EXPECT_EQ(alpha["mac"].get<std::string>().substr(0, 3), "0a:");
  EXPECT_EQ(bravo["bandwidth_kbit"], 20000);
  auto ls = json::parse(d.Vmctl({"ls", "--json"}).out);
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0]["address"], "10.0.0.2");
  EXPECT_EQ(ls[0]["tap"], alpha_tap);
  auto show_text = d.Vmctl({"show", "bravo"}).out;
  EXPECT_NE(show_text.find("20 mbit each way"), std::string::npos) << show_text;

  // The guest was configured by the agent: address, default route, hostname.
  auto ip = Exec(d, "alpha", "ip -4 -o addr show; ip route; hostname");
  EXPECT_NE(ip.out.find("10.0.0.2/16"), std::string::npos) << ip.out;
  EXPECT_NE(ip.out.find("default via 10.0.0.1"), std::string::npos) << ip.out;
  EXPECT_NE(ip.out.find("\nalpha\n"), std::string::npos) << ip.out;
  // Bandwidth: a tbf towards the guest and a policer on what it sends.
  auto tc = host.Run({"tc", "qdisc", "show", "dev", bravo_tap}).out;
  EXPECT_NE(tc.find("tbf"), std::string::npos) << tc;
  EXPECT_NE(tc.find("20Mbit"), std::string::npos) << tc;
  EXPECT_NE(Nft(d, "bridge").find("up_" + bravo_tap), std::string::npos);

  // Host -> VM.
  StartGuestServer(d, "alpha");
  StartGuestServer(d, "bravo");
  auto hello = CurlFromHost(d, "http://10.0.0.2:8000/");
  EXPECT_EQ(hello.out, "hello from alpha to 10.0.0.1\n") << hello.err;
  EXPECT_EQ(CurlFromHost(d, "http://10.0.0.3:8000/").exit_code, 0);

  // VM -> outside through NAT: the outside sees the host's uplink address.
  auto out = CurlOutside(d, "alpha");
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_NE(out.out.find("seen-from 198.51.100.2"), std::string::npos) << out.out;
  // The outside cannot open connections to VMs (they are private).
  EXPECT_NE(outside_->Run({"curl", "-sS", "--max-time", "3", "http://10.0.0.2:8000/"}).exit_code,
            0);

  // VM -> VM is dropped (both ways, TCP and ping).
  EXPECT_NE(Exec(d, "alpha", "curl -sS --max-time 3 http://10.0.0.3:8000/").exit_code, 0);
  EXPECT_NE(Exec(d, "bravo", "curl -sS --max-time 3 http://10.0.0.2:8000/").exit_code, 0);
  EXPECT_NE(Exec(d, "alpha", "ping -c 1 -W 2 10.0.0.3").exit_code, 0);
  // The gateway answers pings, but no host port is reachable from a VM, on any host address.
  EXPECT_EQ(Exec(d, "alpha", "ping -c 1 -W 2 10.0.0.1").exit_code, 0);
  auto banner = [](const std::string& address) {
    return "timeout 3 bash -c 'exec 3<>/dev/tcp/" + address + "/2222 && head -c 7 <&3'";
  };
  auto open_to_host = host.Run({"sh", "-c", banner("127.0.0.1")});
  EXPECT_EQ(open_to_host.out, "SSH-2.0")
      << "the port is open to the host itself " << open_to_host.err;
  for (const char* target : {"10.0.0.1", "198.51.100.2"}) {
    auto r = Exec(d, "alpha", banner(target));
    EXPECT_NE(r.exit_code, 0) << target << ": " << r.out;
  }
  // Metadata: the outside answers on 169.254.169.254 to the host, never to a VM.
  EXPECT_EQ(host.Run({"curl", "-sS", "--max-time", "3", "http://169.254.169.254:8080/"}).exit_code,
            0);
  EXPECT_NE(Exec(d, "alpha", "curl -sS --max-time 3 http://169.254.169.254:8080/").exit_code, 0);

  // Spoofing: another source address, then another MAC, from inside the VM, are dropped.
  auto spoof_ip =
      Exec(d, "alpha",
           "ip addr add 10.0.0.99/16 dev $(ls /sys/class/net | grep -v lo | head -1) && "
           "curl -sS --max-time 3 --interface 10.0.0.99 http://198.51.100.1:8080/");
  EXPECT_NE(spoof_ip.exit_code, 0) << spoof_ip.out;
  EXPECT_EQ(CurlOutside(d, "alpha").exit_code, 0) << "the real address still works";
  EXPECT_NE(Nft(d, "bridge").find("IP spoofing"), std::string::npos);
  auto spoof_mac = Exec(d, "alpha",
                        "nic=$(ls /sys/class/net | grep -v lo | head -1); "
                        "mac=$(cat /sys/class/net/$nic/address); "
                        "ip link set $nic address 0a:66:66:66:66:66; "
                        "curl -sS --max-time 3 http://198.51.100.1:8080/; r=$?; "
                        "ip link set $nic address $mac; exit $r");
  EXPECT_NE(spoof_mac.exit_code, 0) << spoof_mac.out;
  EXPECT_EQ(CurlOutside(d, "alpha").exit_code, 0) << "the real MAC works again";

  // Daemon restart: addresses, TAPs and rules survive; isolation still holds.
  d.Kill9();
  d.Start();
  EXPECT_EQ(d.Show("alpha")->value("address", ""), "10.0.0.2");
  EXPECT_EQ(d.Show("bravo")->value("address", ""), "10.0.0.3");
  std::string bridge_rules = Nft(d, "bridge");
  EXPECT_NE(bridge_rules.find(alpha_tap), std::string::npos) << bridge_rules;
  EXPECT_NE(bridge_rules.find(bravo_tap), std::string::npos) << bridge_rules;
  EXPECT_EQ(CurlFromHost(d, "http://10.0.0.2:8000/").exit_code, 0);
  EXPECT_NE(Exec(d, "alpha", "curl -sS --max-time 3 http://10.0.0.3:8000/").exit_code, 0);
  EXPECT_EQ(CurlOutside(d, "alpha").exit_code, 0);

  // rm frees the address and the TAP; the next VM reuses the address.
  ASSERT_EQ(d.Vmctl({"rm", "bravo"}).exit_code, 0);
  EXPECT_NE(host.Run({"ip", "link", "show", bravo_tap}).exit_code, 0) << "TAP removed";
  EXPECT_EQ(Nft(d, "bridge").find(bravo_tap), std::string::npos);
  ASSERT_EQ(d.Vmctl({"create", "charlie"}).exit_code, 0);
  EXPECT_EQ(d.Show("charlie")->value("address", ""), "10.0.0.3");

  // Cleanup (daemon stopped) removes vmctl's TAPs, bridge and tables, and nothing else.
  host.Sh("nft add table inet theirs && nft add chain inet theirs c");
  auto busy = d.netns().Run(
      {TestDaemon::Binary().string(), "network", "cleanup", "--state-dir", d.state_dir().string()});
  EXPECT_NE(busy.exit_code, 0) << "refused while the daemon runs";
  EXPECT_NE(busy.err.find("stop it first"), std::string::npos) << busy.err;
  d.Stop();
  auto cleanup = d.netns().Run(
      {TestDaemon::Binary().string(), "network", "cleanup", "--state-dir", d.state_dir().string()});
  EXPECT_EQ(cleanup.exit_code, 0) << cleanup.err;
  EXPECT_NE(cleanup.out.find("removed bridge vmctl0"), std::string::npos) << cleanup.out;
  EXPECT_NE(cleanup.out.find("removed TAP " + alpha_tap), std::string::npos) << cleanup.out;
  auto links = host.Run({"ip", "-o", "link", "show"}).out;
  EXPECT_EQ(links.find("vmctl0"), std::string::npos) << links;
  EXPECT_EQ(links.find(" vt"), std::string::npos) << links;
  EXPECT_NE(links.find("up0"), std::string::npos) << "foreign links stay";
  auto tables = host.Run({"nft", "list", "tables"}).out;
  EXPECT_EQ(tables, "table inet theirs\n") << tables;
  auto again = d.netns().Run(
      {TestDaemon::Binary().string(), "network", "cleanup", "--state-dir", d.state_dir().string()});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.out.find("Nothing to remove"), std::string::npos) << again.out;
  // Back up: the daemon rebuilds its network and the VMs are removed by the fixture.
  d.Start();
}

TEST_F(NetworkTest, CollidingSubnetRefusedAndNoDefaultRouteSaid) {
  TestDaemon clash;
  clash.netns().Sh(
      "ip link add lan0 type veth peer name lan1 && ip addr add 10.0.5.1/24 dev lan0 "
      "&& ip link set lan0 up");
  auto refused = clash.StartExpectingFailure();
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("collides with routes"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("10.0.5.0/24"), std::string::npos) << refused.err;
  EXPECT_EQ(clash.netns().Run({"ip", "link", "show", "vmctl0"}).exit_code, 1)
      << "nothing was created";

  TestDaemon lonely({"--subnet", "10.77.0.1/16"});
  // Building the image only (as `make test` does on the bare host) leaves the network alone.
  auto prepared =
      lonely.netns().Run({TestDaemon::Binary().string(), "serve", "--state-dir",
                          lonely.state_dir().string(), "--image-cache",
                          std::getenv("VMCTL_IMAGE_CACHE") ? std::getenv("VMCTL_IMAGE_CACHE")
                                                           : "/var/cache/vmctl/images",
                          "--prepare-only"},
                         seconds(600));
  EXPECT_EQ(prepared.exit_code, 0) << prepared.err;
  EXPECT_NE(lonely.netns().Run({"ip", "link", "show", "vmctl0"}).exit_code, 0);
  EXPECT_EQ(lonely.netns().Run({"nft", "list", "tables"}).out, "");
  lonely.Start();
  EXPECT_NE(ReadFile(lonely.log())->find("no default route"), std::string::npos)
      << TailFile(lonely.log(), 2000);
}

TEST_F(NetworkTest, SmallPoolExhaustsWithAClearErrorAndLeaksNothing) {
  // A /28 has 13 addresses for VMs. Boots are cut short by a 1 s agent timeout: a failed VM keeps
  // its address like any other, and 13 full boots would take minutes under TCG.
  TestDaemon d({"--subnet", "10.0.0.1/28", "--boot-timeout", "1", "--max-vms", "20", "--max-cpus",
                "20", "--max-memory-mib", "65536", "--max-disk-mib", "1000000",
                // 13 VMs of 1 CPU: more than this host's capacity (2 CPUs times 4).
                "--max-host-cpus", "20", "--cpu-overcommit", "1"});
  d.Start();
  for (int i = 0; i < 13; ++i) {
    auto r = d.Vmctl({"create", "vm" + std::to_string(i), "--memory", "128M"});
    EXPECT_NE(r.exit_code, 0) << "boot cut short by the timeout";
  }
  auto db = d.state_dir() / "vmctl.db";
  EXPECT_EQ(Sql(db, "select count(distinct address) from vms"), "13");
  auto full = d.Vmctl({"create", "extra", "--memory", "128M"});
  EXPECT_EQ(full.exit_code, 6) << full.err;
  EXPECT_NE(full.err.find("no free address left in the VM network 10.0.0.0/28"), std::string::npos)
      << full.err;
  EXPECT_EQ(Sql(db, "select count(*) from vms where name = 'extra'"), "0");
  EXPECT_FALSE(d.Show("extra").has_value());
  auto taps = d.netns().Run({"sh", "-c", "ip -o link show | grep -c ' vt' || true"}).out;
  EXPECT_EQ(taps, "0\n") << "failed VMs hold an address, not a TAP";

  ASSERT_EQ(d.Vmctl({"rm", "vm4"}).exit_code, 0);
  EXPECT_NE(d.Vmctl({"create", "extra", "--memory", "128M"}).exit_code, 0) << "timeout again";
  EXPECT_EQ(Sql(db, "select address from vms where name = 'extra'"), "10.0.0.6");
}

}  // namespace
}  // namespace vmctl::e2e
