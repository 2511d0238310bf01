// The SSH gateway with the real OpenSSH client against a real daemon (in its own network
// namespace, gateway on 127.0.0.1:2222 there): registration, several offered keys, key
// management, command mode and the interactive lobby, VMs through command mode, isolation
// between users, a persistent host key, and garbage on the wire.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;

class SshGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override { d_.Start(); }

  std::string Fingerprint(const std::string& name) {
    auto out = RunCommandChecked({"ssh-keygen", "-l", "-f", d_.UserKey(name).string() + ".pub"});
    std::string s = out->out.substr(out->out.find(' ') + 1);
    return s.substr(0, s.find(' '));
  }
  // `ssh -p 2222 127.0.0.1 COMMAND` offering the given keys, in order.
  RunOutput Ssh(const std::vector<std::string>& keys, const std::string& command,
                const std::string& strict = "accept-new") {
    std::vector<std::string> argv = {"ssh",
                                     "-p",
                                     "2222",
                                     "-o",
                                     "StrictHostKeyChecking=" + strict,
                                     "-o",
                                     "UserKnownHostsFile=" + (d_.dir() / "known_hosts").string(),
                                     "-o",
                                     "IdentitiesOnly=yes",
                                     "-o",
                                     "ConnectTimeout=10"};
    for (const auto& k : keys) {
      argv.push_back("-i");
      argv.push_back(d_.UserKey(k).string());
    }
    argv.push_back("127.0.0.1");
    argv.push_back(command);
    return d_.netns().Run(argv, seconds(600));
  }

  TestDaemon d_;
};

TEST_F(SshGatewayTest, RegistrationSeveralKeysKeyManagementAndTheLobby) {
  auto unknown = Ssh({"alice"}, "whoami");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("is not registered yet"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("register you@example.com"), std::string::npos) << unknown.err;

  auto bad_email = Ssh({"alice"}, "register alice");
  EXPECT_EQ(bad_email.exit_code, 2) << bad_email.err;
  EXPECT_NE(bad_email.err.find("not an email address"), std::string::npos) << bad_email.err;

  auto registered = Ssh({"alice"}, "register alice@example.com");
  ASSERT_EQ(registered.exit_code, 0) << registered.err;
  EXPECT_NE(registered.out.find("Welcome, alice!"), std::string::npos) << registered.out;
  EXPECT_EQ(Trim(Ssh({"alice"}, "whoami").out), "alice <alice@example.com>");

  // An unknown key offered first does not shadow the registered one, nor does one offered after.
  EXPECT_EQ(Trim(Ssh({"stranger", "alice"}, "whoami").out), "alice <alice@example.com>");
  EXPECT_EQ(Trim(Ssh({"alice", "stranger"}, "whoami").out), "alice <alice@example.com>");
  // Two unknown keys: the lobby, for the first one the client proved.
  auto lobby = Ssh({"stranger", "other"}, "whoami");
  EXPECT_NE(lobby.err.find(Fingerprint("stranger")), std::string::npos) << lobby.err;

  // Keys: add a second, log in with it, remove the first; the last one stays.
  auto pub = ReadFile(d_.UserKey("laptop").string() + ".pub");
  auto added = Ssh({"alice"}, "ssh-key add '" + Trim(*pub) + "'");
  ASSERT_EQ(added.exit_code, 0) << added.err;
  EXPECT_EQ(Trim(Ssh({"laptop"}, "whoami").out), "alice <alice@example.com>");
  auto listed = Ssh({"laptop"}, "ssh-key ls");
  EXPECT_NE(listed.out.find(Fingerprint("alice")), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find(Fingerprint("laptop")), std::string::npos) << listed.out;
  EXPECT_EQ(Ssh({"laptop"}, "ssh-key rm " + Fingerprint("alice")).exit_code, 0);
  auto last = Ssh({"laptop"}, "ssh-key rm " + Fingerprint("laptop"));
  EXPECT_NE(last.exit_code, 0);
  EXPECT_NE(last.err.find("last SSH key"), std::string::npos) << last.err;
  EXPECT_NE(Ssh({"alice"}, "whoami").exit_code, 0) << "the removed key is a stranger again";

  // Command mode errors: one line, the CLI's exit codes.
  auto unknown_command = Ssh({"laptop"}, "reboot-the-host");
  EXPECT_EQ(unknown_command.exit_code, 2);
  EXPECT_NE(unknown_command.err.find("unknown command 'reboot-the-host'"), std::string::npos);
  auto quote = Ssh({"laptop"}, "show 'web");
  EXPECT_EQ(quote.exit_code, 2);
  EXPECT_NE(quote.err.find("unterminated"), std::string::npos) << quote.err;
  EXPECT_EQ(Trim(Ssh({"laptop"}, "ls --json").out), "[]");
  EXPECT_NE(Ssh({"laptop"}, "help").out.find("new [--name NAME]"), std::string::npos);

  // The interactive lobby, through a terminal: a new key registers by typing its email.
  auto typed =
      d_.netns().Run({"sh", "-c",
                      "printf 'bob@example.com\\rwhoami\\rexit\\r' | ssh -tt -p 2222 -o "
                      "StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" +
                          (d_.dir() / "known_hosts").string() + " -o IdentitiesOnly=yes -i " +
                          d_.UserKey("bob").string() + " 127.0.0.1"},
                     seconds(60));
  EXPECT_NE(typed.out.find("Welcome, bob!"), std::string::npos) << typed.out << typed.err;
  EXPECT_NE(typed.out.find("bob <bob@example.com>"), std::string::npos) << typed.out;

  // Garbage and a stalled client do not disturb others.
  auto garbage = d_.netns().Run(
      {"sh", "-c", "head -c 4096 /dev/urandom | socat -t 2 - TCP:127.0.0.1:2222 >/dev/null"});
  (void)garbage;
  EXPECT_EQ(Trim(Ssh({"bob"}, "whoami").out), "bob <bob@example.com>");

  // The host key survives a daemon restart: the client still trusts the gateway.
  d_.Stop();
  d_.Start();
  auto after = Ssh({"bob"}, "whoami", "yes");
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(Trim(after.out), "bob <bob@example.com>");
}

