// fake_vmm: stands in for cloud-hypervisor or firecracker in driver tests, on hosts where neither
// can run. It serves the API socket and answers each documented path and method with the status
// and body shape the reference spec documents, validating every request body against the spec
// and recording it. The hybrid-vsock socket answers CONNECT like the real VMMs, and the "guest"
// behind port 1024 greets with an agent hello frame.
//
//   fake_vmm --api-socket PATH   (Cloud Hypervisor flavour)
//   fake_vmm --api-sock PATH     (Firecracker flavour)
// Environment: FAKE_VMM_SPEC (spec YAML, required), FAKE_VMM_RECORD (append one JSON line per
// request), FAKE_VMM_FAIL ("PUT /vm.boot": answer that call with its documented error),
// FAKE_VMM_EXIT_AT_START (print it to stderr and exit 1 at once).
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "base/frame.h"
#include "base/io.h"
#include "testing/openapi/spec.h"

namespace vmctl::testing {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class FakeVmm {
 public:
  FakeVmm(OpenApiSpec spec, bool ch) : spec_(std::move(spec)), ch_(ch) {}

  int Serve(const std::filesystem::path& api_path) {
    auto api = ListenUnix(api_path, 0600);
    if (!api.ok()) {
      std::cerr << api.error().message() << "\n";
      return 1;
    }
    api_ = std::move(api).value();
    for (;;) {
      std::vector<pollfd> fds = {{api_.get(), POLLIN, 0}};
      if (vsock_.valid()) fds.push_back({vsock_.get(), POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents) {
        UniqueFd conn(::accept4(api_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.valid() && !HandleApi(conn.get())) return 0;
      }
      if (fds.size() > 1 && fds[1].revents) {
        UniqueFd conn(::accept4(vsock_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.valid()) HandleVsock(std::move(conn));
      }
    }
  }

 private:
  // Answers one request; false when the VMM should exit afterwards.
  bool HandleApi(int fd) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    std::string pending;
    boost::beast::error_code ec;
    while (!parser.is_done()) {
      auto data = ReadSome(fd, 65536);
      if (!data.ok() || data->empty()) return true;
      pending += *data;
      size_t used = parser.put(boost::asio::buffer(pending), ec);
      if (ec == http::error::need_more) ec = {};
      if (ec) return true;
      pending.erase(0, used);
    }
    auto& req = parser.get();
    std::string method(req.method_string());
    std::string path(req.target());
    json body = req.body().empty() ? json() : json::parse(req.body(), nullptr, false);
    auto op = spec_.Operation(method, path);
    if (!op.ok()) {
      Reply(fd, ch_ ? 404 : 400, ErrorBody("invalid request method and/or path"));
      return true;
    }
    auto valid = body.is_discarded() ? Result<void>(InvalidArgument("body is not JSON"))
                                     : spec_.ValidateRequest(method, path, body);
    Record(method, path, body, valid);
    if (!valid.ok()) {
      Reply(fd, 400, ErrorBody(valid.error().message()));
      return true;
    }
    auto [ok_status, error_status, error_text] = Documented(*op);
    if (Env("FAKE_VMM_FAIL") == method + " " + path) {
      Reply(fd, error_status, ErrorBody(error_text));
      return true;
    }
    std::string endpoint = path.substr(spec_.base_path().size());
    bool keep_running = Apply(method, endpoint, body);
    json answer = Answer(method, endpoint);
    Reply(fd, answer.is_null() ? ok_status : 200, answer);
    return keep_running;
  }

  // The success status and the first documented error (status and description) of an operation.
  std::tuple<unsigned, unsigned, std::string> Documented(const json& op) {
    unsigned ok = 204, err = ch_ ? 500 : 400;
    std::string text = "internal error";
    bool have_error = false;
    for (const auto& [code, response] : op["responses"].items()) {
      unsigned status = code == "default" ? 500 : static_cast<unsigned>(std::stoul(code));
      if (status < 300) {
        ok = status;
      } else if (!have_error) {
        err = status;
        text = response.value("description", text);
        have_error = true;
      }
    }
    return {ok, err, text};
  }

  json ErrorBody(const std::string& text) {
    // Cloud Hypervisor answers with its error chain as a JSON array; Firecracker with an Error
    // object.
    if (ch_) return json::array({"Error from the fake VMM", text});
    return {{"fault_message", text}};
  }

  // Applies a successful call to the fake's state; false means "exit now".
  bool Apply(const std::string& method, const std::string& endpoint, const json& body) {
    if (ch_) {
      if (endpoint == "/vm.create") {
        config_ = body;
        state_ = "Created";
        if (body.contains("vsock")) StartVsock(body["vsock"]["socket"].get<std::string>());
      } else if (endpoint == "/vm.boot" || endpoint == "/vm.resume") {
        state_ = "Running";
      } else if (endpoint == "/vm.pause") {
        state_ = "Paused";
      } else if (endpoint == "/vm.shutdown") {
        state_ = "Shutdown";
      } else if (endpoint == "/vm.power-button" || endpoint == "/vmm.shutdown") {
        return false;  // the guest powers off and the VMM exits, as the real one does
      }
    } else {
      if (endpoint == "/vsock") StartVsock(body["uds_path"].get<std::string>());
      if (endpoint == "/actions") {
        std::string action = body.value("action_type", "");
        if (action == "InstanceStart") state_ = "Running";
        if (action == "SendCtrlAltDel") return false;
      }
      if (method == "PATCH" && endpoint == "/vm") {
        state_ = body.value("state", "") == "Paused" ? "Paused" : "Running";
      }
    }
    return true;
  }

  json Answer(const std::string& method, const std::string& endpoint) {
    if (method != "GET") return nullptr;
    if (ch_ && endpoint == "/vmm.ping") return {{"version", "fake-vmm"}, {"pid", ::getpid()}};
    if (ch_ && endpoint == "/vm.info") return {{"config", config_}, {"state", state_}};
    if (!ch_ && endpoint == "/") {
      return {{"app_name", "Firecracker"},
              {"id", "fake"},
              {"state", state_},
              {"vmm_version", "fake-vmm"}};
    }
    return nullptr;
  }

  void Reply(int fd, unsigned status, const json& body) {
    std::string payload = body.is_null() ? "" : body.dump();
    std::string head =
        fmt::format("HTTP/1.1 {} Fake\r\nContent-Length: {}\r\n", status, payload.size());
    if (!payload.empty()) head += "Content-Type: application/json\r\n";
    (void)WriteAll(fd, head + "Connection: close\r\n\r\n" + payload);
  }

  void Record(const std::string& method, const std::string& path, const json& body,
              const Result<void>& valid) {
    std::string file = Env("FAKE_VMM_RECORD");
    if (file.empty()) return;
    json line = {{"method", method},
                 {"path", path},
                 {"body", body.is_discarded() ? json() : body},
                 {"valid", valid.ok()},
                 {"error", valid.ok() ? "" : valid.error().message()}};
    std::ofstream(file, std::ios::app) << line.dump() << "\n";
  }

  void StartVsock(const std::string& path) {
    auto listener = ListenUnix(path, 0600);
    if (listener.ok()) vsock_ = std::move(listener).value();
  }

  // Hybrid vsock: "CONNECT <port>\n" -> "OK <n>\n" for the agent's port, then the guest agent's
  // first frame; any other port is refused by closing, as the real VMMs do.
  void HandleVsock(UniqueFd conn) {
    std::string line;
    while (line.empty() || line.back() != '\n') {
      auto c = ReadSome(conn.get(), 1);
      if (!c.ok() || c->empty() || line.size() > 64) return;
      line += *c;
    }
    if (line != "CONNECT 1024\n") return;
    (void)WriteAll(conn.get(), "OK 1073741824\n");
    (void)WriteAll(conn.get(), EncodeFrame({{"type", "hello"},
                                            {"agent_version", "fake"},
                                            {"kernel", "fake-kernel"},
                                            {"hostname", "fake"}}));
  }

  OpenApiSpec spec_;
  bool ch_;
  UniqueFd api_, vsock_;
  json config_ = json::object();
  std::string state_ = "Not started";
};

}  // namespace
}  // namespace vmctl::testing

int main(int argc, char** argv) {
  if (!vmctl::testing::Env("FAKE_VMM_EXIT_AT_START").empty()) {
    std::fprintf(stderr, "%s\n", vmctl::testing::Env("FAKE_VMM_EXIT_AT_START").c_str());
    return 1;
  }
  if (argc != 3 ||
      (std::string(argv[1]) != "--api-socket" && std::string(argv[1]) != "--api-sock")) {
    std::fprintf(stderr, "usage: fake_vmm --api-socket|--api-sock PATH\n");
    return 2;
  }
  auto spec = vmctl::testing::OpenApiSpec::Load(vmctl::testing::Env("FAKE_VMM_SPEC"));
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.error().message().c_str());
    return 2;
  }
  vmctl::testing::FakeVmm vmm(std::move(spec).value(), std::string(argv[1]) == "--api-socket");
  return vmm.Serve(argv[2]);
}
