// The spec loader and validator on a small document written for the purpose, so that each
// keyword is proven to reject what it must; then on the two reference specs.
#include "testing/openapi/spec.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace vmctl::testing {
namespace {

using nlohmann::json;

constexpr const char* kMiniSpec = R"(
openapi: 3.0.1
servers:
  - url: http://localhost/api/v2
paths:
  /things/{thing_id}:
    put:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              $ref: "#/components/schemas/Thing"
      responses:
        204:
          description: done
        404:
          description: no such thing
    get:
      responses:
        200:
          description: the thing
          content:
            application/json:
              schema:
                $ref: "#/components/schemas/Thing"
  /ping:
    get:
      responses:
        200:
          description: pong
components:
  schemas:
    Mode:
      type: string
      enum: ["On", "Off"]
    Thing:
      type: object
      required: [thing_id, size]
      description: a thing
      properties:
        thing_id:
          type: string
        size:
          type: integer
          format: int64
          minimum: 1
        small:
          type: integer
          format: int8
        tiny:
          type: integer
          format: uint8
        count:
          type: integer
          format: uint32
          maximum: 10
        ratio:
          type: number
        flag:
          type: boolean
          default: false
        mode:
          $ref: "#/components/schemas/Mode"
        tags:
          type: array
          items:
            type: string
        labels:
          type: object
          additionalProperties:
            type: string
        anything:
          type: object
          additionalProperties: true
        address:
          type: string
          format: "10\\.0\\.[0-9]+\\.[0-9]+"
        broken:
          $ref: "#/components/schemas/Missing"
        fancy:
          oneOf:
            - type: string
)";

class SpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("vmctl-spec-test-" + std::to_string(::getpid()) + ".yaml");
    std::ofstream(path_) << kMiniSpec;
    auto spec = OpenApiSpec::Load(path_);
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    spec_ = std::move(spec).value();
  }
  void TearDown() override { std::filesystem::remove(path_); }

  Result<void> Put(const json& body) {
    return spec_.ValidateRequest("PUT", "/api/v2/things/t1", body);
  }

  std::string Why(const json& body) {
    auto r = Put(body);
    return r.ok() ? "(valid)" : r.error().message();
  }

  std::filesystem::path path_;
  OpenApiSpec spec_;
};

json Good() { return {{"thing_id", "t1"}, {"size", 5}}; }

json With(const std::string& key, json value) {
  json j = Good();
  j[key] = std::move(value);
  return j;
}

TEST_F(SpecTest, FindsOperationsUnderTheBasePath) {
  EXPECT_EQ(spec_.base_path(), "/api/v2");
  EXPECT_TRUE(spec_.Operation("PUT", "/api/v2/things/abc").ok());
  EXPECT_TRUE(spec_.Operation("get", "/api/v2/ping").ok());
  EXPECT_FALSE(spec_.Operation("PUT", "/api/v2/things/").ok()) << "a parameter is not empty";
  EXPECT_FALSE(spec_.Operation("PUT", "/api/v2/things/a/b").ok());
  EXPECT_FALSE(spec_.Operation("PUT", "/things/abc").ok()) << "outside the base path";
  EXPECT_FALSE(spec_.Operation("DELETE", "/api/v2/ping").ok());
  auto endpoints = spec_.Endpoints();
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_EQ(endpoints[0].method, "GET");
  EXPECT_EQ(endpoints[0].path, "/api/v2/ping");
}

TEST_F(SpecTest, AcceptsWhatTheSchemaAllows) {
  EXPECT_EQ(Why(Good()), "(valid)");
  json full = Good();
  full.update({{"small", -128},
               {"tiny", 255},
               {"count", 10},
               {"ratio", 0.5},
               {"flag", true},
               {"mode", "Off"},
               {"tags", {"a", "b"}},
               {"labels", {{"k", "v"}}},
               {"anything", {{"x", {1, 2}}}},
               {"address", "10.0.3.4"}});
  EXPECT_EQ(Why(full), "(valid)");
  EXPECT_EQ(Why(With("size", int64_t{9223372036854775807})), "(valid)");
}

TEST_F(SpecTest, RejectsWhatTheSchemaForbids) {
  struct Case {
    json body;
    std::string message;
  };
  const std::vector<Case> cases = {
      {json::array(), "body: expected an object"},
      {{{"thing_id", "t1"}}, "body: missing required 'size'"},
      {With("sise", 1), "body: unknown property 'sise'"},
      {With("size", "5"), "body.size: expected an integer"},
      {With("size", 1.5), "body.size: expected an integer"},
      {With("size", 0), "body.size: 0 is below the minimum 1"},
      {With("size", uint64_t{9223372036854775808u}), "does not fit int64"},
      {With("small", 128), "body.small: 128 does not fit int8"},
      {With("tiny", -1), "body.tiny: -1 does not fit uint8"},
      {With("count", 11), "body.count: 11 is above the maximum 10"},
      {With("ratio", "x"), "body.ratio: expected a number"},
      {With("flag", 0), "body.flag: expected a boolean"},
      {With("mode", "on"), R"(body.mode: "on" is not one of ["On","Off"])"},
      {With("tags", "a"), "body.tags: expected an array"},
      {With("tags", {"a", 1}), "body.tags[1]: expected a string"},
      {With("labels", {{"k", 1}}), "body.labels.k: expected a string"},
      {With("address", "192.168.0.1"), "does not match"},
      {With("thing_id", "t2"), R"(body.thing_id is "t2" but the path says "t1")"},
      {nullptr, "requires a body"},
  };
  for (const auto& c : cases) {
    auto r = Put(c.body);
    ASSERT_FALSE(r.ok()) << c.body.dump();
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << r.error().message();
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.body.dump() << " -> " << r.error().message();
  }
}

