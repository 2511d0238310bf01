#include "acme/dns_update.h"

#include <gtest/gtest.h>

namespace vmctl::acme {
namespace {

std::string Hex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

TsigKey TestKey() { return {"acme-key", "0123456789abcdef0123456789abcdef"}; }

TEST(TsigKeyFileTest, ParsesBindFormat) {
  auto key = ParseTsigKeyFile(R"(# made by tsig-keygen
key "ACME-Key." {
	algorithm hmac-sha256;  // the only one we speak
	secret "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
};
/* end */)");
  ASSERT_TRUE(key.ok()) << key.error().message();
  EXPECT_EQ(key->name, "acme-key");
  EXPECT_EQ(key->secret, TestKey().secret);
}

TEST(TsigKeyFileTest, RejectsBadFiles) {
  auto err = [](std::string_view text) { return ParseTsigKeyFile(text).error().message(); };
  EXPECT_EQ(err(R"(key "k" { algorithm hmac-md5; secret "AAAA"; };)"),
            "TSIG key file: key algorithm must be hmac-sha256, not 'hmac-md5'");
  EXPECT_EQ(err(R"(key "k" { algorithm hmac-sha256; };)"), "TSIG key file: the key has no secret");
  EXPECT_EQ(err(R"(key "k" { algorithm hmac-sha256; secret "%%%%"; };)"),
            "TSIG key file: the key's secret: bad base64 character");
  EXPECT_EQ(err(R"(key "k" { algorithm hmac-sha256; color blue; };)"),
            "TSIG key file: unknown key statement 'color'");
  EXPECT_EQ(err(R"(key "k { algorithm)"), "TSIG key file: unterminated string");
  EXPECT_EQ(err(R"(key "k" { algorithm hmac-sha256; secret "AAAA"; }; key "j" {};)"),
            "TSIG key file: more than one key");
  EXPECT_EQ(err(""), "TSIG key file: expected 'key', got ''");
}

// The expected bytes were laid out by hand from RFC 2136 section 2 and RFC 8945 section 4.2, and
// the MAC computed with Python's hmac module over the message and the TSIG variables.
TEST(TxtUpdateTest, GoldenAddMessage) {
  auto update = BuildTxtUpdate(
      {"vmctl.localhost.", "_acme-challenge.vmctl.localhost", "abc", UpdateOp::kAdd, 60}, 0x1234,
      TestKey(), 1700000000);
  ASSERT_TRUE(update.ok()) << update.error().message();
  std::string mac = "4e2ee04878bd00b23014d59ed71981bf060bb0acdf7e9f161e0477dba0a89c40";
  EXPECT_EQ(Hex(update->mac), mac);
  EXPECT_EQ(Hex(update->message),
            "1234"  // id
            "2800"  // opcode UPDATE
            "0001"
            "0000"
            "0001"
            "0001"  // zone, prerequisite, update, additional counts
            "05766d63746c096c6f63616c686f737400"
            "0006"
            "0001"  // vmctl.localhost SOA IN
            "0f5f61636d652d6368616c6c656e6765"
            "05766d63746c096c6f63616c686f737400"
            "0010"
            "0001"
            "0000003c"
            "0004"
            "03616263"  // TXT IN 60 "abc"
            "0861636d652d6b657900"
            "00fa"
            "00ff"
            "00000000"
            "003d"                        // acme-key TSIG ANY 0
            "0b686d61632d73686132353600"  // hmac-sha256
            "00006553f100"
            "012c"
            "0020" +  // time 1700000000, fudge 300, MAC size 32
                mac +
                "1234"
                "0000"
                "0000");  // original id, error, other length
}

TEST(TxtUpdateTest, DeleteNamesTheOneRecord) {
  auto update = BuildTxtUpdate(
      {"vmctl.localhost", "_acme-challenge.vmctl.localhost", "abc", UpdateOp::kDelete, 60}, 1,
      TestKey(), 1700000000);
  ASSERT_TRUE(update.ok());
  EXPECT_NE(Hex(update->message)
                .find("0010"
                      "00fe"
                      "00000000"
                      "0004"
                      "03616263"),
            std::string::npos);
}

TEST(TxtUpdateTest, LongValuesAreSplitInto255ByteStrings) {
  auto update =
      BuildTxtUpdate({"z", "z", std::string(300, 'a'), UpdateOp::kAdd, 1}, 1, TestKey(), 0);
  ASSERT_TRUE(update.ok());
  EXPECT_NE(update->message.find("\x01\x2e\xff" + std::string(255, 'a') + "\x2d"),
            std::string::npos);
}

TEST(TxtUpdateTest, RejectsBadNames) {
  auto err = [](std::string zone, std::string name) {
    return BuildTxtUpdate({zone, name, "v", UpdateOp::kAdd, 1}, 1, TestKey(), 0).error().message();
  };
  EXPECT_EQ(err("vmctl.localhost", "x.other.test"),
            "'x.other.test' is not in zone 'vmctl.localhost'");
  EXPECT_EQ(err("vmctl.localhost", "xvmctl.localhost"),
            "'xvmctl.localhost' is not in zone 'vmctl.localhost'");
  EXPECT_EQ(err("vmctl.localhost", "a..vmctl.localhost"), "bad DNS name 'a..vmctl.localhost'");
  EXPECT_EQ(err("localhost", std::string(64, 'a') + ".localhost"),
            "bad DNS name '" + std::string(64, 'a') + ".localhost'");
}

// A NOERROR response signed with the test key over the golden request's MAC, built with Python.
constexpr std::string_view kSignedResponseHex =
    "1234a800000100000000000105766d63746c096c6f63616c686f737400000600010861636d652d6b65790000fa00ff"
    "00000000003d0b686d61632d7368613235360000006553f101012c0020f3f9aab74521cdb9ebb76b0139c4f54d02dd"
    "4a1bfb3ba56108508107907a94af123400000000";

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

TEST(UpdateResponseTest, VerifiesTheServersSignature) {
  std::string request_mac =
      Unhex("4e2ee04878bd00b23014d59ed71981bf060bb0acdf7e9f161e0477dba0a89c40");
  std::string response = Unhex(kSignedResponseHex);
  TsigKey key = TestKey();
  auto r = ParseUpdateResponse(response, &key, request_mac);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->id, 0x1234);
  EXPECT_EQ(r->rcode, 0);
  EXPECT_TRUE(r->signed_ok);
  EXPECT_FALSE(r->truncated);

  auto unchecked = ParseUpdateResponse(response, nullptr, "");
  ASSERT_TRUE(unchecked.ok());
  EXPECT_FALSE(unchecked->signed_ok);

  std::string tampered = response;
  tampered[3] = 0x05;  // REFUSED
  EXPECT_EQ(ParseUpdateResponse(tampered, &key, request_mac).error().code(),
            ErrorCode::kUnauthenticated);
  TsigKey other{"acme-key", "another secret"};
  EXPECT_EQ(ParseUpdateResponse(response, &other, request_mac).error().message(),
            "the response's TSIG signature does not verify");
}

TEST(UpdateResponseTest, RejectsMalformedMessages) {
  std::string response = Unhex(kSignedResponseHex);
  for (size_t n = 0; n < response.size(); ++n) {
    EXPECT_FALSE(ParseUpdateResponse(response.substr(0, n), nullptr, "").ok()) << n;
  }
  EXPECT_EQ(ParseUpdateResponse(response + "x", nullptr, "").error().message(),
            "trailing bytes after the DNS message");
  std::string query = response;
  query[2] = 0x28;
  EXPECT_EQ(ParseUpdateResponse(query, nullptr, "").error().message(),
            "DNS message is not a response");
  // A compression pointer that points at itself.
  std::string loop = Unhex("1234a80000010000000000000c0c00060001");
  EXPECT_EQ(ParseUpdateResponse(loop, nullptr, "").error().message(), "bad DNS name");
  EXPECT_EQ(RcodeName(5), "REFUSED");
  EXPECT_EQ(RcodeName(17), "BADKEY");
}

}  // namespace
}  // namespace vmctl::acme
