#ifndef VMCTL_TLS_TEST_UTIL_H_
#define VMCTL_TLS_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "base/io.h"
#include "tls/openssl.h"

namespace vmctl::tls {

// A fresh directory for one test, removed afterwards.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vmctl-tls-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static unsigned Mode(const std::filesystem::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  static UniqueX509 FirstCertificate(std::string_view pem) {
    auto chain = ParseCertificateChain(pem);
    EXPECT_TRUE(chain.ok()) << chain.error().message();
    return chain.ok() ? std::move(chain->front()) : nullptr;
  }

  std::filesystem::path dir_;
};

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_TEST_UTIL_H_
