#include "tls/client_hello.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <string>
#include <vector>

namespace vmctl::tls {
namespace {

// The first flight OpenSSL's client sends, with `server_name` as SNI unless empty.
std::vector<uint8_t> RealClientHello(const std::string& server_name) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = SSL_new(ctx);
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  if (!server_name.empty()) SSL_set_tlsext_host_name(ssl, server_name.c_str());
  SSL_set_connect_state(ssl);
  SSL_do_handshake(ssl);  // wants to read the server's answer
  char* data = nullptr;
  long size = BIO_get_mem_data(out, &data);
  std::vector<uint8_t> bytes(data, data + size);
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return bytes;
}

TEST(PeekServerNameTest, ReadsTheNameOfARealClientHello) {
  std::vector<uint8_t> hello = RealClientHello("shop.example.com");
  ASSERT_GT(hello.size(), 5u);
  EXPECT_EQ(PeekServerName(hello), "shop.example.com");
  EXPECT_EQ(PeekServerName(RealClientHello("")), "") << "no SNI";
}

TEST(PeekServerNameTest, AsksForMoreUntilTheFirstRecordIsComplete) {
  std::vector<uint8_t> hello = RealClientHello("shop.example.com");
  for (size_t n : {size_t{0}, size_t{1}, size_t{4}, size_t{5}, hello.size() - 1}) {
    EXPECT_EQ(PeekServerName(std::span(hello).first(n)), std::nullopt) << n;
  }
}

TEST(PeekServerNameTest, AnythingElseHasNoName) {
  std::string get = "GET / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(PeekServerName(std::span(reinterpret_cast<const uint8_t*>(get.data()), get.size())),
            "");
  std::vector<uint8_t> hello = RealClientHello("shop.example.com");
  hello[5] = 2;  // a ServerHello
  EXPECT_EQ(PeekServerName(hello), "");
  hello = RealClientHello("shop.example.com");
  hello[8] = 0xff;  // the message claims more than the record holds
  EXPECT_EQ(PeekServerName(hello), "");
  std::vector<uint8_t> huge = {22, 3, 1, 0xff, 0xff};
  EXPECT_EQ(PeekServerName(huge), "") << "longer than a record may be";
}

}  // namespace
}  // namespace vmctl::tls
