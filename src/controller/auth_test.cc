#include "controller/auth.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <thread>

#include "store/sqlite/sqlite_store.h"

namespace vmctl::controller {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr char kDomain[] = "vmctl.localhost";
constexpr char kWebHost[] = "web.vmctl.localhost";
constexpr char kClient[] = "10.0.0.7";

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "auth_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = std::move(OpenSqliteStore(dir_ / "vmctl.db")).value();
    ASSERT_TRUE(store_->CreateUser(User{"u1", "alice", "alice@example.com", 1}).ok());
    ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "bob@example.com", 1}).ok());
    AuthOptions options;
    options.web_url = "https://vmctl.localhost:8443";
    options.max_wrong_secrets = 5;
    options.now = [this] { return now_; };
    auth_ = std::make_unique<Auth>(*store_, options);
  }
  void TearDown() override {
    auth_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  // The secret of a fresh login link for `user`.
  std::string LinkSecret(const std::string& user = "u1") {
    auto link = auth_->CreateLoginLink(user);
    EXPECT_TRUE(link.ok()) << link.error().message();
    if (!link.ok()) return "";
    return link->url.substr(link->url.rfind('/') + 1);
  }
  SessionGrant Login(const std::string& user = "u1") {
    auto grant = auth_->RedeemLoginLink(LinkSecret(user), kClient);
    EXPECT_TRUE(grant.ok()) << grant.error().message();
    return grant.ok() ? *grant : SessionGrant{};
  }
  // A session of `host` derived from `domain` through a host ticket.
  SessionGrant HostSession(const SessionGrant& domain, const std::string& host = kWebHost) {
    auto ticket = auth_->CreateHostTicket(domain.session_id, host);
    EXPECT_TRUE(ticket.ok()) << ticket.error().message();
    if (!ticket.ok()) return {};
    auto grant = auth_->RedeemHostTicket(*ticket, host, kClient);
    EXPECT_TRUE(grant.ok()) << grant.error().message();
    return grant.ok() ? *grant : SessionGrant{};
  }
  void AddVm(const std::string& id, const std::string& name, const std::string& owner) {
    VmRecord vm;
    vm.id = id;
    vm.owner = owner;
    vm.name = name;
    vm.image = "default";
    vm.backend = "qemu";
    ASSERT_TRUE(store_->InsertVm(vm).ok());
  }
  // Everything SQLite has written, main file and log.
  std::string DatabaseBytes() {
    std::string bytes;
    for (auto name : {"vmctl.db", "vmctl.db-wal"}) {
      std::ifstream in(dir_ / name, std::ios::binary);
      bytes.append(std::istreambuf_iterator<char>(in), {});
    }
    return bytes;
  }
  // The last_seen_at of the only session, read from the file.
  int64_t LastSeen() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2((dir_ / "vmctl.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT last_seen_at FROM web_sessions", -1, &stmt, nullptr),
              SQLITE_OK);
    int64_t seen = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
    sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
    return seen;
  }
  static void ExpectUnauthenticated(const Error& e, std::string_view message) {
    EXPECT_EQ(e.code(), ErrorCode::kUnauthenticated);
    EXPECT_EQ(e.message(), message);
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Auth> auth_;
  int64_t now_ = 1'000'000;
};

constexpr std::string_view kBadLink =
    "this login link is not valid (unknown, used or expired): run `login` for a new one";
constexpr std::string_view kBadSession = "not logged in (the session is unknown or has ended)";
constexpr std::string_view kBadTicket = "the host ticket is unknown, used or expired";
constexpr std::string_view kBadToken = "the token is unknown, expired or removed";

