// fake_vmm: stands in for cloud-hypervisor or firecracker in driver tests, on hosts where neither
// can run. It replays the reference spec: every documented method + path is answered with a
// documented status and a body valid against the documented schema, every request body is
// validated against the spec and recorded, and state follows the calls (created, running,
// paused). The hybrid-vsock socket answers CONNECT like the real VMMs, and the "guest" behind port
// 1024 greets with an agent hello frame.
//
//   fake_vmm --api-socket PATH   Cloud Hypervisor (cloud-hypervisor-openapi.yaml)
//   fake_vmm --api-sock PATH     Firecracker (firecracker-swagger.yaml)
//
// Files beside PATH:
//   fake_vmm.requests.jsonl  one JSON object per request: method, path, body, request_error (why
//                            the request breaks the spec, "" if it does not), status,
//                            answer_error (why the fake's own answer breaks the spec, "" if not)
//   fake_vmm.control         re-read before every request; one directive per line:
//     exit-at-start TEXT       print TEXT to stderr and exit 1 instead of serving
//     fail METHOD PATH [CODE]  answer with a documented error (the first one unless CODE)
//     hang METHOD PATH         never answer that request
//     crash METHOD PATH        exit 1 on that request without answering
//     vsock-refuse             close hybrid-vsock connections unanswered (no guest listener)
//     vsock-reply TEXT         answer CONNECT with TEXT instead of "OK <port>"
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/beast/http.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "base/frame.h"
#include "base/io.h"
#include "testing/openapi/spec.h"

namespace vmctl::testing {
namespace {

namespace http = boost::beast::http;
using nlohmann::json;

struct Directive {
  std::string keyword;
  std::string rest;  // the remainder of the line
};

std::vector<Directive> ReadControl(const std::filesystem::path& file) {
  std::vector<Directive> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto space = line.find(' ');
    out.push_back(
        {line.substr(0, space), space == std::string::npos ? "" : line.substr(space + 1)});
  }
  return out;
}

bool IsSuccess(const std::string& code) { return code.size() == 3 && code[0] == '2'; }

class FakeVmm {
 public:
  FakeVmm(OpenApiSpec spec, bool cloud_hypervisor, std::filesystem::path api_path)
      : spec_(std::move(spec)),
        ch_(cloud_hypervisor),
        api_path_(std::move(api_path)),
        control_(api_path_.parent_path() / "fake_vmm.control"),
        record_(api_path_.parent_path() / "fake_vmm.requests.jsonl") {}

  int Serve() {
    for (const auto& d : ReadControl(control_)) {
      if (d.keyword == "exit-at-start") {
        std::cerr << d.rest << "\n";
        return 1;
      }
    }
    // Like Cloud Hypervisor, which locks <api socket>.lock so that two VMMs never share a socket.
    if (ch_) std::ofstream(api_path_.string() + ".lock");
    auto api = ListenUnix(api_path_, 0600);
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
        if (conn.valid() && !HandleApi(std::move(conn))) return 0;
      }
      if (fds.size() > 1 && fds[1].revents) {
        UniqueFd conn(::accept4(vsock_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.valid()) HandleVsock(std::move(conn));
      }
    }
  }

 private:
  struct Answer {
    unsigned status = 0;
    json body;  // null: no body
  };

