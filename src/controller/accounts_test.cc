#include "controller/accounts.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <regex>

#include "store/sqlite/sqlite_store.h"

namespace vmctl::controller {
namespace {

namespace fs = std::filesystem;

class FakeMailer final : public Mailer {
 public:
  Result<void> Send(const Mail& mail) override {
    if (fail) return Unavailable("mail server 127.0.0.1:25 refused the recipient: 550 no");
    sent.push_back(mail);
    return Ok();
  }
  // The code in the last mail.
  std::string LastCode() const {
    std::smatch m;
    EXPECT_FALSE(sent.empty());
    if (sent.empty() || !std::regex_search(sent.back().body, m, std::regex("verify ([A-Z0-9]+)"))) {
      return "";
    }
    return m[1];
  }
  std::vector<Mail> sent;
  bool fail = false;
};

KeyLine Key(const std::string& n) { return {"SHA256:" + n, "ssh-ed25519 AAAA" + n + " " + n}; }

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "accounts_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = std::move(OpenSqliteStore(dir_ / "vmctl.db")).value();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  Accounts Make(RegistrationMode mode, const std::string& allow = "") {
    AccountsOptions o;
    o.mode = mode;
    if (!allow.empty()) o.allow = EmailAllowList::Parse(allow).value();
    o.max_registrations_per_source = 100;
    o.ssh_command = "ssh -p 2222 host";
    o.now = [this] { return now_; };
    return Accounts(*store_, &mailer_, o);
  }
  fs::path dir_;
  std::unique_ptr<Store> store_;
  FakeMailer mailer_;
  int64_t now_ = 1'000'000;
};

TEST_F(AccountsTest, ClosedRegistersNobody) {
  auto accounts = Make(RegistrationMode::kClosed);
  auto r = accounts.Register("alice@example.com", Key("a"), "10.1.1.1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(r.error().message(),
            "registration is closed on this host; ask its operator for an account");
  EXPECT_FALSE(accounts.Owner("SHA256:a"));
  EXPECT_TRUE(mailer_.sent.empty());
}

TEST_F(AccountsTest, OpenRegistersAtOnceWithTheDomainInLowercase) {
  auto accounts = Make(RegistrationMode::kOpen);
  auto alice = accounts.Register("Alice.Smith@Example.COM", Key("a"), "10.1.1.1");
  ASSERT_TRUE(alice.ok()) << alice.error().message();
  ASSERT_TRUE(alice->user);
  EXPECT_FALSE(alice->pending);
  EXPECT_EQ(alice->user->email, "Alice.Smith@example.com");
  EXPECT_EQ(alice->user->name, "alice-smith");
  EXPECT_EQ(accounts.Owner("SHA256:a"), alice->user->id);
  // The same address with its domain in another case is the same address.
  auto again = accounts.Register("Alice.Smith@EXAMPLE.com", Key("b"), "10.1.1.1");
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  auto same_key = accounts.Register("other@example.com", Key("a"), "10.1.1.1");
  EXPECT_EQ(same_key.error().code(), ErrorCode::kAlreadyExists);
  auto bad = accounts.Register("evil\xe2\x80\xae@example.com", Key("b"), "10.1.1.1");
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  auto namesake = accounts.Register("alice.smith@example.org", Key("b"), "10.1.1.1");
  ASSERT_TRUE(namesake.ok());
  EXPECT_EQ(namesake->user->name, "alice-smith2");
  EXPECT_TRUE(mailer_.sent.empty());
}

TEST_F(AccountsTest, AllowlistAdmitsListedAddressesAndDomainsOnly) {
  auto accounts = Make(RegistrationMode::kAllowlist, "boss@corp.example,@team.example");
  EXPECT_TRUE(accounts.Register("boss@CORP.example", Key("a"), "10.1.1.1").ok());
  EXPECT_TRUE(accounts.Register("dev@Team.Example", Key("b"), "10.1.1.1").ok());
  for (const char* email : {"intern@corp.example", "dev@evil-team.example", "x@sub.team.example"}) {
    auto r = accounts.Register(email, Key("c"), "10.1.1.1");
    ASSERT_FALSE(r.ok()) << email;
    EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(r.error().message().find("may not register"), std::string::npos);
  }
  EXPECT_FALSE(accounts.Owner("SHA256:c"));
}

TEST_F(AccountsTest, VerifyMailsACodeAndTheKeyWaitsForIt) {
  auto accounts = Make(RegistrationMode::kVerify);
  auto r = accounts.Register("carol@Example.org", Key("c"), "10.1.1.1");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->pending);
  EXPECT_FALSE(r->user);
  EXPECT_EQ(r->expires_at, now_ + 24 * 3600);
  ASSERT_EQ(mailer_.sent.size(), 1u);
  EXPECT_EQ(mailer_.sent[0].to, "carol@example.org");
  EXPECT_NE(mailer_.sent[0].body.find("SHA256:c"), std::string::npos);
  EXPECT_EQ(mailer_.sent[0].body.find("?code="), std::string::npos) << "no link without a URL";
  std::string code = mailer_.LastCode();
  ASSERT_EQ(code.size(), 8u);
  EXPECT_FALSE(accounts.Owner("SHA256:c")) << "a pending key is no user's";

  // Another key cannot use the code.
  EXPECT_EQ(accounts.Verify(Key("d"), code).error().code(), ErrorCode::kFailedPrecondition);
  auto wrong = accounts.Verify(Key("c"), "AAAAAAAA");
  EXPECT_EQ(wrong.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(wrong.error().message(), "wrong code (4 more tries)");
  std::string lower = code;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(ch));
  auto user = accounts.Verify(Key("c"), lower);
  ASSERT_TRUE(user.ok()) << user.error().message();
  EXPECT_EQ(user->email, "carol@example.org");
  EXPECT_EQ(accounts.Owner("SHA256:c"), user->id);
  EXPECT_EQ(accounts.Verify(Key("c"), code).error().code(), ErrorCode::kFailedPrecondition)
      << "a code works once";
}