TEST(IsWellFormedSecretTest, AcceptsOnly43Base64UrlCharacters) {
  EXPECT_TRUE(IsWellFormedSecret(std::string(43, 'A')));
  EXPECT_TRUE(IsWellFormedSecret("abcdefghijklmnopqrstuvwxyz-_0123456789ABCDE"));
  EXPECT_FALSE(IsWellFormedSecret(std::string(42, 'A')));
  EXPECT_FALSE(IsWellFormedSecret(std::string(44, 'A')));
  EXPECT_FALSE(IsWellFormedSecret(std::string(42, 'A') + "="));
  EXPECT_FALSE(IsWellFormedSecret(std::string(42, 'A') + "+"));
  EXPECT_FALSE(IsWellFormedSecret(std::string(42, 'A') + '\0'));
  EXPECT_FALSE(IsWellFormedSecret(""));
}

TEST_F(AuthTest, ALoginLinkIsAUrlWithALongRandomSecret) {
  auto link = auth_->CreateLoginLink("u1");
  ASSERT_TRUE(link.ok()) << link.error().message();
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      link->url, m, std::regex("https://vmctl\\.localhost:8443/login/([A-Za-z0-9_-]{43})")))
      << link->url;
  EXPECT_EQ(link->expires_at, now_ + 300);
  std::set<std::string> secrets;
  for (int i = 0; i < 50; ++i) secrets.insert(LinkSecret());
  EXPECT_EQ(secrets.size(), 50u);
  // Only hashes reach the disk.
  std::string secret = m[1];
  EXPECT_EQ(DatabaseBytes().find(secret), std::string::npos);
  EXPECT_EQ(auth_->CreateLoginLink("nobody").error().code(), ErrorCode::kNotFound);
}

TEST_F(AuthTest, ALoginLinkGivesADomainSessionOnce) {
  std::string secret = LinkSecret();
  auto grant = auth_->RedeemLoginLink(secret, kClient);
  ASSERT_TRUE(grant.ok()) << grant.error().message();
  EXPECT_TRUE(IsWellFormedSecret(grant->session_id));
  EXPECT_EQ(grant->expires_at, now_ + 30 * 24 * 3600);
  EXPECT_EQ(grant->identity.user_id, "u1");
  EXPECT_EQ(grant->identity.email, "alice@example.com");
  EXPECT_EQ(grant->identity.vm_id, "");
  EXPECT_EQ(DatabaseBytes().find(grant->session_id), std::string::npos);
  // Replayed: refused, with the same message as for a link that never existed.
  auto replay = auth_->RedeemLoginLink(secret, kClient);
  ASSERT_FALSE(replay.ok());
  ExpectUnauthenticated(replay.error(), kBadLink);
  auto session = auth_->AuthenticateSession(grant->session_id, kDomain);
  ASSERT_TRUE(session.ok()) << session.error().message();
  EXPECT_EQ(session->user_id, "u1");
}

TEST_F(AuthTest, RacingRedemptionsOfOneLinkHaveOneWinner) {
  std::string secret = LinkSecret();
  std::atomic<int> won{0}, refused{0};
  std::vector<std::thread> racers;
  for (int i = 0; i < 8; ++i) {
    racers.emplace_back([&, i] {
      auto r = auth_->RedeemLoginLink(secret, "10.0.1." + std::to_string(i));
      (r.ok() ? won : refused)++;
    });
  }
  for (auto& t : racers) t.join();
  EXPECT_EQ(won, 1);
  EXPECT_EQ(refused, 7);
}

TEST_F(AuthTest, UnknownUsedAndExpiredLinksGetTheSameError) {
  std::string used = LinkSecret();
  ASSERT_TRUE(auth_->RedeemLoginLink(used, kClient).ok());
  std::string expired = LinkSecret();
  std::string just_in_time = LinkSecret();
  now_ += 299;
  ASSERT_TRUE(auth_->RedeemLoginLink(just_in_time, kClient).ok());
  now_ += 1;
  for (const std::string& secret :
       {used, expired, std::string(43, 'x'), std::string("garbage"), std::string()}) {
    auto r = auth_->RedeemLoginLink(secret, kClient);
    ASSERT_FALSE(r.ok()) << secret;
    ExpectUnauthenticated(r.error(), kBadLink);
  }
}

