#include "model/email.h"

#include <gtest/gtest.h>

namespace vmctl {
namespace {

TEST(NormalizeEmail, AcceptsAndLowercasesTheDomain) {
  struct Case {
    std::string in, out;
  };
  for (const auto& c : std::vector<Case>{
           {"alice@example.com", "alice@example.com"},
           {"Alice@Example.COM", "Alice@example.com"},
           {"a.b+tag@sub.example-1.org", "a.b+tag@sub.example-1.org"},
           {"o'neil@example.com", "o'neil@example.com"},
           {"j\xc3\xb6rg@b\xc3\xbc"
            "cher.de",
            "j\xc3\xb6rg@b\xc3\xbc"
            "cher.de"},
           {std::string(64, 'a') + "@example.com", std::string(64, 'a') + "@example.com"},
       }) {
    auto got = NormalizeEmail(c.in);
    ASSERT_TRUE(got.ok()) << c.in << ": " << got.error().message();
    EXPECT_EQ(*got, c.out);
  }
}

TEST(NormalizeEmail, RefusesWithASafeMessage) {
  for (const std::string& bad : std::vector<std::string>{
           "",
           "alice",
           "alice@",
           "@example.com",
           "a@b@example.com",
           "alice@localhost",
           "alice@example..com",
           "alice@.example.com",
           "alice@example.com.",
           "alice@-example.com",
           "alice@example-.com",
           "alice@exa_mple.com",
           "al ice@example.com",
           "alice@exam ple.com",
           "\"alice\"@example.com",
           "<alice@example.com>",
           "alice,bob@example.com",
           ".alice@example.com",
           "alice.@example.com",
           "al..ice@example.com",
           std::string(65, 'a') + "@example.com",
           "a@" + std::string(64, 'b') + ".com",
           "a@" + std::string(250, 'b') + ".com",
           "ali\x01"
           "ce@example.com",
           "alice\x7f@example.com",
           "alice\r\n@example.com",
           "alice@example.com\n",
           std::string("ali\0ce@example.com", 18),
           "alice\xff@example.com",
           "alice\xc0\xaf@example.com",          // overlong '/'
           "alice\xed\xa0\x80@example.com",      // surrogate
           "alice\xf4\x90\x80\x80@example.com",  // above U+10FFFF
           "alice\xe2\x80@example.com",          // truncated
           "alice\xc2\x85@example.com",          // C1 NEL
           "alice\xc2\xa0@example.com",          // no-break space
           "\xe2\x80\xaegnp.exe@example.com",    // U+202E right-to-left override
           "alice\xe2\x80\xaa@example.com",      // U+202A
           "alice@exa\xe2\x81\xa6mple.com",      // U+2066 isolate
           "alice@example\xe2\x81\xa9.com",      // U+2069
           "alice\xe2\x80\x8b@example.com",      // zero-width space
           "alice\xef\xbb\xbf@example.com",      // BOM
       }) {
    auto got = NormalizeEmail(bad);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.error().code(), ErrorCode::kInvalidArgument);
    for (unsigned char c : got.error().message()) {
      EXPECT_TRUE(c >= 0x20 && c != 0x7f) << "raw control byte in: " << got.error().message();
    }
    EXPECT_EQ(got.error().message().find("\xe2\x80\xae"), std::string::npos);
  }
}

TEST(EscapeForDisplay, EscapesUnsafeBytesOnly) {
  EXPECT_EQ(EscapeForDisplay("plain b\xc3\xbc"), "plain b\xc3\xbc");
  EXPECT_EQ(EscapeForDisplay("a\xff\x1b[2J"), "a\\xff\\x1b[2J");
  EXPECT_EQ(EscapeForDisplay("\xe2\x80\xae"), "\\xe2\\x80\\xae");
}

TEST(EmailAllowList, MatchesAddressesAndDomains) {
  auto list = EmailAllowList::Parse(" bob@Example.org , @Corp.EXAMPLE.com,carol@x.io ");
  ASSERT_TRUE(list.ok()) << list.error().message();
  EXPECT_FALSE(list->empty());
  EXPECT_TRUE(list->Allows("bob@example.org"));
  EXPECT_FALSE(list->Allows("Bob@example.org"));  // local parts are case-sensitive
  EXPECT_FALSE(list->Allows("alice@example.org"));
  EXPECT_TRUE(list->Allows("anyone@corp.example.com"));
  EXPECT_FALSE(list->Allows("anyone@sub.corp.example.com"));
  EXPECT_FALSE(list->Allows("anyone@evilcorp.example.com"));
  EXPECT_FALSE(list->Allows("corp.example.com@attacker.net"));
  EXPECT_TRUE(list->Allows("carol@x.io"));
  // Each input as NormalizeEmail gives it, so a mixed-case domain matches once normalized.
  EXPECT_TRUE(list->Allows(NormalizeEmail("bob@EXAMPLE.ORG").value()));
}

TEST(EmailAllowList, RefusesBadEntries) {
  for (const char* bad : {"bob@example.org,", ",", "bob", "@", "@localhost", "@exa mple.com",
                          "@@example.com", "bob@example.org,,@x.io", "@x.io\xe2\x80\xae"}) {
    auto list = EmailAllowList::Parse(bad);
    EXPECT_FALSE(list.ok()) << bad;
  }
  auto empty = EmailAllowList::Parse("");
  EXPECT_FALSE(empty.ok());
}

}  // namespace
}  // namespace vmctl