  // Serves one request; false when the VMM exits afterwards.
  bool HandleApi(UniqueFd conn) {
    http::request_parser<http::string_body> parser;
    parser.eager(true);
    std::string pending;
    while (!parser.is_done()) {
      auto data = ReadSome(conn.get(), 65536);
      if (!data.ok() || data->empty()) return true;
      pending += *data;
      boost::beast::error_code ec;
      size_t used = parser.put(boost::asio::buffer(pending), ec);
      if (ec == http::error::need_more) ec = {};
      if (ec) return true;
      pending.erase(0, used);
    }
    const auto& req = parser.get();
    const std::string method(req.method_string());
    const std::string path(req.target());
    const json body = req.body().empty() ? json() : json::parse(req.body(), nullptr, false);
    const std::string call = method + " " + path;

    auto op = spec_.Operation(method, path);
    if (!op.ok()) {
      // What the real servers answer for an unknown route.
      Answer unknown = ch_ ? Answer{404, json::array({"Not Found"})}
                           : Answer{400, {{"fault_message", "Invalid request method and/or path"}}};
      Record(method, path, body, op.error().message(), unknown, "");
      Reply(conn.get(), unknown);
      return true;
    }
    auto valid = body.is_discarded() ? Result<void>(InvalidArgument("body is not JSON"))
                                     : spec_.ValidateRequest(method, path, body);
    if (!valid.ok()) {
      // Cloud Hypervisor's chain for a body it cannot take starts with its deserialization error.
      Answer bad =
          ch_ ? Answer{400, json::array({"Failed to deserialize JSON", valid.error().message()})}
              : ErrorAnswer(400, valid.error().message());
      Record(method, path, body, valid.error().message(), bad, "");
      Reply(conn.get(), bad);
      return true;
    }

    for (const auto& d : ReadControl(control_)) {
      if (d.keyword == "crash" && d.rest == call) {
        Record(method, path, body, "", {}, "");
        std::cerr << "fake_vmm: crashed on " << call << "\n";
        std::_Exit(1);
      }
      if (d.keyword == "hang" && d.rest == call) {
        Record(method, path, body, "", {}, "");
        held_.push_back(std::move(conn));
        return true;
      }
      const bool with_code = d.rest.rfind(call + " ", 0) == 0;
      if (d.keyword == "fail" && (d.rest == call || with_code)) {
        std::optional<unsigned> code;
        if (with_code) {
          unsigned number = 0;
          const char* first = d.rest.data() + call.size() + 1;
          const char* last = d.rest.data() + d.rest.size();
          if (std::from_chars(first, last, number).ptr != last) {
            std::cerr << "fake_vmm: bad directive: fail " << d.rest << "\n";
            std::_Exit(2);
          }
          code = number;
        }
        Answer error = DocumentedError(*op, code);
        Record(method, path, body, "", error, ErrorAnswerProblem(method, path, error));
        Reply(conn.get(), error);
        return true;
      }
    }

    if (auto refused = Precondition(method, path.substr(spec_.base_path().size()), *op)) {
      Record(method, path, body, "", *refused, ErrorAnswerProblem(method, path, *refused));
      Reply(conn.get(), *refused);
      return true;
    }
    bool keep_running = Apply(method, path.substr(spec_.base_path().size()), body);
    Answer answer = Success(method, path, *op);
    auto answer_valid = spec_.ValidateResponse(method, path, answer.status, answer.body);
    Record(method, path, body, "", answer, answer_valid.ok() ? "" : answer_valid.error().message());
    Reply(conn.get(), answer);
    return keep_running;
  }

  // The documented success: for a GET the 2xx with a body, otherwise the 2xx without one if there
  // is one. The body is the schema's example, with the fake's state filled in.
  Answer Success(const std::string& method, const std::string& path, const json& op) {
    std::optional<std::string> with_body, without_body;
    for (const auto& [code, response] : op["responses"].items()) {
      if (!IsSuccess(code)) continue;
      bool has_body = response.contains("content") || response.contains("schema");
      (has_body ? with_body : without_body) = code;
    }
    std::string code = method == "GET" ? with_body.value_or(without_body.value_or("200"))
                                       : without_body.value_or(with_body.value_or("204"));
    Answer answer{static_cast<unsigned>(std::stoul(code)), nullptr};
    auto schema = spec_.ResponseSchema(method, path, answer.status);
    if (schema.ok() && schema->has_value()) answer.body = spec_.Example(**schema);
    const std::string endpoint = path.substr(spec_.base_path().size());
    if (ch_ && endpoint == "/vmm.ping") {
      answer.body["version"] = "fake-vmm";
      answer.body["pid"] = ::getpid();
    } else if (ch_ && endpoint == "/vm.info") {
      // After vm.restore the fake knows no config (the snapshot holds it): the example stands.
      if (!config_.is_null() && !config_.empty()) answer.body["config"] = config_;
      answer.body["state"] = state_;
    } else if (!ch_ && endpoint == "/") {
      answer.body = {
          {"app_name", "Firecracker"}, {"id", "fake"}, {"state", state_}, {"vmm_version", "fake"}};
    }
    return answer;
  }