TEST_F(AuthTest, WrongSecretsAreRateLimitedPerSource) {
  std::string good = LinkSecret();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(auth_->RedeemLoginLink(std::string(43, 'x'), kClient).error().code(),
              ErrorCode::kUnauthenticated);
  }
  // Over the limit even the right secret is refused (no oracle), for every kind of secret.
  auto limited = auth_->RedeemLoginLink(good, kClient);
  ASSERT_FALSE(limited.ok());
  EXPECT_EQ(limited.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(limited.error().message(),
            "too many wrong login links or tokens from 10.0.0.7; try again in 10 minutes");
  EXPECT_EQ(auth_->AuthenticateToken("vmctl_x", kClient).error().code(),
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(auth_->RedeemHostTicket("x", kWebHost, kClient).error().code(),
            ErrorCode::kResourceExhausted);
  // Other sources are unaffected; the limit lifts after the window.
  EXPECT_TRUE(auth_->RedeemLoginLink(LinkSecret(), "10.0.0.8").ok());
  now_ += 600;
  EXPECT_TRUE(auth_->RedeemLoginLink(LinkSecret(), kClient).ok());
}

TEST_F(AuthTest, SessionsAreBoundToTheirHostAndExpire) {
  SessionGrant grant = Login();
  auto elsewhere = auth_->AuthenticateSession(grant.session_id, kWebHost);
  ASSERT_FALSE(elsewhere.ok());
  ExpectUnauthenticated(elsewhere.error(), kBadSession);
  ExpectUnauthenticated(auth_->AuthenticateSession(std::string(43, 'a'), kDomain).error(),
                        kBadSession);
  ExpectUnauthenticated(auth_->AuthenticateSession("short", kDomain).error(), kBadSession);
  now_ = grant.expires_at - 1;
  EXPECT_TRUE(auth_->AuthenticateSession(grant.session_id, kDomain).ok());
  now_ = grant.expires_at;
  ExpectUnauthenticated(auth_->AuthenticateSession(grant.session_id, kDomain).error(), kBadSession);
}

TEST_F(AuthTest, LastSeenIsWrittenAtMostOnceAMinute) {
  SessionGrant grant = Login();
  int64_t start = now_;
  now_ += 59;
  ASSERT_TRUE(auth_->AuthenticateSession(grant.session_id, kDomain).ok());
  EXPECT_EQ(LastSeen(), start);
  now_ += 1;
  ASSERT_TRUE(auth_->AuthenticateSession(grant.session_id, kDomain).ok());
  EXPECT_EQ(LastSeen(), now_);
}

TEST_F(AuthTest, AHostTicketCarriesTheDomainSessionToOneVmHostOnce) {
  SessionGrant domain = Login();
  auto ticket = auth_->CreateHostTicket(domain.session_id, kWebHost);
  ASSERT_TRUE(ticket.ok()) << ticket.error().message();
  EXPECT_TRUE(IsWellFormedSecret(*ticket));
  // Another host cannot redeem it, and trying uses it up.
  auto wrong_host = auth_->RedeemHostTicket(*ticket, "db.vmctl.localhost", kClient);
  ASSERT_FALSE(wrong_host.ok());
  ExpectUnauthenticated(wrong_host.error(), kBadTicket);
  ExpectUnauthenticated(auth_->RedeemHostTicket(*ticket, kWebHost, kClient).error(), kBadTicket);

  ticket = auth_->CreateHostTicket(domain.session_id, kWebHost);
  ASSERT_TRUE(ticket.ok());
  auto host = auth_->RedeemHostTicket(*ticket, kWebHost, kClient);
  ASSERT_TRUE(host.ok()) << host.error().message();
  EXPECT_NE(host->session_id, domain.session_id);
  EXPECT_EQ(host->expires_at, domain.expires_at);
  EXPECT_EQ(host->identity.user_id, "u1");
  ExpectUnauthenticated(auth_->RedeemHostTicket(*ticket, kWebHost, kClient).error(), kBadTicket);
  EXPECT_TRUE(auth_->AuthenticateSession(host->session_id, kWebHost).ok());
  ExpectUnauthenticated(auth_->AuthenticateSession(host->session_id, kDomain).error(), kBadSession);
  // A VM host's session cannot mint tickets.
  ExpectUnauthenticated(auth_->CreateHostTicket(host->session_id, "db.vmctl.localhost").error(),
                        kBadSession);
}

TEST_F(AuthTest, HostTicketsExpireAndNeedAVmHost) {
  SessionGrant domain = Login();
  auto ticket = auth_->CreateHostTicket(domain.session_id, kWebHost);
  ASSERT_TRUE(ticket.ok());
  now_ += 120;
  ExpectUnauthenticated(auth_->RedeemHostTicket(*ticket, kWebHost, kClient).error(), kBadTicket);
  for (std::string_view host : {"", kDomain, "Web.vmctl.localhost", "web..x", "a b", ".x", "x."}) {
    auto bad = auth_->CreateHostTicket(domain.session_id, host);
    ASSERT_FALSE(bad.ok()) << host;
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument) << host;
    EXPECT_EQ(bad.error().message(), "a host ticket is only for a VM's host name");
  }
}

