#include "acme/messages.h"

#include <gtest/gtest.h>

namespace vmctl::acme {
namespace {

// Shaped like pebble's and Let's Encrypt's documents.
TEST(DirectoryTest, Parses) {
  auto d = ParseDirectory(R"({"keyChange":"https://ca/rollover","meta":{"externalAccountRequired":
      false,"termsOfService":"data:text/plain,Do what thou wilt"},"newAccount":"https://ca/acct",
      "newNonce":"https://ca/nonce","newOrder":"https://ca/order","revokeCert":"https://ca/rev"})");
  ASSERT_TRUE(d.ok()) << d.error().message();
  EXPECT_EQ(d->new_nonce, "https://ca/nonce");
  EXPECT_EQ(d->new_account, "https://ca/acct");
  EXPECT_EQ(d->new_order, "https://ca/order");
  EXPECT_EQ(d->terms_of_service, "data:text/plain,Do what thou wilt");
}

TEST(DirectoryTest, RejectsMissingAndPlainHttp) {
  EXPECT_EQ(ParseDirectory("[]").error().message(), "directory is not a JSON object");
  EXPECT_EQ(ParseDirectory("{").error().message(), "directory is not valid JSON");
  EXPECT_EQ(
      ParseDirectory(R"({"newNonce":"https://a/n","newAccount":"https://a/a"})").error().message(),
      "missing \"newOrder\"");
  EXPECT_EQ(ParseDirectory(R"({"newNonce":"http://a/n","newAccount":"https://a/a",
                               "newOrder":"https://a/o"})")
                .error()
                .message(),
            "\"newNonce\" is not an https URL");
  EXPECT_EQ(ParseDirectory(R"({"newNonce":1,"newAccount":"https://a/a","newOrder":"https://a/o"})")
                .error()
                .message(),
            "\"newNonce\" is not a string");
}

TEST(ProblemTest, ParsesAndMapsToErrors) {
  auto p = ParseProblem(R"({"type":"urn:ietf:params:acme:error:rejectedIdentifier",
      "detail":"two bad names","status":400,"subproblems":[{"type":"urn:ietf:params:acme:error:malformed",
      "detail":"a is bad"},{"detail":"b is bad"}]})");
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->subproblems.size(), 2u);
  EXPECT_EQ(p->subproblems[1].type, "about:blank");
  Error e = ProblemError(*p, 400);
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.message(),
            "acme error urn:ietf:params:acme:error:rejectedIdentifier: two bad names "
            "(a is bad; b is bad)");
  EXPECT_EQ(ProblemError({"urn:ietf:params:acme:error:rateLimited", "slow down", {}}, 429).code(),
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(ProblemError({"about:blank", "", {}}, 503).code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(ParseProblem(R"({"detail":7})").ok());
}

TEST(AccountTest, Status) {
  EXPECT_EQ(
      ParseAccount(R"({"status":"valid","contact":["mailto:a@b.c"],"orders":"https://x"})")->status,
      "valid");
  EXPECT_EQ(ParseAccount(R"({"status":"happy"})").error().message(), "unknown status \"happy\"");
}

constexpr std::string_view kOrder = R"({
  "status": "pending", "expires": "2026-12-03T00:00:00Z",
  "identifiers": [{"type":"dns","value":"vmctl.localhost"},{"type":"dns","value":"*.vmctl.localhost"}],
  "finalize": "https://ca/finalize/1",
  "authorizations": ["https://ca/authz/a", "https://ca/authz/b"]})";

TEST(OrderTest, Parses) {
  auto o = ParseOrder(kOrder);
  ASSERT_TRUE(o.ok()) << o.error().message();
  EXPECT_EQ(o->status, "pending");
  ASSERT_EQ(o->identifiers.size(), 2u);
  EXPECT_EQ(o->identifiers[1].value, "*.vmctl.localhost");
  EXPECT_EQ(o->authorizations[1], "https://ca/authz/b");
  EXPECT_EQ(o->finalize, "https://ca/finalize/1");
  EXPECT_FALSE(o->certificate);
  auto valid = ParseOrder(R"({"status":"valid","identifiers":[],"authorizations":[],
      "finalize":"https://ca/f","certificate":"https://ca/cert/1"})");
  EXPECT_EQ(valid->certificate, "https://ca/cert/1");
  auto invalid = ParseOrder(R"({"status":"invalid","identifiers":[],"authorizations":[],
      "finalize":"https://ca/f","error":{"type":"urn:x","detail":"no"}})");
  EXPECT_EQ(invalid->error->detail, "no");
}

TEST(OrderTest, Rejects) {
  EXPECT_EQ(ParseOrder(R"({"status":"pending","identifiers":[],"authorizations":["http://x"],
      "finalize":"https://ca/f"})")
                .error()
                .message(),
            "order: an authorization is not an https URL");
  EXPECT_EQ(ParseOrder(R"({"status":"pending","identifiers":{},"authorizations":[],
      "finalize":"https://ca/f"})")
                .error()
                .message(),
            "order: \"identifiers\" not an array");
  EXPECT_EQ(ParseOrder(R"({"status":"pending","identifiers":[{"type":"dns"}],"authorizations":[],
      "finalize":"https://ca/f"})")
                .error()
                .message(),
            "order: missing \"value\"");
}

TEST(AuthorizationTest, ParsesChallenges) {
  auto a = ParseAuthorization(R"({"status":"pending","identifier":{"type":"dns","value":
      "vmctl.localhost"},"wildcard":true,"expires":"x","challenges":[
      {"type":"dns-01","url":"https://ca/chal/1","token":"AbC-_9","status":"pending"},
      {"type":"http-01","url":"https://ca/chal/2","token":"xyz","status":"invalid",
       "error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused"}}]})");
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_TRUE(a->wildcard);
  EXPECT_EQ(a->identifier.value, "vmctl.localhost");
  ASSERT_EQ(a->challenges.size(), 2u);
  EXPECT_EQ(a->challenges[0].token, "AbC-_9");
  EXPECT_EQ(a->challenges[1].error->detail, "refused");
}

TEST(AuthorizationTest, RejectsTokensThatAreNotBase64Url) {
  for (const char* token : {"../etc", "a b", "", "a/b", "a.b"}) {
    std::string doc = std::string(R"({"status":"pending","identifier":{"type":"dns","value":"x"},
        "challenges":[{"type":"http-01","url":"https://ca/c","status":"pending","token":")") +
                      token + R"("}]})";
    auto a = ParseAuthorization(doc);
    ASSERT_FALSE(a.ok()) << token;
    EXPECT_EQ(a.error().message(), "authorization: challenge token is not base64url");
  }
  EXPECT_FALSE(ParseAuthorization(R"({"status":"pending","identifier":{"type":"dns","value":"x"},
      "challenges":[],"wildcard":"yes"})")
                   .ok());
}

TEST(ChallengeTest, Parses) {
  auto c = ParseChallenge(
      R"({"type":"dns-01","url":"https://ca/c","token":"t","status":"valid","validated":"x"})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->status, "valid");
  EXPECT_FALSE(ParseChallenge(R"({"type":"dns-01","url":"https://ca/c","status":"done"})").ok());
}

}  // namespace
}  // namespace vmctl::acme