TEST_F(SpecTest, FailsClosedOnWhatItDoesNotUnderstand) {
  auto broken = Put(With("broken", 1));
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code(), ErrorCode::kInternal) << broken.error().message();
  auto fancy = Put(With("fancy", "x"));
  ASSERT_FALSE(fancy.ok());
  EXPECT_EQ(fancy.error().code(), ErrorCode::kInternal);
  EXPECT_NE(fancy.error().message().find("'oneOf'"), std::string::npos) << fancy.error().message();
}

TEST_F(SpecTest, ValidatesResponsesAndBodilessCalls) {
  EXPECT_TRUE(spec_.ValidateResponse("GET", "/api/v2/things/t1", 200, Good()).ok());
  EXPECT_FALSE(spec_.ValidateResponse("GET", "/api/v2/things/t1", 200, {{"size", 1}}).ok());
  EXPECT_TRUE(spec_.ValidateResponse("PUT", "/api/v2/things/t1", 204, nullptr).ok());
  EXPECT_FALSE(spec_.ValidateResponse("PUT", "/api/v2/things/t1", 204, Good()).ok());
  EXPECT_FALSE(spec_.ValidateResponse("PUT", "/api/v2/things/t1", 500, nullptr).ok())
      << "undocumented status";
  EXPECT_TRUE(spec_.ValidateRequest("GET", "/api/v2/ping", nullptr).ok());
  EXPECT_FALSE(spec_.ValidateRequest("GET", "/api/v2/ping", json::object()).ok());
}

TEST_F(SpecTest, ExamplesAreMinimalAndValid) {
  auto schema = spec_.RequestSchema("PUT", "/api/v2/things/t1");
  ASSERT_TRUE(schema.ok() && schema->has_value());
  EXPECT_EQ(spec_.Example(**schema), json({{"thing_id", "fake"}, {"size", 1}}));
}

TEST_F(SpecTest, MissingFileIsAnError) {
  EXPECT_EQ(OpenApiSpec::Load("/nonexistent.yaml").error().code(), ErrorCode::kInvalidArgument);
}

// Every documented request and response schema of the reference specs is within the validator's
// subset, and its example is valid: fake_vmm can answer every call.
class ReferenceSpecTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ReferenceSpecTest, EveryDocumentedSchemaIsUnderstoodAndHasAValidExample) {
  auto spec = OpenApiSpec::Load(std::filesystem::path(VMCTL_REFERENCE_DIR) / GetParam());
  ASSERT_TRUE(spec.ok()) << spec.error().message();
  size_t schemas = 0;
  for (const auto& endpoint : spec->Endpoints()) {
    std::string path = endpoint.path;
    for (size_t open; (open = path.find('{')) != std::string::npos;) {
      path.replace(open, path.find('}', open) - open + 1, "fake");
    }
    auto request = spec->RequestSchema(endpoint.method, path);
    ASSERT_TRUE(request.ok()) << request.error().message();
    if (request->has_value()) {
      ++schemas;
      auto valid = spec->ValidateRequest(endpoint.method, path, spec->Example(**request));
      EXPECT_TRUE(valid.ok()) << endpoint.method << " " << path << ": " << valid.error().message();
    }
    auto op = spec->Operation(endpoint.method, path);
    for (const auto& [code, unused] : (*op)["responses"].items()) {
      const unsigned status = code == "default" ? 599 : std::stoul(code);
      auto response = spec->ResponseSchema(endpoint.method, path, status);
      ASSERT_TRUE(response.ok()) << response.error().message();
      if (!response->has_value()) continue;
      ++schemas;
      auto valid = spec->ValidateResponse(endpoint.method, path, status, spec->Example(**response));
      EXPECT_TRUE(valid.ok()) << endpoint.method << " " << path << " " << code << ": "
                              << valid.error().message();
    }
  }
  EXPECT_GT(schemas, 20u);
}

INSTANTIATE_TEST_SUITE_P(Specs, ReferenceSpecTest,
                         ::testing::Values("cloud-hypervisor-openapi.yaml",
                                           "firecracker-swagger.yaml"),
                         [](const auto& info) {
                           return std::string(info.param).find("firecracker") == 0
                                      ? std::string("Firecracker")
                                      : std::string("CloudHypervisor");
                         });

}  // namespace
}  // namespace vmctl::testing
