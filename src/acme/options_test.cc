#include "acme/options.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "base/io.h"

namespace vmctl::acme {
namespace {

class AcmeFlagsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("acme-flags-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(WriteFileAtomic(dir_ / "hook", "#!/bin/sh\n", 0755).ok());
    ASSERT_TRUE(WriteFileAtomic(dir_ / "key",
                                "key \"k\" { algorithm hmac-sha256; secret \"AAAA\"; };\n", 0600)
                    .ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Error(const AcmeFlags& f) {
    auto r = ParseAcmeFlags(f);
    return r.ok() ? "ok" : r.error().message();
  }
  std::filesystem::path dir_;
};

TEST_F(AcmeFlagsTest, OffWithoutADirectory) {
  auto r = ParseAcmeFlags({});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  EXPECT_EQ(Error({.email = "a@b.c"}), "--acme-* flags need --acme-directory URL");
}

TEST_F(AcmeFlagsTest, HookOrRfc2136) {
  auto hook = ParseAcmeFlags({.directory_url = "https://ca/dir",
                              .email = "Admin@Example.COM",
                              .dns_hook = (dir_ / "hook").string()});
  ASSERT_TRUE(hook.ok()) << hook.error().message();
  EXPECT_EQ((*hook)->dns_hook, dir_ / "hook");
  auto rfc = ParseAcmeFlags({.directory_url = "https://ca/dir",
                             .dns_rfc2136 = "[::1]:53",
                             .tsig_key = (dir_ / "key").string()});
  ASSERT_TRUE(rfc.ok()) << rfc.error().message();
  EXPECT_EQ((*rfc)->rfc2136_host, "::1");
  EXPECT_EQ((*rfc)->rfc2136_port, "53");
  EXPECT_EQ((*rfc)->tsig_key->name, "k");
  EXPECT_NE(MakeDnsPublisher(**rfc), nullptr);
}

TEST_F(AcmeFlagsTest, ClearErrors) {
  std::string hook = (dir_ / "hook").string(), key = (dir_ / "key").string();
  EXPECT_EQ(Error({.directory_url = "http://ca/dir", .dns_hook = hook}),
            "--acme-directory http://ca/dir is not an https:// URL");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir"}),
            "ACME needs one way to publish DNS-01 records: --acme-dns-hook CMD or "
            "--acme-dns-rfc2136 HOST:PORT (not both)");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_hook = hook, .dns_rfc2136 = "h:53"}),
            "ACME needs one way to publish DNS-01 records: --acme-dns-hook CMD or "
            "--acme-dns-rfc2136 HOST:PORT (not both)");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_hook = key}),
            "--acme-dns-hook " + key + " is not an executable file");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_hook = hook, .tsig_key = key}),
            "--acme-tsig-key goes with --acme-dns-rfc2136");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_rfc2136 = "h:53"}),
            "--acme-dns-rfc2136 needs --acme-tsig-key FILE");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_rfc2136 = "h:99999", .tsig_key = key}),
            "--acme-dns-rfc2136 h:99999: bad port '99999'");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_rfc2136 = "::1:53", .tsig_key = key}),
            "--acme-dns-rfc2136 ::1:53: an IPv6 host needs brackets: [ADDRESS]:PORT");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir",
                   .dns_rfc2136 = "h:53",
                   .tsig_key = (dir_ / "missing").string()})
                .rfind("--acme-tsig-key: open ", 0),
            0u);
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .dns_rfc2136 = "h:53", .tsig_key = hook}),
            "--acme-tsig-key " + hook + ": TSIG key file: expected 'key', got ''");
  EXPECT_EQ(Error({.directory_url = "https://ca/dir", .ca_bundle = "/nope", .dns_hook = hook}),
            "--acme-ca-bundle /nope: no such file");
  EXPECT_NE(Error({.directory_url = "https://ca/dir", .email = "not-an-email", .dns_hook = hook}),
            "ok");
}

}  // namespace
}  // namespace vmctl::acme