  // Cloud Hypervisor's error body is its error chain as a JSON array of strings (its HTTP server's
  // error_response; the spec documents no body); Firecracker's is the documented Error object.
  Answer ErrorAnswer(unsigned status, const std::string& text) {
    if (ch_) return {status, json::array({"Error from API", text})};
    return {status, {{"fault_message", text}}};
  }

  std::string ErrorAnswerProblem(const std::string& method, const std::string& path,
                                 const Answer& answer) {
    if (ch_) return "";
    auto valid = spec_.ValidateResponse(method, path, answer.status, answer.body);
    return valid.ok() ? "" : valid.error().message();
  }

  // A documented error response: the one with `code`, else the first. Operations that document
  // none fail with 500 (Cloud Hypervisor's answer to an internal error).
  Answer DocumentedError(const json& op, std::optional<unsigned> code) {
    for (const auto& [status, response] : op["responses"].items()) {
      if (IsSuccess(status)) continue;
      unsigned number = status == "default" ? 500 : static_cast<unsigned>(std::stoul(status));
      if (code && *code != number && status != "default") continue;
      return ErrorAnswer(code.value_or(number), response.value("description", "error"));
    }
    return ErrorAnswer(code.value_or(500), "fake failure (the spec documents no error here)");
  }

  // The state rules the specs document: Cloud Hypervisor's 404 (no VM created yet) and 405 (not
  // booted / not paused); Firecracker's "Pre-boot only" and "Post-boot only" operations.
  std::optional<Answer> Precondition(const std::string& method, const std::string& endpoint,
                                     const json& op) {
    const json& responses = op["responses"];
    auto documented = [&](const std::string& code) -> std::optional<Answer> {
      if (!responses.contains(code)) return std::nullopt;
      return ErrorAnswer(std::stoul(code), responses[code].value("description", "error"));
    };
    if (ch_) {
      if (config_.is_null() && endpoint != "/vm.create" && endpoint != "/vm.restore") {
        if (auto a = documented("404")) return a;
      }
      const bool wants_paused = endpoint == "/vm.resume";
      const bool wants_running = endpoint == "/vm.pause" || endpoint == "/vm.power-button" ||
                                 endpoint == "/vm.reboot" || endpoint == "/vm.shutdown";
      if ((wants_paused && state_ != "Paused") || (wants_running && state_ != "Running")) {
        if (auto a = documented("405")) return a;
      }
      return std::nullopt;
    }
    const std::string summary = op.value("summary", "");
    const bool started = state_ != "Not started";
    if (started && summary.find("Pre-boot only") != std::string::npos) {
      return ErrorAnswer(400,
                         "The requested operation is not supported after starting the microVM.");
    }
    if (!started && (summary.find("Post-boot only") != std::string::npos ||
                     (method == "PATCH" && endpoint == "/vm"))) {
      return ErrorAnswer(400,
                         "The requested operation is not supported before starting the microVM.");
    }
    return std::nullopt;
  }

  // Applies a successful call to the fake's state; false means "exit after answering".
  bool Apply(const std::string& method, const std::string& endpoint, const json& body) {
    if (ch_) {
      if (endpoint == "/vm.create") {
        config_ = body;
        state_ = "Created";
      } else if (endpoint == "/vm.boot") {
        state_ = "Running";
        if (config_.contains("vsock")) StartVsock(config_["vsock"]["socket"].get<std::string>());
      } else if (endpoint == "/vm.resume" || endpoint == "/vm.reboot") {
        state_ = "Running";
      } else if (endpoint == "/vm.pause") {
        state_ = "Paused";
      } else if (endpoint == "/vm.shutdown") {
        state_ = "Shutdown";
      } else if (endpoint == "/vm.restore") {
        config_ = json::object();
        state_ = body.value("resume", false) ? "Running" : "Paused";
      } else if (endpoint == "/vm.delete") {
        config_ = nullptr;
        state_ = "Created";
      } else if (endpoint == "/vm.power-button" || endpoint == "/vmm.shutdown") {
        return false;  // the guest powers off, and Cloud Hypervisor exits with it
      }
      return true;
    }
    if (method == "PUT" && endpoint == "/vsock") vsock_path_ = body["uds_path"].get<std::string>();
    if (method == "PUT" && endpoint == "/actions") {
      const std::string action = body["action_type"].get<std::string>();
      if (action == "InstanceStart") {
        state_ = "Running";
        if (!vsock_path_.empty()) StartVsock(vsock_path_);
      }
      if (action == "SendCtrlAltDel") return false;  // the guest reboots; Firecracker exits
    }
    if (method == "PATCH" && endpoint == "/vm") {
      state_ = body["state"] == "Paused" ? "Paused" : "Running";
    }
    if (method == "PUT" && endpoint == "/snapshot/load") {
      state_ = body.value("resume_vm", false) ? "Running" : "Paused";
    }
    return true;
  }

