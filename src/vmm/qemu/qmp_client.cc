#include "vmm/qemu/qmp_client.h"

#include <fmt/format.h>

#include "base/io.h"

namespace vmctl::vmm::qemu {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A string member of a QMP answer; anything else (a QEMU we do not know, or a hostile one) gets
// the fallback rather than an exception.
std::string StringMember(const json& object, const char* key, std::string fallback) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}

Error QmpError(const std::string& command, const json& error) {
  std::string cls = StringMember(error, "class", "GenericError");
  std::string desc =
      StringMember(error, "desc", error.is_object() ? "no description" : error.dump());
  std::string message = fmt::format("QEMU {} failed: {} ({})", command, desc, cls);
  if (cls == "CommandNotFound") return Unimplemented(std::move(message));
  if (cls == "DeviceNotFound") return NotFound(std::move(message));
  return FailedPrecondition(std::move(message));
}

}  // namespace

Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::filesystem::path& socket,
                                                      std::chrono::milliseconds timeout) {
  auto fd = ConnectUnix(socket);
  if (!fd.ok()) return Unavailable("QMP socket " + socket.string() + ": " + fd.error().message());
  return FromStream(std::move(fd).value(), timeout);
}

Result<std::unique_ptr<QmpClient>> QmpClient::FromStream(UniqueFd stream,
                                                         std::chrono::milliseconds timeout) {
  std::unique_ptr<QmpClient> client(new QmpClient(std::move(stream)));
  auto greeting = client->ReadMessage(Clock::now() + timeout);
  if (!greeting.ok()) {
    if (greeting.error().code() == ErrorCode::kDeadlineExceeded) {
      return Unavailable("QMP sent no greeting (monitor busy with another client, or hung)");
    }
    return greeting.error().WithContext("QMP greeting");
  }
  if (!greeting->contains("QMP")) {
    return Unavailable("QMP: unexpected greeting " + greeting->dump());
  }
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
      json message = json::parse(line, nullptr, /*allow_exceptions=*/false);
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
  const int64_t id = next_id_++;
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.empty()) request["arguments"] = arguments;
  VMCTL_TRY(WriteAll(fd_.get(), request.dump() + "\n"));
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto message = ReadMessage(deadline);
    if (!message.ok()) return message.error().WithContext("QEMU " + command);
    if (message->contains("event")) {
      if (events_.size() == kMaxEvents) events_.pop_front();
      events_.push_back(std::move(message).value());
      continue;
    }
    // Answers to earlier commands that timed out arrive late; they carry older ids.
    if (message->value("id", json()) != id) continue;
    if (message->contains("error")) return QmpError(command, (*message)["error"]);
    return message->value("return", json::object());
  }
}

std::vector<json> QmpClient::TakeEvents() {
  std::vector<json> out(std::make_move_iterator(events_.begin()),
                        std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

}  // namespace vmctl::vmm::qemu
