#include "ssh_gateway/proxy.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>

#include "base/io.h"
#include "testing/sshd/local_sshd.h"

namespace vmctl::ssh_gateway {
namespace {
namespace fs = std::filesystem;
using testing::LocalSshd;

using KeyPtr = std::unique_ptr<ssh_key_struct, void (*)(ssh_key)>;

// The upstream half of the gateway against a real OpenSSH sshd: what it connects to, which host
// keys it accepts, and how each failure is reported (the gateway retries only kUnavailable).
class ConnectUpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "vmctl_upstream_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto key = LoadOrCreateKey(dir_ / "gateway_ed25519");
    ASSERT_TRUE(key.ok()) << key.error().message();
    key_.reset(*key);
    auto port = testing::UnusedLoopbackPort();
    ASSERT_TRUE(port.ok());
    port_ = *port;
    auto sshd = LocalSshd::Start(dir_, port_, PublicKeyLine(key_.get()) + " vmctl-gateway\n");
    ASSERT_TRUE(sshd.ok()) << sshd.error().message();
    sshd_ = std::move(*sshd);
  }
  void TearDown() override {
    sshd_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  UpstreamOptions Options() const {
    UpstreamOptions o;
    o.address = "127.0.0.1";
    o.port = port_;
    o.user = "root";
    o.identity = key_.get();
    o.host_keys = {sshd_->host_key()};
    return o;
  }

  fs::path dir_;
  KeyPtr key_{nullptr, ssh_key_free};
  int port_ = 0;
  std::unique_ptr<LocalSshd> sshd_;
};

TEST_F(ConnectUpstreamTest, LogsInWithThePinnedHostKeyAndRunsACommand) {
  auto session = ConnectUpstream(Options());
  ASSERT_TRUE(session.ok()) << session.error().message();
  ssh_channel channel = ssh_channel_new(*session);
  ASSERT_EQ(ssh_channel_open_session(channel), SSH_OK);
  ASSERT_EQ(ssh_channel_request_exec(channel, "echo upstream"), SSH_OK);
  std::string out;
  char buf[256];
  for (int n; (n = ssh_channel_read(channel, buf, sizeof(buf), 0)) > 0;) out.append(buf, n);
  EXPECT_EQ(out, "upstream\n");
  ssh_channel_free(channel);
  ssh_disconnect(*session);
  ssh_free(*session);
}

TEST_F(ConnectUpstreamTest, AnUnpinnedHostKeyIsRefusedBeforeAuthenticating) {
  auto other = LoadOrCreateKey(dir_ / "other_ed25519");
  ASSERT_TRUE(other.ok());
  KeyPtr other_key(*other, ssh_key_free);
  UpstreamOptions options = Options();
  options.host_keys = {PublicKeyLine(other_key.get()) + " some comment"};
  auto session = ConnectUpstream(options);
  ASSERT_FALSE(session.ok());
  // Retryable: a first boot replaces the host keys the agent reported a moment earlier.
  EXPECT_EQ(session.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(session.error().message().find("which its agent did not report"), std::string::npos)
      << session.error().message();
  auto log = ReadFile(sshd_->log());
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->find("Accepted publickey"), std::string::npos) << *log;
}

TEST_F(ConnectUpstreamTest, ARefusedKeyIsNotRetryable) {
  auto other = LoadOrCreateKey(dir_ / "other_ed25519");
  ASSERT_TRUE(other.ok());
  KeyPtr other_key(*other, ssh_key_free);
  UpstreamOptions options = Options();
  options.identity = other_key.get();
  auto session = ConnectUpstream(options);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(session.error().message(), "the VM's sshd refused the gateway's key for user 'root'");
}

TEST_F(ConnectUpstreamTest, NothingListeningIsRetryable) {
  UpstreamOptions options = Options();
  sshd_.reset();
  auto session = ConnectUpstream(options);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(session.error().message().find("cannot reach the VM's sshd at 127.0.0.1:"),
            std::string::npos)
      << session.error().message();
}

}  // namespace
}  // namespace vmctl::ssh_gateway