TEST_F(AuthTest, ATicketOfALoggedOutSessionIsRefused) {
  SessionGrant domain = Login();
  auto ticket = auth_->CreateHostTicket(domain.session_id, kWebHost);
  ASSERT_TRUE(ticket.ok());
  ASSERT_TRUE(auth_->Logout(domain.session_id).ok());
  ExpectUnauthenticated(auth_->RedeemHostTicket(*ticket, kWebHost, kClient).error(), kBadTicket);
}

TEST_F(AuthTest, LogoutEndsTheSessionAndItsHostSessions) {
  SessionGrant domain = Login();
  SessionGrant other = Login();
  SessionGrant host = HostSession(domain);
  ASSERT_TRUE(auth_->AuthenticateSession(host.session_id, kWebHost).ok());
  ASSERT_TRUE(auth_->Logout(domain.session_id).ok());
  ExpectUnauthenticated(auth_->AuthenticateSession(domain.session_id, kDomain).error(),
                        kBadSession);
  ExpectUnauthenticated(auth_->AuthenticateSession(host.session_id, kWebHost).error(), kBadSession);
  EXPECT_TRUE(auth_->AuthenticateSession(other.session_id, kDomain).ok());
  ExpectUnauthenticated(auth_->Logout(std::string(43, 'q')).error(), kBadSession);
}

TEST_F(AuthTest, LogoutEverywhereEndsEverySessionOfTheUserOnly) {
  SessionGrant a = Login();
  SessionGrant b = Login();
  SessionGrant host = HostSession(a);
  SessionGrant bob = Login("u2");
  auto ended = auth_->LogoutEverywhere("u1");
  ASSERT_TRUE(ended.ok()) << ended.error().message();
  EXPECT_EQ(*ended, 3);
  for (const auto& [id, on] : {std::pair{a.session_id, kDomain}, std::pair{b.session_id, kDomain},
                               std::pair{host.session_id, kWebHost}}) {
    ExpectUnauthenticated(auth_->AuthenticateSession(id, on).error(), kBadSession);
  }
  EXPECT_TRUE(auth_->AuthenticateSession(bob.session_id, kDomain).ok());
  EXPECT_EQ(*auth_->LogoutEverywhere("u1"), 0);
  EXPECT_EQ(auth_->LogoutEverywhere("nobody").error().code(), ErrorCode::kNotFound);
}

