#include "controller/sharing.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <regex>
#include <thread>

#include "store/sqlite/sqlite_store.h"

namespace vmctl::controller {
namespace {

namespace fs = std::filesystem;

class SharingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "sharing_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    store_ = std::move(OpenSqliteStore(dir_ / "vmctl.db")).value();
    for (const auto& [id, name] : {std::pair{"u-alice", "alice"}, std::pair{"u-bob", "bob"},
                                   std::pair{"u-carol", "carol"}}) {
      ASSERT_TRUE(store_->CreateUser(User{id, name, std::string(name) + "@example.com", 1}).ok());
    }
    ImageRecord image{"default", "h", "/i", "/i/k", "/i/r", "/i/f", "6.1", "test", 1, 1};
    ASSERT_TRUE(store_->PutImage(image).ok());
    image.name = "app";
    image.config["exposed_ports"] = {"8080/tcp", "3000/tcp", "53/udp"};
    ASSERT_TRUE(store_->PutImage(image).ok());
    web_ = AddVm("web", "u-alice");
    db_ = AddVm("db", "u-alice");
    sharing_ = Make();
  }
  void TearDown() override {
    sharing_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<VmSharing> Make(bool certificates = true) {
    SharingOptions o;
    o.custom_domain_certificates = certificates;
    o.resolve = [this](const std::string& domain) -> Result<std::vector<std::string>> {
      ++lookups_;
      auto it = dns_.find(domain);
      if (it == dns_.end()) return Unavailable("Name or service not known");
      return it->second;
    };
    o.host_addresses = [] { return std::vector<std::string>{"203.0.113.7", "2001:db8::7"}; };
    o.now = [this] { return now_; };
    return std::move(VmSharing::Create(*store_, locks_, o)).value();
  }
  VmRecord AddVm(const std::string& name, const std::string& owner,
                 const std::string& image = "default") {
    VmRecord vm;
    vm.id = NewVmId();
    vm.owner = owner;
    vm.name = name;
    vm.image = image;
    vm.backend = "qemu";
    vm.created_at = vm.updated_at = 1;
    EXPECT_TRUE(store_->InsertVm(vm).ok());
    return vm;
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  VmLocks locks_;
  std::map<std::string, std::vector<std::string>> dns_;
  int lookups_ = 0;
  int64_t now_ = 1'000'000;
  VmRecord web_, db_;
  std::unique_ptr<VmSharing> sharing_;
  Identity alice_{"u-alice", "alice@example.com", ""};
  Identity bob_{"u-bob", "bob@example.com", ""};
  Identity carol_{"u-carol", "carol@example.com", ""};
};

void ExpectSameError(const Result<WebRoute>& a, const Result<WebRoute>& b) {
  ASSERT_FALSE(a.ok());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(a.error().code(), b.error().code());
  EXPECT_EQ(a.error().message(), b.error().message());
}

TEST_F(SharingTest, APrivateVmAsksAnonymousVisitorsToLogInLikeANameNoVmHas) {
  auto hidden = sharing_->RouteWeb("web", 0, nullptr);
  ASSERT_FALSE(hidden.ok());
  EXPECT_EQ(hidden.error().code(), ErrorCode::kUnauthenticated);
  ExpectSameError(hidden, sharing_->RouteWeb("nothing", 0, nullptr));
  ExpectSameError(hidden, sharing_->RouteWeb("web", 8080, nullptr));
}

TEST_F(SharingTest, OthersGetTheSameAnswerForAHiddenVmAsForOneThatDoesNotExist) {
  auto hidden = sharing_->RouteWeb("web", 0, &carol_);
  ASSERT_FALSE(hidden.ok());
  EXPECT_EQ(hidden.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(hidden.error().message(), "no VM named 'web'");
  auto hidden_port = sharing_->RouteWeb("web", 8080, &carol_);
  ASSERT_TRUE(store_->DeleteVm(web_.id).ok());
  ExpectSameError(hidden, sharing_->RouteWeb("web", 0, &carol_));
  ExpectSameError(hidden_port, sharing_->RouteWeb("web", 8080, &carol_));
  // The owner's management calls say the same to others.
  EXPECT_EQ(sharing_->SetPublic("u-carol", "db", true).error().message(), "no VM named 'db'");
  EXPECT_EQ(sharing_->Sharing("u-carol", "db").error().message(), "no VM named 'db'");
  EXPECT_FALSE(store_->GetVmWebSettings(db_.id)->is_public);
}

TEST_F(SharingTest, TheOwnerReachesEveryPortOthersNone) {
  auto web = sharing_->RouteWeb("web", 0, &alice_);
  ASSERT_TRUE(web.ok()) << web.error().message();
  EXPECT_EQ(web->vm.id, web_.id);
  EXPECT_EQ(web->port, 80);
  EXPECT_TRUE(web->is_owner);
  EXPECT_FALSE(web->is_public);
  auto other = sharing_->RouteWeb("web", 5432, &alice_);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->port, 5432);
}

TEST_F(SharingTest, APublicVmServesItsWebPortToEveryoneAndOtherPortsToItsOwnerOnly) {
  ASSERT_TRUE(sharing_->SetPublic("u-alice", "web", true).ok());
  auto anonymous = sharing_->RouteWeb("web", 0, nullptr);
  ASSERT_TRUE(anonymous.ok()) << anonymous.error().message();
  EXPECT_EQ(anonymous->port, 80);
  EXPECT_TRUE(anonymous->is_public);
  EXPECT_FALSE(anonymous->is_owner);
  EXPECT_TRUE(sharing_->RouteWeb("web", 0, &carol_).ok());
  EXPECT_EQ(sharing_->RouteWeb("web", 8080, nullptr).error().code(), ErrorCode::kUnauthenticated);
  ExpectSameError(sharing_->RouteWeb("web", 8080, &carol_),
                  Result<WebRoute>(NotFound("no VM named 'web'")));
  EXPECT_TRUE(sharing_->RouteWeb("web", 8080, &alice_).ok());
  EXPECT_EQ(sharing_->RouteWeb("db", 0, nullptr).error().code(), ErrorCode::kUnauthenticated);

  ASSERT_TRUE(sharing_->SetPublic("u-alice", "web", false).ok());
  EXPECT_EQ(sharing_->RouteWeb("web", 0, nullptr).error().code(), ErrorCode::kUnauthenticated);
  EXPECT_FALSE(sharing_->Sharing("u-alice", "web")->is_public);
}

TEST_F(SharingTest, AnEmailShareOpensTheWebPortOnly) {
  ASSERT_TRUE(sharing_->Share("u-alice", "web", "bob@EXAMPLE.com").ok());
  auto bob = sharing_->RouteWeb("web", 0, &bob_);
  ASSERT_TRUE(bob.ok()) << bob.error().message();
  EXPECT_FALSE(bob->is_owner);
  EXPECT_EQ(bob->port, 80);
  EXPECT_EQ(sharing_->RouteWeb("web", 8080, &bob_).error().message(), "no VM named 'web'");
  EXPECT_EQ(sharing_->RouteWeb("db", 0, &bob_).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(sharing_->RouteWeb("web", 0, &carol_).error().code(), ErrorCode::kNotFound);
  auto info = sharing_->Sharing("u-alice", "web");
  ASSERT_EQ(info->users.size(), 1u);
  EXPECT_EQ(info->users[0].name, "bob");
  // Sharing is not ownership: bob cannot share it on.
  EXPECT_EQ(sharing_->Share("u-bob", "web", "carol@example.com").error().message(),
            "no VM named 'web'");
  ASSERT_TRUE(sharing_->Unshare("u-alice", "web", "bob@example.com").ok());
  EXPECT_EQ(sharing_->RouteWeb("web", 0, &bob_).error().code(), ErrorCode::kNotFound);
}

TEST_F(SharingTest, SharesAreByTheEmailOfARegisteredUserOtherThanTheOwner) {
  ASSERT_TRUE(sharing_->Share("u-alice", "web", "bob@example.com").ok());
  auto again = sharing_->Share("u-alice", "web", "bob@EXAMPLE.com");
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.error().message(), "VM 'web' is already shared with bob@example.com");
  auto bad = sharing_->Share("u-alice", "web", "bob\xff@example.com");
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message(),
            "'bob\\xff@example.com' is not an email address (invalid UTF-8)");
  auto stranger = sharing_->Share("u-alice", "web", "nobody@example.com");
  EXPECT_EQ(stranger.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(stranger.error().message(),
            "no user with the email nobody@example.com (they register first)");
  EXPECT_EQ(sharing_->Share("u-alice", "web", "alice@example.com").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(sharing_->Unshare("u-alice", "web", "carol@example.com").error().message(),
            "VM 'web' is not shared with carol@example.com");
  EXPECT_EQ(sharing_->Share("u-alice", "nope", "bob@example.com").error().message(),
            "no VM named 'nope'");
  EXPECT_EQ(store_->ListShares(web_.id)->size(), 1u);
}

TEST_F(SharingTest, ATokenLimitedToOneVmReachesThatVmAlone) {
  Identity for_web{"u-alice", "alice@example.com", web_.id};
  Identity for_db{"u-alice", "alice@example.com", db_.id};
  auto web = sharing_->RouteWeb("web", 0, &for_web);
  ASSERT_TRUE(web.ok()) << web.error().message();
  EXPECT_TRUE(web->is_owner);
  ExpectSameError(sharing_->RouteWeb("web", 0, &for_db), sharing_->RouteWeb("web", 0, &carol_));
  EXPECT_EQ(sharing_->RouteWeb("web", 8080, &for_db).error().code(), ErrorCode::kNotFound);
  // Another user's token limited to a VM of theirs is no key to a VM shared with them.
  ASSERT_TRUE(sharing_->Share("u-alice", "web", "bob@example.com").ok());
  VmRecord bobs = AddVm("bobs", "u-bob");
  Identity bob_for_bobs{"u-bob", "bob@example.com", bobs.id};
  EXPECT_EQ(sharing_->RouteWeb("web", 0, &bob_for_bobs).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(sharing_->RouteWeb("bobs", 0, &bob_for_bobs).ok());
  // A public VM stays public to it.
  ASSERT_TRUE(sharing_->SetPublic("u-alice", "db", true).ok());
  EXPECT_TRUE(sharing_->RouteWeb("db", 0, &bob_for_bobs).ok());
}

TEST_F(SharingTest, TheWebPortIsTheVmsOwnElseTheImagesExposedPort) {
  VmRecord app = AddVm("app", "u-alice", "app");
  EXPECT_EQ(sharing_->RouteWeb("app", 0, &alice_)->port, 3000);
  auto info = sharing_->Sharing("u-alice", "app");
  EXPECT_EQ(info->web_port, 3000);
  EXPECT_FALSE(info->web_port_explicit);
  EXPECT_EQ(info->url, "https://app.vmctl.localhost:8443/");
  ASSERT_TRUE(sharing_->SetWebPort("u-alice", "app", 9000).ok());
  EXPECT_EQ(sharing_->RouteWeb("app", 0, &alice_)->port, 9000);
  info = sharing_->Sharing("u-alice", "app");
  EXPECT_EQ(info->web_port, 9000);
  EXPECT_TRUE(info->web_port_explicit);
  ASSERT_TRUE(sharing_->SetWebPort("u-alice", "app", 0).ok());
  EXPECT_EQ(sharing_->RouteWeb("app", 0, &alice_)->port, 3000);
  EXPECT_EQ(sharing_->RouteWeb("web", 0, &alice_)->port, 80);
  // An image that is gone leaves 80.
  ASSERT_TRUE(store_->DeleteImage("app").ok());
  EXPECT_EQ(sharing_->RouteWeb("app", 0, &alice_)->port, 80);
  EXPECT_EQ(sharing_->SetWebPort("u-bob", "app", 81).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetVmWebSettings(app.id)->web_port, 0);
}

TEST_F(SharingTest, AShareLinkBecomesAnEmailShareOnceAndKeepsOnlyAHash) {
  auto link = sharing_->CreateShareLink("u-alice", "web");
  ASSERT_TRUE(link.ok()) << link.error().message();
  std::smatch m;
  ASSERT_TRUE(std::regex_match(
      link->url, m, std::regex(R"(https://web\.vmctl\.localhost:8443/\?share=([0-9a-f]{32}))")))
      << link->url;
  std::string secret = m[1];
  EXPECT_TRUE(std::regex_match(link->id, std::regex("[0-9a-f]{8}")));
  auto stored = store_->ListShareLinks(web_.id);
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->front().id, link->id);
  EXPECT_EQ(stored->front().secret_hash.size(), 64u);
  EXPECT_EQ(stored->front().secret_hash.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(stored->front().secret_hash.find(secret), std::string::npos);
  auto info = sharing_->Sharing("u-alice", "web");
  ASSERT_EQ(info->links.size(), 1u);
  EXPECT_EQ(info->links[0].id, link->id);
  EXPECT_EQ(info->links[0].url, "") << "the secret is not kept";

  auto redeemed = sharing_->RedeemShareLink(secret, bob_, "10.0.0.2");
  ASSERT_TRUE(redeemed.ok()) << redeemed.error().message();
  EXPECT_EQ(redeemed->id, web_.id);
  EXPECT_TRUE(sharing_->RouteWeb("web", 0, &bob_).ok());
  auto replay = sharing_->RedeemShareLink(secret, carol_, "10.0.0.3");
  EXPECT_EQ(replay.error().code(), ErrorCode::kUnauthenticated);
  EXPECT_EQ(sharing_->RouteWeb("web", 0, &carol_).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(sharing_->Sharing("u-alice", "web")->links.empty());

  // The owner's own link and one for a user who has the share change nothing but use the link.
  for (const Identity* who : {&alice_, &bob_}) {
    auto again = sharing_->CreateShareLink("u-alice", "web");
    std::string s = again->url.substr(again->url.find('=') + 1);
    ASSERT_TRUE(sharing_->RedeemShareLink(s, *who, "10.0.0.2").ok());
  }
  EXPECT_EQ(store_->ListShares(web_.id)->size(), 1u);

  auto removable = sharing_->CreateShareLink("u-alice", "web");
  EXPECT_EQ(sharing_->RemoveShareLink("u-bob", "web", removable->id).error().message(),
            "no VM named 'web'");
  ASSERT_TRUE(sharing_->RemoveShareLink("u-alice", "web", removable->id).ok());
  EXPECT_EQ(sharing_->RemoveShareLink("u-alice", "web", removable->id).error().code(),
            ErrorCode::kNotFound);
  std::string removed_secret = removable->url.substr(removable->url.find('=') + 1);
  EXPECT_EQ(sharing_->RedeemShareLink(removed_secret, carol_, "10.0.0.3").error().code(),
            ErrorCode::kUnauthenticated);
}

TEST_F(SharingTest, WrongShareSecretsAreRateLimitedPerSource) {
  auto link = sharing_->CreateShareLink("u-alice", "web");
  std::string secret = link->url.substr(link->url.find('=') + 1);
  for (int i = 0; i < 10; ++i) {
    std::string wrong = i % 2 ? std::string(32, 'a') : "short";
    EXPECT_EQ(sharing_->RedeemShareLink(wrong, bob_, "10.0.0.66").error().code(),
              ErrorCode::kUnauthenticated);
  }
  auto limited = sharing_->RedeemShareLink(secret, bob_, "10.0.0.66");
  EXPECT_EQ(limited.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(store_->ListShareLinks(web_.id)->size(), 1u) << "a refused attempt uses nothing";
  // Another source is unaffected, and the limit ends with its window.
  EXPECT_EQ(sharing_->RedeemShareLink(std::string(32, 'b'), bob_, "10.0.0.67").error().code(),
            ErrorCode::kUnauthenticated);
  now_ += 601;
  EXPECT_TRUE(sharing_->RedeemShareLink(secret, bob_, "10.0.0.66").ok());
}

TEST_F(SharingTest, ACustomDomainNeedsAHostThatCanGetItACertificate) {
  sharing_ = Make(/*certificates=*/false);
  dns_["example.com"] = {"203.0.113.7"};
  auto refused = sharing_->AddDomain("u-alice", "web", "example.com");
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(refused.error().message(),
            "example.com points here, but this host cannot get certificates for custom domains: "
            "its operator must start `vmctl serve` with --acme-directory, and with --https-listen "
            "and --http-listen on (the local CA may vouch for vmctl.localhost only)");
  EXPECT_TRUE(sharing_->Domains("u-alice", "web")->empty());
}

TEST_F(SharingTest, ACustomDomainMustResolveToThisHost) {
  auto bad = sharing_->AddDomain("u-alice", "web", "-bad-.com");
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(sharing_->AddDomain("u-alice", "web", "x.web.vmctl.localhost").error().code(),
            ErrorCode::kInvalidArgument);
  auto unresolved = sharing_->AddDomain("u-alice", "web", "nowhere.example");
  EXPECT_EQ(unresolved.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(unresolved.error().message(),
            "nowhere.example does not resolve (Name or service not known); point it at this host "
            "(an A/AAAA or CNAME record) first");
  dns_["elsewhere.example"] = {"198.51.100.1"};
  auto elsewhere = sharing_->AddDomain("u-alice", "web", "elsewhere.example");
  EXPECT_EQ(elsewhere.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(elsewhere.error().message(),
            "elsewhere.example resolves to 198.51.100.1, which is not this host; point it here "
            "first");
  dns_["www.example.com"] = {"198.51.100.1", "2001:0db8:0:0::7"};
  ASSERT_TRUE(sharing_->AddDomain("u-alice", "web", "WWW.Example.com.").ok());
  dns_["example.com"] = {"203.0.113.7"};
  ASSERT_TRUE(sharing_->AddDomain("u-alice", "web", "example.com").ok());
  EXPECT_EQ(*sharing_->Domains("u-alice", "web"),
            (std::vector<std::string>{"example.com", "www.example.com"}));
  EXPECT_EQ(sharing_->Sharing("u-alice", "web")->domains, *sharing_->Domains("u-alice", "web"));
  EXPECT_TRUE(sharing_->IsCustomDomain("www.example.com"));
  EXPECT_TRUE(sharing_->IsCustomDomain("WWW.example.com."));
  EXPECT_FALSE(sharing_->IsCustomDomain("elsewhere.example"));
  EXPECT_FALSE(sharing_->IsCustomDomain("web.vmctl.localhost"));

  // A stranger's attempt is refused before any lookup, as for a VM that does not exist.
  int lookups = lookups_;
  EXPECT_EQ(sharing_->AddDomain("u-bob", "web", "example.org").error().message(),
            "no VM named 'web'");
  EXPECT_EQ(lookups_, lookups);
  auto again = sharing_->AddDomain("u-alice", "web", "example.com");
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(again.error().message(), "VM 'web' has the domain example.com already");
  auto taken = sharing_->AddDomain("u-alice", "db", "example.com");
  EXPECT_EQ(taken.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(taken.error().message(), "the domain example.com is taken");

  EXPECT_EQ(sharing_->RemoveDomain("u-alice", "db", "example.com").error().message(),
            "VM 'db' has no domain example.com");
  ASSERT_TRUE(sharing_->RemoveDomain("u-alice", "web", "Example.com").ok());
  EXPECT_FALSE(sharing_->IsCustomDomain("example.com"));
  EXPECT_EQ(sharing_->Domains("u-bob", "web").error().code(), ErrorCode::kNotFound);
}

TEST_F(SharingTest, AVmHasAtMostTenDomains) {
  for (int i = 0; i < 10; ++i) {
    std::string d = "d" + std::to_string(i) + ".example";
    dns_[d] = {"203.0.113.7"};
    ASSERT_TRUE(sharing_->AddDomain("u-alice", "web", d).ok()) << d;
  }
  dns_["d10.example"] = {"203.0.113.7"};
  auto full = sharing_->AddDomain("u-alice", "web", "d10.example");
  EXPECT_EQ(full.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(full.error().message(), "VM 'web' has 10 domains, the most it may have");
  EXPECT_TRUE(sharing_->AddDomain("u-alice", "db", "d10.example").ok());
}

TEST_F(SharingTest, ACustomDomainRoutesLikeTheVmsHostName) {
  dns_["shop.example"] = {"203.0.113.7"};
  ASSERT_TRUE(sharing_->AddDomain("u-alice", "web", "shop.example").ok());
  auto owner = sharing_->RouteDomain("Shop.Example", &alice_);
  ASSERT_TRUE(owner.ok()) << owner.error().message();
  EXPECT_EQ(owner->vm.id, web_.id);
  EXPECT_EQ(owner->port, 80);
  auto anonymous = sharing_->RouteDomain("shop.example", nullptr);
  EXPECT_EQ(anonymous.error().code(), ErrorCode::kUnauthenticated);
  ExpectSameError(anonymous, sharing_->RouteDomain("nothing.example", nullptr));
  ExpectSameError(sharing_->RouteDomain("shop.example", &carol_),
                  Result<WebRoute>(NotFound("no VM named 'shop.example'")));
  ExpectSameError(sharing_->RouteDomain("nothing.example", &carol_),
                  Result<WebRoute>(NotFound("no VM named 'nothing.example'")));
  ASSERT_TRUE(sharing_->SetPublic("u-alice", "web", true).ok());
  EXPECT_TRUE(sharing_->RouteDomain("shop.example", nullptr).ok());
  ASSERT_TRUE(store_->DeleteVm(web_.id).ok());
  EXPECT_FALSE(sharing_->IsCustomDomain("shop.example"));
}

TEST_F(SharingTest, AVmBeingRemovedIsGoneForSharing) {
  ASSERT_TRUE(sharing_->SetPublic("u-alice", "web", true).ok());
  ASSERT_TRUE(store_->TransitionVm(web_.id, VmState::kCreating, VmState::kDeleting).ok());
  ExpectSameError(sharing_->RouteWeb("web", 0, nullptr), sharing_->RouteWeb("none", 0, nullptr));
  EXPECT_EQ(sharing_->SetPublic("u-alice", "web", false).error().message(), "no VM named 'web'");
}

TEST_F(SharingTest, ChangesWaitForTheVmsLifecycleLock) {
  auto mutex = locks_.For(web_.id);
  std::unique_lock held(*mutex);
  std::atomic<bool> done = false;
  std::thread change([&] {
    EXPECT_TRUE(sharing_->SetPublic("u-alice", "web", true).ok());
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done);
  EXPECT_FALSE(store_->GetVmWebSettings(web_.id)->is_public);
  // Another VM is not held up.
  EXPECT_TRUE(sharing_->SetPublic("u-alice", "db", true).ok());
  held.unlock();
  change.join();
  EXPECT_TRUE(done);
  EXPECT_TRUE(store_->GetVmWebSettings(web_.id)->is_public);
}

TEST_F(SharingTest, ABadWebUrlIsRefused) {
  SharingOptions o;
  o.web_url = "http://vmctl.localhost";
  auto made = VmSharing::Create(*store_, locks_, o);
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmctl::controller