TEST_F(AccountsTest, VerifyCodesExpireAndWrongOnesRunOut) {
  auto accounts = Make(RegistrationMode::kVerify);
  ASSERT_TRUE(accounts.Register("dan@example.org", Key("d"), "10.1.1.1").ok());
  std::string code = mailer_.LastCode();
  now_ += 24 * 3600;
  auto late = accounts.Verify(Key("d"), code);
  EXPECT_EQ(late.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(late.error().message().find("no registration is waiting"), std::string::npos);

  ASSERT_TRUE(accounts.Register("dan@example.org", Key("d"), "10.1.1.1").ok());
  code = mailer_.LastCode();
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(accounts.Verify(Key("d"), "WRONG").ok());
  auto last = accounts.Verify(Key("d"), "WRONGER");
  EXPECT_EQ(last.error().message(), "wrong code, too many times: register again for a new one");
  EXPECT_EQ(accounts.Verify(Key("d"), code).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(accounts.Owner("SHA256:d"));
}

TEST_F(AccountsTest, VerifyWithAnAllowListAndAFailingMailerRegistersNothing) {
  auto accounts = Make(RegistrationMode::kVerify, "@example.org");
  EXPECT_EQ(accounts.Register("eve@example.com", Key("e"), "10.1.1.1").error().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(mailer_.sent.empty());
  mailer_.fail = true;
  auto r = accounts.Register("eve@example.org", Key("e"), "10.1.1.1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(r.error().message().starts_with("sending the verification mail: "))
      << r.error().message();
  EXPECT_EQ(store_->GetPendingRegistration("SHA256:e").error().code(), ErrorCode::kNotFound);
}

TEST_F(AccountsTest, RegistrationsAreRateLimitedPerSource) {
  AccountsOptions o;
  o.mode = RegistrationMode::kOpen;
  o.max_registrations_per_source = 2;
  o.now = [this] { return now_; };
  Accounts accounts(*store_, nullptr, o);
  EXPECT_TRUE(accounts.Register("u1@example.org", Key("1"), "10.1.1.1").ok());
  now_ += 600;
  EXPECT_TRUE(accounts.Register("u2@example.org", Key("2"), "10.1.1.1").ok());
  auto third = accounts.Register("u3@example.org", Key("3"), "10.1.1.1");
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(third.error().message(),
            "too many registrations from 10.1.1.1: at most 2 in 1 hour; try again in 50 minutes");
  EXPECT_FALSE(accounts.Owner("SHA256:3"));
  EXPECT_TRUE(accounts.Register("u3@example.org", Key("3"), "10.2.2.2").ok());
  now_ += 3000;
  EXPECT_TRUE(accounts.Register("u4@example.org", Key("4"), "10.1.1.1").ok());
}

TEST_F(AccountsTest, KeysBelongToOneUserAndTheLastOneStays) {
  auto accounts = Make(RegistrationMode::kOpen);
  auto alice = accounts.Register("alice@example.com", Key("a"), "10.1.1.1")->user.value();
  auto bob = accounts.Register("bob@example.com", Key("b"), "10.1.1.1")->user.value();
  EXPECT_EQ(accounts.RemoveKey(alice.id, "SHA256:a").error().code(),
            ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(accounts.AddKey(alice.id, Key("c")).ok());
  EXPECT_EQ(accounts.AddKey(bob.id, Key("c")).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(accounts.RemoveKey(alice.id, "SHA256:b").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(accounts.RemoveKey(alice.id, "SHA256:a").ok());
  EXPECT_EQ(accounts.Keys(alice.id)->size(), 1u);
  EXPECT_EQ(accounts.Owner("SHA256:c"), alice.id);
  EXPECT_EQ(accounts.GetUser(bob.id)->email, "bob@example.com");
}

TEST(ParseRegistrationMode, KnowsFourModes) {
  EXPECT_EQ(ParseRegistrationMode("open").value(), RegistrationMode::kOpen);
  EXPECT_EQ(ParseRegistrationMode("allowlist").value(), RegistrationMode::kAllowlist);
  EXPECT_EQ(ParseRegistrationMode("verify").value(), RegistrationMode::kVerify);
  EXPECT_EQ(ParseRegistrationMode("closed").value(), RegistrationMode::kClosed);
  EXPECT_FALSE(ParseRegistrationMode("Open").ok());
}

}  // namespace
}  // namespace vmctl::controller