  void Reply(int fd, const Answer& answer) {
    std::string payload = answer.body.is_null() ? "" : answer.body.dump();
    std::string head =
        fmt::format("HTTP/1.1 {} Fake\r\nServer: {}\r\nContent-Length: {}\r\n", answer.status,
                    ch_ ? "Cloud Hypervisor API" : "Firecracker API", payload.size());
    if (!payload.empty()) head += "Content-Type: application/json\r\n";
    (void)WriteAll(fd, head + "Connection: close\r\n\r\n" + payload);
  }

  void Record(const std::string& method, const std::string& path, const json& body,
              const std::string& request_error, const Answer& answer,
              const std::string& answer_error) {
    json line = {{"method", method},
                 {"path", path},
                 {"body", body.is_discarded() ? json("(not JSON)") : body},
                 {"request_error", request_error},
                 {"status", answer.status},
                 {"answer_error", answer_error}};
    std::ofstream(record_, std::ios::app) << line.dump() << "\n";
  }

  void StartVsock(const std::filesystem::path& path) {
    auto listener = ListenUnix(path, 0600);
    if (listener.ok()) vsock_ = std::move(listener).value();
  }

  // Hybrid vsock: "CONNECT 1024\n" -> "OK <port>\n", then the guest agent's hello frame; any
  // other port is refused by closing, as the real VMMs do when no guest listens there.
  void HandleVsock(UniqueFd conn) {
    std::string line;
    while (line.empty() || line.back() != '\n') {
      auto c = ReadSome(conn.get(), 1);
      if (!c.ok() || c->empty() || line.size() > 64) return;
      line += *c;
    }
    for (const auto& d : ReadControl(control_)) {
      if (d.keyword == "vsock-refuse") return;
      if (d.keyword == "vsock-reply") {
        (void)WriteAll(conn.get(), d.rest + "\n");
        return;
      }
    }
    if (line != "CONNECT 1024\n") return;
    (void)WriteAll(conn.get(), "OK 1073741824\n");
    (void)WriteAll(conn.get(), EncodeFrame({{"type", "hello"},
                                            {"agent_version", "fake"},
                                            {"kernel", "fake-kernel"},
                                            {"hostname", "fake"}}));
  }

  OpenApiSpec spec_;
  const bool ch_;
  const std::filesystem::path api_path_, control_, record_;
  UniqueFd api_, vsock_;
  std::vector<UniqueFd> held_;  // connections of hung requests, never answered
  json config_;                 // Cloud Hypervisor: the created VM's config; null before vm.create
  std::string vsock_path_;      // Firecracker: the configured uds_path
  std::string state_ = ch_ ? "Created" : "Not started";
};

}  // namespace
}  // namespace vmctl::testing

int main(int argc, char** argv) {
  const std::string flag = argc == 3 ? argv[1] : "";
  if (flag != "--api-socket" && flag != "--api-sock") {
    std::fprintf(stderr, "usage: fake_vmm --api-socket|--api-sock PATH\n");
    return 2;
  }
  const bool ch = flag == "--api-socket";
  auto spec = vmctl::testing::OpenApiSpec::Load(
      std::filesystem::path(VMCTL_REFERENCE_DIR) /
      (ch ? "cloud-hypervisor-openapi.yaml" : "firecracker-swagger.yaml"));
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.error().message().c_str());
    return 2;
  }
  vmctl::testing::FakeVmm vmm(std::move(spec).value(), ch, argv[2]);
  return vmm.Serve();
}
