#include "vmm/qemu/qmp_client.h"

#include <fmt/format.h>

#include "base/io.h"

namespace vmctl::vmm::qemu {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::filesystem::path& socket,
                                                      std::chrono::milliseconds timeout) {
  VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, ConnectUnix(socket));
  return FromStream(std::move(fd), timeout);
}

Result<std::unique_ptr<QmpClient>> QmpClient::FromStream(UniqueFd stream,
                                                         std::chrono::milliseconds timeout) {
  std::unique_ptr<QmpClient> client(new QmpClient(std::move(stream)));
  auto greeting = client->ReadMessage(Clock::now() + timeout);
  if (!greeting.ok()) return greeting.error().WithContext("QMP greeting");
  if (!greeting->contains("QMP")) return Unavailable("QMP: unexpected greeting " + greeting->dump());
  VMCTL_TRY(client->Execute("qmp_capabilities", json::object(), timeout));
  return client;
}

Result<json> QmpClient::ReadMessage(Clock::time_point deadline) {
  for (;;) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      json message = json::parse(line, nullptr, false);
      if (message.is_discarded() || !message.is_object()) {
        return Internal("QMP sent invalid JSON: " + line);
      }
      return message;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return DeadlineExceeded("QMP did not answer in time");
    VMCTL_TRY(WaitReadable(fd_.get(), left));
    VMCTL_ASSIGN_OR_RETURN(std::string data, ReadSome(fd_.get(), 65536));
    if (data.empty()) return Unavailable("QMP connection closed");
    buffer_ += data;
  }
}

Result<json> QmpClient::Execute(const std::string& command, const json& arguments,
                                std::chrono::milliseconds timeout) {
  int64_t id = next_id_++;
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.empty()) request["arguments"] = arguments;
  VMCTL_TRY(WriteAll(fd_.get(), request.dump() + "\n"));
  auto deadline = Clock::now() + timeout;
  for (;;) {
    VMCTL_ASSIGN_OR_RETURN(json message, ReadMessage(deadline));
    if (message.contains("event")) {
      events_.push_back(std::move(message));
      continue;
    }
    if (!message.contains("id") || message["id"] != id) continue;  // a stale answer
    if (message.contains("error")) {
      const json& e = message["error"];
      std::string cls = e.value("class", "GenericError");
      std::string desc = e.value("desc", "unknown error");
      return FailedPrecondition(fmt::format("QEMU {}: {} ({})", command, desc, cls));
    }
    return message.value("return", json::object());
  }
}

}  // namespace vmctl::vmm::qemu
