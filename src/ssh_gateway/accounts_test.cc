#include "ssh_gateway/accounts.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/io.h"
#include "base/process.h"
#include "store/sqlite/sqlite_store.h"

namespace vmctl::ssh_gateway {
namespace {

namespace fs = std::filesystem;

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path("/tmp") / ("accounts-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = std::move(OpenSqliteStore(dir_ / "vmctl.db")).value();
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
  std::unique_ptr<Store> store_;
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

TEST_F(AccountsTest, EmailsAreChecked) {
  for (const char* good : {"alice@example.com", "a.b+c@mail.example.org"}) {
    EXPECT_TRUE(ValidateEmail(good).ok()) << good;
  }
  for (const char* bad : {"", "alice", "@example.com", "alice@", "alice@example", "a b@c.d",
                          "a@b@c.d", "alice@example.", "x;reboot@a.b"}) {
    EXPECT_FALSE(ValidateEmail(bad).ok()) << bad;
  }
}

TEST_F(AccountsTest, RegistrationNamesUsersUniquelyAndKeysBelongToOne) {
  Accounts accounts(*store_);
  auto [a, fa] = NewKey("a");
  auto [b, fb] = NewKey("b");
  auto [c, fc] = NewKey("c");
  auto alice = accounts.Register("Alice.Smith@example.com", a);
  ASSERT_TRUE(alice.ok()) << alice.error().message();
  EXPECT_EQ(alice->name, "alice-smith");
  EXPECT_EQ(accounts.Owner(fa), alice->id);
  EXPECT_FALSE(accounts.Owner(fb).has_value());

  auto again = accounts.Register("Alice.Smith@example.com", b);
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  auto same_key = accounts.Register("other@example.com", a);
  EXPECT_EQ(same_key.error().code(), ErrorCode::kAlreadyExists);
  auto namesake = accounts.Register("alice.smith@example.org", b);
  ASSERT_TRUE(namesake.ok());
  EXPECT_EQ(namesake->name, "alice-smith2");

  EXPECT_EQ(accounts.RemoveKey(alice->id, fa).error().code(), ErrorCode::kFailedPrecondition)
      << "the last key stays";
  ASSERT_TRUE(accounts.AddKey(alice->id, c.line).ok());
  EXPECT_EQ(accounts.AddKey(alice->id, c.line).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(accounts.RemoveKey(alice->id, fb).error().code(), ErrorCode::kNotFound)
      << "another user's key";
  ASSERT_TRUE(accounts.RemoveKey(alice->id, fa).ok());
  EXPECT_EQ(accounts.Keys(alice->id)->size(), 1u);
  EXPECT_EQ(accounts.Owner(fc), alice->id);
}

}  // namespace
}  // namespace vmctl::ssh_gateway
