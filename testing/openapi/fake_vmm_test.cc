// fake_vmm replays the reference specs: every documented call gets a documented status and a body
// valid against the documented schema, and every documented error can be asked for. The driver
// tests rely on this; here it is checked call by call, independently of any driver.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "base/process.h"
#include "testing/openapi/spec.h"
#include "vmm/common/http_unix.h"

namespace vmctl::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

struct Flavour {
  const char* name;
  const char* spec_file;
  const char* flag;
  const char* ping;  // a GET that answers as soon as the API is up
};

const Flavour kCloudHypervisor{"CloudHypervisor", "cloud-hypervisor-openapi.yaml", "--api-socket",
                               "/api/v1/vmm.ping"};
const Flavour kFirecracker{"Firecracker", "firecracker-swagger.yaml", "--api-sock", "/"};

bool IsCloudHypervisor(const Flavour& f) { return std::string(f.flag) == "--api-socket"; }

class FakeVmmTest : public ::testing::TestWithParam<Flavour> {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vmctl-fake-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    auto spec =
        OpenApiSpec::Load(std::filesystem::path(VMCTL_REFERENCE_DIR) / GetParam().spec_file);
    ASSERT_TRUE(spec.ok()) << spec.error().message();
    spec_ = std::move(spec).value();
    auto process = SpawnDetached({VMCTL_FAKE_VMM, GetParam().flag, (dir_ / "api.sock").string()},
                                 {.log_file = dir_ / "fake.log"});
    ASSERT_TRUE(process.ok()) << process.error().message();
    process_ = *process;
    // Bounded only so that a broken fake fails the test instead of hanging it.
    for (int i = 0; i < 500 && !Call("GET", GetParam().ping, std::nullopt).ok(); ++i) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_TRUE(Call("GET", GetParam().ping, std::nullopt).ok());
    std::filesystem::remove(dir_ / "fake_vmm.requests.jsonl");
  }

  void TearDown() override {
    (void)process_.Kill();
    std::filesystem::remove_all(dir_);
  }

  Result<vmm::HttpResponse> Call(const std::string& method, const std::string& path,
                                 const std::optional<json>& body) {
    return vmm::HttpUnix(dir_ / "api.sock", method, path, body, seconds(5));
  }

  void Control(const std::string& directives) {
    std::ofstream(dir_ / "fake_vmm.control", std::ios::trunc) << directives << "\n";
  }

  // A concrete request for a documented endpoint: the request schema's example as the body, and
  // path parameters filled in ("fake", which is what the example's strings say too).
  std::pair<std::string, std::optional<json>> Concrete(const OpenApiSpec::Endpoint& endpoint) {
    std::string path = endpoint.path;
    for (size_t open; (open = path.find('{')) != std::string::npos;) {
      path.replace(open, path.find('}', open) - open + 1, "fake");
    }
    auto schema = spec_.RequestSchema(endpoint.method, path);
    EXPECT_TRUE(schema.ok());
    std::optional<json> body;
    if (schema.ok() && schema->has_value()) body = spec_.Example(**schema);
    return {path, body};
  }

  // A documented status, and a body that matches it. Cloud Hypervisor documents no error bodies;
  // its server sends the error chain as a JSON array of strings, and so does the fake.
  void ExpectDocumentedAnswer(const std::string& method, const std::string& path,
                              const vmm::HttpResponse& answer) {
    json body = answer.body.empty() ? json() : json::parse(answer.body, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << method << " " << path << ": " << answer.body;
    if (IsCloudHypervisor(GetParam()) && answer.status >= 400) {
      ASSERT_TRUE(body.is_array() && !body.empty()) << method << " " << path << ": " << body;
      for (const auto& part : body) EXPECT_TRUE(part.is_string()) << body;
      return;
    }
    auto valid = spec_.ValidateResponse(method, path, answer.status, body);
    EXPECT_TRUE(valid.ok()) << method << " " << path << " " << answer.status << ": "
                            << valid.error().message();
  }

  std::vector<json> Recorded() {
    std::vector<json> out;
    std::ifstream in(dir_ / "fake_vmm.requests.jsonl");
    std::string line;
    while (std::getline(in, line)) out.push_back(json::parse(line));
    return out;
  }

  std::filesystem::path dir_;
  OpenApiSpec spec_;
  ProcessRef process_;
};

TEST_P(FakeVmmTest, AnswersEveryDocumentedErrorOnDemand) {
  size_t errors = 0;
  for (const auto& endpoint : spec_.Endpoints()) {
    auto [path, body] = Concrete(endpoint);
    auto op = spec_.Operation(endpoint.method, path);
    ASSERT_TRUE(op.ok());
    for (const auto& [code, unused] : (*op)["responses"].items()) {
      if (code[0] == '2') continue;
      const unsigned status = code == "default" ? 500 : std::stoul(code);
      Control(fmt::format("fail {} {} {}", endpoint.method, path, status));
      auto answer = Call(endpoint.method, path, body);
      ASSERT_TRUE(answer.ok()) << answer.error().message();
      EXPECT_EQ(answer->status, status) << endpoint.method << " " << path;
      ExpectDocumentedAnswer(endpoint.method, path, *answer);
      ++errors;
    }
  }
  EXPECT_GT(errors, 10u);
}

TEST_P(FakeVmmTest, AnswersEveryDocumentedCallAsDocumented) {
  auto endpoints = spec_.Endpoints();
  // Cloud Hypervisor's vmm.shutdown ends the fake, as it ends the real VMM: it goes last.
  std::stable_partition(endpoints.begin(), endpoints.end(),
                        [](const auto& e) { return e.path != "/api/v1/vmm.shutdown"; });
  for (const auto& endpoint : endpoints) {
    auto [path, body] = Concrete(endpoint);
    auto answer = Call(endpoint.method, path, body);
    ASSERT_TRUE(answer.ok()) << endpoint.method << " " << path << ": " << answer.error().message();
    auto op = spec_.Operation(endpoint.method, path);
    const auto& responses = (*op)["responses"];
    EXPECT_TRUE(responses.contains(std::to_string(answer->status)) || responses.contains("default"))
        << endpoint.method << " " << path << " answered an undocumented " << answer->status;
    ExpectDocumentedAnswer(endpoint.method, path, *answer);
  }
  auto recorded = Recorded();
  EXPECT_EQ(recorded.size(), endpoints.size());
  for (const auto& r : recorded) {
    EXPECT_EQ(r["request_error"], "") << r.dump();
    EXPECT_EQ(r["answer_error"], "") << r.dump();
  }
  if (IsCloudHypervisor(GetParam())) {
    EXPECT_TRUE(process_.WaitExit(seconds(10)).ok());
  }
}

TEST_P(FakeVmmTest, RejectsAndRecordsWhatBreaksTheSpec) {
  const bool ch = IsCloudHypervisor(GetParam());
  const std::string path = ch ? "/api/v1/vm.create" : "/machine-config";
  auto bad = Call("PUT", path, json{{"bogus", 1}});
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ(bad->status, 400u);
  auto unknown = Call("PUT", ch ? "/api/v1/vm.start" : "/start", std::nullopt);
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown->status, ch ? 404u : 400u);
  auto recorded = Recorded();
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_NE(recorded[0]["request_error"], "");
  EXPECT_NE(recorded[1]["request_error"], "");
}

INSTANTIATE_TEST_SUITE_P(Flavours, FakeVmmTest, ::testing::Values(kCloudHypervisor, kFirecracker),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace vmctl::testing