TEST_F(AuthTest, TokensAuthenticateUntilRemovedAndAreListedWithoutTheirSecret) {
  auto token = auth_->CreateToken("u1", "", seconds(0));
  ASSERT_TRUE(token.ok()) << token.error().message();
  EXPECT_TRUE(token->secret.starts_with("vmctl_"));
  EXPECT_TRUE(IsWellFormedSecret(token->secret.substr(6)));
  EXPECT_EQ(token->info.expires_at, 0);
  EXPECT_EQ(token->info.created_at, now_);
  EXPECT_EQ(DatabaseBytes().find(token->secret.substr(6)), std::string::npos);
  auto who = auth_->AuthenticateToken(token->secret, kClient);
  ASSERT_TRUE(who.ok()) << who.error().message();
  EXPECT_EQ(who->user_id, "u1");
  EXPECT_EQ(who->email, "alice@example.com");
  EXPECT_EQ(who->vm_id, "");

  auto listed = auth_->Tokens("u1");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, token->info.id);
  EXPECT_EQ((*listed)[0].last_used_at, now_);
  EXPECT_TRUE(auth_->Tokens("u2")->empty());

  EXPECT_EQ(auth_->RemoveToken("u2", token->info.id).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(auth_->RemoveToken("u1", token->info.id).ok());
  ExpectUnauthenticated(auth_->AuthenticateToken(token->secret, kClient).error(), kBadToken);
  EXPECT_EQ(auth_->RemoveToken("u1", token->info.id).error().message(),
            "no token '" + token->info.id + "'");
}

TEST_F(AuthTest, LastUsedIsWrittenAtMostOnceAMinute) {
  auto token = auth_->CreateToken("u1", "", seconds(0));
  ASSERT_TRUE(token.ok());
  int64_t first = now_;
  ASSERT_TRUE(auth_->AuthenticateToken(token->secret, kClient).ok());
  now_ += 59;
  ASSERT_TRUE(auth_->AuthenticateToken(token->secret, kClient).ok());
  EXPECT_EQ((*auth_->Tokens("u1"))[0].last_used_at, first);
  now_ += 1;
  ASSERT_TRUE(auth_->AuthenticateToken(token->secret, kClient).ok());
  EXPECT_EQ((*auth_->Tokens("u1"))[0].last_used_at, now_);
}

TEST_F(AuthTest, TokensExpireAndUnknownOnesGetTheSameError) {
  auto token = auth_->CreateToken("u1", "", seconds(3600));
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(token->info.expires_at, now_ + 3600);
  now_ += 3599;
  EXPECT_TRUE(auth_->AuthenticateToken(token->secret, kClient).ok());
  now_ += 1;
  for (const std::string& secret :
       {token->secret, "vmctl_" + std::string(43, 'z'), std::string(43, 'z'),
        token->secret.substr(6), std::string("Bearer x")}) {
    auto r = auth_->AuthenticateToken(secret, kClient);
    ASSERT_FALSE(r.ok()) << secret;
    ExpectUnauthenticated(r.error(), kBadToken);
  }
  EXPECT_EQ(auth_->CreateToken("u1", "", seconds(-1)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(auth_->CreateToken("nobody", "", seconds(0)).error().code(), ErrorCode::kNotFound);
}

TEST_F(AuthTest, AVmTokenNamesOneOfTheUsersOwnVms) {
  AddVm("v1", "web", "u1");
  AddVm("v2", "db", "u2");
  auto token = auth_->CreateToken("u1", "web", seconds(0));
  ASSERT_TRUE(token.ok()) << token.error().message();
  EXPECT_EQ(token->info.vm, "web");
  auto who = auth_->AuthenticateToken(token->secret, kClient);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->vm_id, "v1");
  EXPECT_EQ((*auth_->Tokens("u1"))[0].vm, "web");
  // Someone else's VM is as unknown as a VM that does not exist.
  auto others = auth_->CreateToken("u1", "db", seconds(0));
  ASSERT_FALSE(others.ok());
  EXPECT_EQ(others.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(others.error().message(), "no VM 'db'");
  EXPECT_EQ(auth_->CreateToken("u1", "nope", seconds(0)).error().message(), "no VM 'nope'");
  // The token goes with its VM.
  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  ExpectUnauthenticated(auth_->AuthenticateToken(token->secret, kClient).error(), kBadToken);
}

}  // namespace
}  // namespace vmctl::controller
