#include "api/request.h"

#include <gtest/gtest.h>

namespace vmctl::api {
namespace {

TEST(ParseTargetTest, SplitsPathAndQuery) {
  auto t = ParseTarget("/v1/vms/web/logs?follow=1&x");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->path, "/v1/vms/web/logs");
  ASSERT_EQ(t->segments.size(), 4u);
  EXPECT_EQ(t->segments[2], "web");
  EXPECT_TRUE(t->query.Flag("follow"));
  EXPECT_TRUE(t->query.Flag("x"));
  EXPECT_FALSE(t->query.Flag("force"));
  EXPECT_EQ(ParseTarget("/v1/vms/a%2Fb")->segments[2], "a/b");
  EXPECT_EQ(ParseTarget("/v1/vms/caf%C3%A9")->segments[2], "caf\xc3\xa9");
  EXPECT_EQ(ParseTarget("/v1/vms/x?email=a%40b.c")->query.values.at("email"), "a@b.c");
}

TEST(ParseTargetTest, RejectsMalformedEscapesAndNonText) {
  for (const char* bad :
       {"/v1/vms/a%ff", "/v1/vms/a%zz", "/v1/vms/a%", "/v1/vms/a%4", "/v1/vms/\xff",
        "/v1/vms/%C0%AF", "/v1/vms/%ED%A0%80", "/v1/vms/a%00b", "/v1/vms/a%1bb",
        "/v1/vms/x?email=%ff", "/v1/vms/x?%ff=1", "/v1/vms/%F4%90%80%80"}) {
    auto t = ParseTarget(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(ParseVmRequestTest, AcceptsDefaultsAndFields) {
  auto r = ParseVmRequest(R"({"name":"web","cpus":2,"memory_mib":1024})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->name, "web");
  EXPECT_EQ(r->cpus, 2);
  EXPECT_EQ(r->memory_mib, 1024);
  EXPECT_EQ(r->image, "default");
}

TEST(ParseVmRequestTest, RejectsMalformedInputClearly) {
  struct Case {
    const char* body;
    const char* message;
  };
  for (const auto& c :
       {Case{"", "empty"}, Case{"{", "not valid JSON"}, Case{"[1]", "must be a JSON object"},
        Case{"{}", "'name' is required"}, Case{R"({"name":1})", "'name' must be a string"},
        Case{R"({"name":"a","cpus":"2"})", "'cpus' must be an integer"},
        Case{R"({"name":"a","cpus":99999999999})", "out of range (got 99999999999)"},
        Case{R"({"name":"a","cpus":18446744073709551615})", "(got 18446744073709551615)"},
        Case{R"({"name":"a","colour":"red"})", "unknown field 'colour'"}}) {
    auto r = ParseVmRequest(c.body);
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.body << " -> " << r.error().message();
  }
}

TEST(ParseVmRequestTest, DisksAreRootAndData) {
  auto r = ParseVmRequest(R"({"name":"web","root_disk_mib":4096,"disk_mib":0})");
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->root_disk_mib, 4096);
  EXPECT_EQ(r->data_disk_mib, 0);
  EXPECT_EQ(ParseVmRequest(R"({"name":"web"})")->data_disk_mib, VmRequest{}.data_disk_mib);
}

TEST(ParseResizeRequestTest, TakesEitherDisk) {
  auto r = ParseResizeRequest(R"({"disk_mib":2048})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data_disk_mib, 2048);
  EXPECT_EQ(r->root_disk_mib, 0);
  EXPECT_FALSE(ParseResizeRequest(R"({"disk":"2G"})").ok());
  EXPECT_FALSE(ParseResizeRequest(R"({"disk_mib":"2G"})").ok());
}

TEST(ParseImageSourceTest, OneSourceOrNone) {
  for (const char* none : {"", " ", "{}"}) {
    auto r = ParseImageSource(none);
    ASSERT_TRUE(r.ok()) << none;
    EXPECT_FALSE(r->has_value()) << none;
  }
  auto debian = ParseImageSource(R"({"debian":{"suite":"trixie","packages":["curl","git"]}})");
  ASSERT_TRUE(debian.ok()) << debian.error().message();
  EXPECT_EQ((*debian)->suite, "trixie");
  EXPECT_EQ((*debian)->packages, (std::vector<std::string>{"curl", "git"}));
  auto packages_only = ParseImageSource(R"({"debian":{"packages":["curl"]}})");
  ASSERT_TRUE(packages_only.ok());
  EXPECT_EQ((*packages_only)->suite, "bookworm");
  auto oci = ParseImageSource(R"({"oci":"/srv/app.tar"})");
  ASSERT_TRUE(oci.ok());
  EXPECT_EQ((*oci)->kind, ImageSource::Kind::kOci);
  EXPECT_EQ((*oci)->path, "/srv/app.tar");
  auto docker = ParseImageSource(R"({"dockerfile":"/src/Dockerfile","context":"/src"})");
  ASSERT_TRUE(docker.ok());
  EXPECT_EQ((*docker)->kind, ImageSource::Kind::kDockerfile);
  EXPECT_EQ((*docker)->context, "/src");
  for (const char* bad :
       {R"({"oci":"/a","dockerfile":"/b"})", R"({"oci":"relative.tar"})", R"({"context":"/x"})",
        R"({"debian":{"packages":["bad name"]}})", R"({"debian":"bookworm"})", R"({"url":"x"})"}) {
    auto r = ParseImageSource(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(ParseShareRequestTest, OneEmail) {
  EXPECT_EQ(*ParseShareRequest(R"({"email":"bob@example.com"})"), "bob@example.com");
  for (const char* bad : {"", "{}", R"({"email":1})", R"({"email":"a@b.c","x":1})"}) {
    EXPECT_EQ(ParseShareRequest(bad).error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(ParseExecRequestTest, ParsesAndValidates) {
  auto r = ParseExecRequest(R"({"argv":["sh","-c","exit 7"],"env":{"A":"b"},"tty":true})");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->argv.size(), 3u);
  EXPECT_EQ(r->env.at("A"), "b");
  EXPECT_TRUE(r->tty);
  EXPECT_FALSE(ParseExecRequest(R"({"argv":[]})").ok());
  EXPECT_FALSE(ParseExecRequest(R"({"argv":["x",1]})").ok());
  EXPECT_FALSE(ParseExecRequest(R"({"argv":["x"],"env":{"A=B":"c"}})").ok());
  EXPECT_FALSE(ParseExecRequest(R"({"argv":["x"],"rows":0})").ok());
}

}  // namespace
}  // namespace vmctl::api
