// Who may register through the SSH gateway (`--registration`), with the real OpenSSH client
// against a real daemon: closed, allowlist, verify with the code mailed through a real SMTP
// server (Debian's python3-aiosmtpd, in the daemon's network namespace) and confirmed with
// `ssh host verify CODE`, the per-source rate limit; and the host-wide capacity limit refusing a
// create before any VM boots.
#include <gtest/gtest.h>

#include <regex>
#include <thread>

#include "base/io.h"
#include "tests/e2e/daemon.h"

namespace vmctl::e2e {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

// `ssh -p 2222 127.0.0.1 COMMAND` with one key, inside the daemon's namespace.
RunOutput Ssh(TestDaemon& d, const std::string& key, const std::string& command) {
  return d.netns().Run(
      {"ssh", "-p", "2222", "-o", "StrictHostKeyChecking=accept-new", "-o",
       "UserKnownHostsFile=" + (d.dir() / "known_hosts").string(), "-o", "IdentitiesOnly=yes", "-o",
       "ConnectTimeout=10", "-i", d.UserKey(key).string(), "127.0.0.1", command},
      seconds(120));
}

TEST(RegistrationTest, ClosedRefusesEveryNewKey) {
  TestDaemon d({"--registration", "closed"});
  d.Start();
  auto r = Ssh(d, "alice", "register alice@example.com");
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("vmctl: registration is closed on this host; ask its operator for an "
                       "account\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(Ssh(d, "alice", "whoami").exit_code, 0);
  EXPECT_EQ(Sql(d.state_dir() / "vmctl.db", "SELECT count(*) FROM users"), "1") << "admin only";
}

TEST(RegistrationTest, AllowlistAdmitsListedAddressesAndDomainsOnly) {
  TestDaemon d({"--registration", "allowlist", "--allow-email", "boss@corp.example,@Team.Example"});
  d.Start();
  auto refused = Ssh(d, "intern", "register intern@corp.example");
  EXPECT_EQ(refused.exit_code, 5) << refused.err;
  EXPECT_NE(refused.err.find("intern@corp.example may not register on this host"),
            std::string::npos)
      << refused.err;
  auto dev = Ssh(d, "dev", "register dev@TEAM.example");
  ASSERT_EQ(dev.exit_code, 0) << dev.err;
  EXPECT_EQ(Trim(Ssh(d, "dev", "whoami").out), "dev <dev@team.example>");
  auto bidi = Ssh(d, "eve", "register 'boss\xe2\x80\xae@corp.example'");
  EXPECT_EQ(bidi.exit_code, 2) << bidi.err;
  EXPECT_NE(bidi.err.find("boss\\xe2\\x80\\xae@corp.example' is not an email address"),
            std::string::npos)
      << bidi.err;
  EXPECT_EQ(Sql(d.state_dir() / "vmctl.db", "SELECT count(*) FROM users"), "2");
}

// The mails aiosmtpd's Mailbox handler wrote into the maildir, concatenated.
std::string Mails(const fs::path& maildir) {
  std::string all;
  std::error_code ec;
  for (const auto& f : fs::directory_iterator(maildir / "new", ec)) {
    auto text = ReadFile(f.path());
    if (text.ok()) all += *text + "\n";
  }
  return all;
}

TEST(RegistrationTest, VerifyMailsACodeThatTheSameKeyConfirms) {
  TestDaemon d({"--registration", "verify", "--smtp", "127.0.0.1:2525", "--smtp-from",
                "vmctl@host.example"});
  fs::path maildir = d.dir() / "maildir";
  d.netns().Spawn({"/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:2525", "-c",
                   "aiosmtpd.handlers.Mailbox", maildir.string()},
                  d.dir() / "smtpd.log");
  for (int i = 0; i < 100; ++i) {
    auto up = d.netns().Run({"/usr/bin/python3", "-c",
                             "import socket; socket.create_connection(('127.0.0.1', 2525), 1)"});
    if (up.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  d.Start();

  auto pending = Ssh(d, "carol", "register carol@Example.org");
  ASSERT_EQ(pending.exit_code, 0) << pending.err;
  EXPECT_NE(pending.out.find("A verification code is on its way to carol@example.org"),
            std::string::npos)
      << pending.out;
  std::string mail = Mails(maildir);
  EXPECT_NE(mail.find("X-RcptTo: carol@example.org"), std::string::npos) << mail;
  EXPECT_NE(mail.find("Subject: Your vmctl verification code"), std::string::npos) << mail;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(mail, m, std::regex("2222 127.0.0.1 verify ([A-Z0-9]{8})")))
      << mail;
  std::string code = m[1];

  // Until confirmed, the key is no user's: no VMs, no commands.
  auto create = Ssh(d, "carol", "new --name web");
  EXPECT_NE(create.exit_code, 0);
  EXPECT_NE(create.err.find("is not registered yet"), std::string::npos) << create.err;
  auto other = Ssh(d, "mallory", "verify " + code);
  EXPECT_EQ(other.exit_code, 5) << other.err;
  EXPECT_NE(other.err.find("no registration is waiting for this key"), std::string::npos);
  auto wrong = Ssh(d, "carol", "verify AAAAAAAA");
  EXPECT_EQ(wrong.exit_code, 2) << wrong.err;
  EXPECT_NE(wrong.err.find("vmctl: wrong code (4 more tries)\n"), std::string::npos) << wrong.err;

  auto confirmed = Ssh(d, "carol", "verify " + code);
  ASSERT_EQ(confirmed.exit_code, 0) << confirmed.err;
  EXPECT_NE(confirmed.out.find("Welcome, carol!"), std::string::npos) << confirmed.out;
  EXPECT_EQ(Trim(Ssh(d, "carol", "whoami").out), "carol <carol@example.org>");
  EXPECT_EQ(Sql(d.state_dir() / "vmctl.db", "SELECT count(*) FROM pending_registrations"), "0");
}

TEST(RegistrationTest, AMailServerThatIsDownRegistersNothing) {
  TestDaemon d({"--registration", "verify", "--smtp", "127.0.0.1:2526", "--smtp-from",
                "vmctl@host.example"});
  d.Start();
  auto r = Ssh(d, "dan", "register dan@example.org");
  EXPECT_EQ(r.exit_code, 7) << r.err;
  EXPECT_NE(r.err.find("sending the verification mail: cannot connect to mail server "
                       "127.0.0.1:2526"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(Sql(d.state_dir() / "vmctl.db", "SELECT count(*) FROM pending_registrations"), "0");
}

// Attack 5 of issue 11: one client minting accounts with fresh keys. Only the first N get one;
// a registered user is served throughout.
TEST(RegistrationTest, RegistrationsAreRateLimitedPerSourceAddress) {
  TestDaemon d({"--registrations-per-hour", "2"});
  d.Start();
  EXPECT_EQ(Ssh(d, "k1", "register k1@example.org").exit_code, 0);
  EXPECT_EQ(Ssh(d, "k2", "register k2@example.org").exit_code, 0);
  for (int i = 3; i <= 8; ++i) {
    std::string k = "k" + std::to_string(i);
    auto r = Ssh(d, k, "register " + k + "@example.org");
    EXPECT_EQ(r.exit_code, 6) << r.err;
    EXPECT_NE(r.err.find("too many registrations from 127.0.0.1: at most 2 in 1 hour; try again "
                         "in "),
              std::string::npos)
        << r.err;
    EXPECT_NE(Ssh(d, k, "whoami").exit_code, 0);
    EXPECT_EQ(Trim(Ssh(d, "k1", "whoami").out), "k1 <k1@example.org>");
  }
  EXPECT_EQ(Sql(d.state_dir() / "vmctl.db", "SELECT count(*) FROM users"), "3") << "admin, k1, k2";
}

TEST(RegistrationTest, BadPolicyFlagsAreRefusedAtStart) {
  struct Case {
    std::vector<std::string> flags;
    std::string error;
  };
  for (const auto& c : std::vector<Case>{
           {{"--registration", "sometimes"}, "unknown registration mode 'sometimes'"},
           {{"--registration", "allowlist"}, "--registration allowlist needs --allow-email LIST"},
           {{"--registration", "verify"}, "--registration verify needs --smtp HOST:PORT"},
           {{"--allow-email", "a@b.org,,c@d.org"}, "--allow-email: an empty entry"},
           {{"--registration", "verify", "--smtp", "mail", "--smtp-from", "v@host.example"},
            "--smtp: bad mail server 'mail' (expected HOST:PORT)"},
           {{"--registrations-per-hour", "0"}, "--registrations-per-hour 0 is not a positive"},
           {{"--cpu-overcommit", "0"}, "overcommit factors must be positive"},
           {{"--max-host-memory", "4096"}, "--max-host-memory 4096 is 4096 bytes; give a unit"},
       }) {
    TestDaemon d(c.flags);
    auto out = d.StartExpectingFailure();
    EXPECT_NE(out.exit_code, 0) << c.flags[0];
    EXPECT_NE(out.err.find("vmctl serve: " + c.error), std::string::npos) << out.err;
    EXPECT_FALSE(fs::exists(d.socket())) << "nothing was set up";
  }
}

TEST(RegistrationTest, HostCapacityRefusesACreateBeforeAnyVmBoots) {
  TestDaemon d({"--max-host-memory", "768M", "--max-host-cpus", "1", "--cpu-overcommit", "1"});
  d.Start();
  auto big = d.Vmctl({"create", "big", "--memory", "1G"});
  EXPECT_EQ(big.exit_code, 6) << big.err;
  EXPECT_NE(big.err.find("host capacity reached: 0 of 768 MiB memory are given to VMs, 768 MiB "
                         "left, 1024 MiB requested"),
            std::string::npos)
      << big.err;
  ASSERT_EQ(Ssh(d, "erin", "register erin@example.org").exit_code, 0);
  auto cpus = Ssh(d, "erin", "new --name many --cpus 2");
  EXPECT_EQ(cpus.exit_code, 6) << cpus.err;
  EXPECT_NE(cpus.err.find("host capacity reached: 0 of 1 CPUs are given to VMs, 1 left, 2 "
                          "requested"),
            std::string::npos)
      << cpus.err;
  EXPECT_EQ(Trim(d.Vmctl({"ls", "--json"}).out), "[]");
  EXPECT_TRUE(d.ProcessesUsingStateDir().empty()) << "no VMM was started";
}

}  // namespace
}  // namespace vmctl::e2e
