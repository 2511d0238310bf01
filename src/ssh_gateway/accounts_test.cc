#include "ssh_gateway/accounts.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/io.h"
#include "base/process.h"

namespace vmctl::ssh_gateway {
namespace {

namespace fs = std::filesystem;

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path("/tmp") / ("accounts-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A real key pair made by ssh-keygen, and OpenSSH's own fingerprint of it.
  std::pair<PublicKey, std::string> NewKey(const std::string& name) {
    fs::path key = dir_ / name;
    EXPECT_TRUE(RunCommandChecked({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                   name + "@test", "-f", key.string()})
                    .ok());
    auto line = ReadFile(key.string() + ".pub");
    auto fp = RunCommandChecked({"ssh-keygen", "-l", "-f", key.string() + ".pub"});
    std::string fingerprint = fp->out.substr(fp->out.find(' ') + 1);
    fingerprint = fingerprint.substr(0, fingerprint.find(' '));
    auto parsed = ParsePublicKey(*line);
    EXPECT_TRUE(parsed.ok()) << *line;
    return {*parsed, fingerprint};
  }
  fs::path dir_;
};

TEST_F(AccountsTest, ParsesKeysWithOpenSshsFingerprint) {
  auto [key, fingerprint] = NewKey("a");
  EXPECT_EQ(key.fingerprint, fingerprint);
  EXPECT_TRUE(key.line.starts_with("ssh-ed25519 AAAA"));
  EXPECT_TRUE(key.line.ends_with(" a@test"));
  for (const char* bad : {"", "ssh-ed25519", "ssh-ed25519 notbase64!", "hello world"}) {
    EXPECT_EQ(ParsePublicKey(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace vmctl::ssh_gateway