TEST_F(SshGatewayTest, TwoHundredConcurrentSessionsAndClientsThatVanishLeakNothing) {
  ASSERT_EQ(Ssh({"alice"}, "register alice@example.com").exit_code, 0);
  const pid_t daemon = d_.process().pid;
  size_t fds_before = OpenFdCount(daemon);
  std::string ssh = "ssh -p 2222 -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=" +
                    (d_.dir() / "known_hosts").string() + " -o IdentitiesOnly=yes -i " +
                    d_.UserKey("alice").string() + " 127.0.0.1";
  fs::path out = d_.dir() / "concurrent";
  fs::create_directories(out);
  // 200 sessions at once, plus clients that hang up mid-handshake and mid-command.
  auto run =
      d_.netns().Run({"sh", "-c",
                      "for i in $(seq 200); do " + ssh + " whoami > " + out.string() +
                          "/$i 2>&1 & done; "
                          "for i in $(seq 20); do (head -c 100 /dev/urandom | timeout 1 socat - "
                          "TCP:127.0.0.1:2222 >/dev/null 2>&1 &); (timeout 0.3 " +
                          ssh + " 'ls' >/dev/null 2>&1 &); done; wait"},
                     seconds(300));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  int ok = 0;
  for (const auto& f : fs::directory_iterator(out)) {
    if (Trim(*ReadFile(f.path())) == "alice <alice@example.com>") ++ok;
  }
  EXPECT_EQ(ok, 200);
  // Every session's socket and thread are gone again (the vanished clients' too).
  size_t fds_after = 0;
  for (int i = 0; i < 100; ++i) {
    fds_after = OpenFdCount(daemon);
    if (fds_after <= fds_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_LE(fds_after, fds_before);
  EXPECT_EQ(Trim(Ssh({"alice"}, "whoami").out), "alice <alice@example.com>");
}

TEST_F(SshGatewayTest, StalledHandshakesAreCutOffWhileOthersAreServed) {
  ASSERT_EQ(Ssh({"alice"}, "register alice@example.com").exit_code, 0);
  // Three stalled clients: silent, stopping after the version line, stopping after the version
  // line and a few bytes of the key exchange. The gateway hangs up on each after its handshake
  // timeout (20 s), and serves others meanwhile.
  auto stall = [](const std::string& name, const std::string& bytes) {
    return "(exec 3<>/dev/tcp/127.0.0.1/2222; printf '" + bytes +
           "' >&3; timeout 60 cat <&3 > /dev/null; echo " + name + " $?) & ";
  };
  auto stalled =
      d_.netns().Run({"bash", "-c",
                      stall("silent", "") + stall("version", "SSH-2.0-stall\\r\\n") +
                          stall("kex", "SSH-2.0-stall\\r\\n\\0\\0\\1") +
                          "sleep 2; echo served: $(ssh -p 2222 -o StrictHostKeyChecking=no "
                          "-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i " +
                          d_.UserKey("alice").string() + " 127.0.0.1 whoami); wait"},
                     seconds(100));
  EXPECT_NE(stalled.out.find("served: alice <alice@example.com>"), std::string::npos)
      << stalled.out << stalled.err;
  for (const char* which : {"silent 0", "version 0", "kex 0"}) {  // cat saw the hangup
    EXPECT_NE(stalled.out.find(which), std::string::npos) << which << ": " << stalled.out;
  }
}

TEST_F(SshGatewayTest, VmsThroughCommandModeBelongToTheirUser) {
  ASSERT_EQ(Ssh({"alice"}, "register alice@example.com").exit_code, 0);
  ASSERT_EQ(Ssh({"bob"}, "register bob@example.com").exit_code, 0);
  auto created = Ssh({"alice"}, "new --name web --disk 0");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_NE(created.err.find("==> "), std::string::npos) << "progress: " << created.err;
  auto mine = json::parse(Ssh({"alice"}, "ls --json").out, nullptr, false);
  ASSERT_TRUE(mine.is_array());
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["name"], "web");
  EXPECT_EQ(mine[0]["state"], "running");

  // Bob sees nothing of it, and the same answer as for a VM that does not exist.
  EXPECT_EQ(Trim(Ssh({"bob"}, "ls --json").out), "[]");
  auto theirs = Ssh({"bob"}, "show web");
  auto ghost = Ssh({"bob"}, "show ghost");
  EXPECT_EQ(theirs.exit_code, 3);
  EXPECT_EQ(theirs.err, "vmctl: no VM named 'web'\n");
  EXPECT_EQ(ghost.err, "vmctl: no VM named 'ghost'\n");
  EXPECT_NE(Ssh({"bob"}, "rm web").exit_code, 0);

  // Sharing by email, with registered users only.
  auto shared = Ssh({"alice"}, "share add web bob@example.com");
  EXPECT_EQ(shared.exit_code, 0) << shared.err;
  EXPECT_NE(Ssh({"alice"}, "share ls web").out.find("\nuser    bob@example.com (bob)\n"),
            std::string::npos);
  auto stranger = Ssh({"alice"}, "share add web carol@example.com");
  EXPECT_EQ(stranger.exit_code, 3);
  EXPECT_NE(stranger.err.find("register first"), std::string::npos) << stranger.err;
  EXPECT_EQ(Ssh({"bob"}, "share add web bob@example.com").err, "vmctl: no VM named 'web'\n");
  EXPECT_EQ(Ssh({"alice"}, "share rm web bob@example.com").exit_code, 0);
  EXPECT_EQ(Ssh({"alice"}, "share ls web").out.find("\nuser "), std::string::npos);
  // The web sharing vocabulary is the CLI's too.
  EXPECT_EQ(Ssh({"alice"}, "share set-public web").exit_code, 0);
  EXPECT_EQ(Ssh({"alice"}, "share ls web").out.substr(0, 7), "public,");
  auto domains = Ssh({"alice"}, "domain ls web");
  EXPECT_EQ(domains.exit_code, 0) << domains.err;

  // Validation is the CLI's: same messages.
  auto bad = Ssh({"alice"}, "new --name Web");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("must start with a lowercase letter"), std::string::npos) << bad.err;

  auto removed = Ssh({"alice"}, "rm web");
  EXPECT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_EQ(Trim(Ssh({"alice"}, "ls --json").out), "[]");
}

}  // namespace
}  // namespace vmctl::e2e
