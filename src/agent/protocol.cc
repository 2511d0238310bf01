#include "agent/protocol.h"

#include <fmt/format.h>

#include <limits>

#include "base/frame.h"

namespace vmctl::agent {
namespace {

using nlohmann::json;

constexpr size_t kMaxHelloField = 256;

std::optional<int64_t> AsInt64(const json& v) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

Error Bad(std::string_view what) {
  return InvalidArgument(fmt::format("guest agent protocol violation: {}", what));
}

Result<int64_t> IntMember(const json& frame, const char* key) {
  auto it = frame.find(key);
  if (it == frame.end()) return Bad(fmt::format("'{}' is missing", key));
  auto v = AsInt64(*it);
  if (!v) return Bad(fmt::format("'{}' is not a 64-bit integer", key));
  return *v;
}

Result<std::string> StringMember(const json& frame, const char* key, std::string fallback) {
  auto it = frame.find(key);
  if (it == frame.end()) return fallback;
  if (!it->is_string()) return Bad(fmt::format("'{}' is not a string", key));
  return it->get<std::string>();
}

// Parsed JSON strings are valid UTF-8 already; what is left is terminal control and length.
std::string Printable(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  if (s.size() > kMaxHelloField) {
    size_t cut = kMaxHelloField;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
    s.resize(cut);
  }
  return s;
}

Result<GuestMessage> ParseReply(const json& frame) {
  GuestMessage m;
  m.kind = GuestMessage::Kind::kReply;
  VMCTL_ASSIGN_OR_RETURN(m.id, IntMember(frame, "id"));
  auto ok = frame.find("ok");
  if (ok == frame.end() || !ok->is_boolean()) return Bad("a reply's 'ok' is not a boolean");
  if (!ok->get<bool>()) {
    auto e = frame.find("error");
    if (e == frame.end() || !e->is_object()) return Bad("a failed reply has no 'error' object");
    VMCTL_ASSIGN_OR_RETURN(std::string code, StringMember(*e, "code", "internal"));
    VMCTL_ASSIGN_OR_RETURN(std::string message,
                           StringMember(*e, "message", "the agent reported an error"));
    m.error = Error(ErrorCodeFromName(code), std::move(message));
    return m;
  }
  m.result = frame;
  m.result.erase("id");
  m.result.erase("ok");
  return m;
}

Result<GuestMessage> ParseStreamFrame(const json& frame, const std::string& type) {
  GuestMessage m;
  VMCTL_ASSIGN_OR_RETURN(m.stream, IntMember(frame, "stream"));
  if (type == "exit") {
    m.kind = GuestMessage::Kind::kExit;
    VMCTL_ASSIGN_OR_RETURN(int64_t code, IntMember(frame, "code"));
    if (code < std::numeric_limits<int>::min() || code > std::numeric_limits<int>::max()) {
      return Bad("an exit 'code' is out of range");
    }
    m.exit_code = static_cast<int>(code);
    return m;
  }
  m.kind = GuestMessage::Kind::kOutput;
  m.is_stderr = type == "stderr";
  auto data = frame.find("data");
  if (data == frame.end() || !data->is_string()) return Bad("output 'data' is not a string");
  auto decoded = Base64Decode(data->get_ref<const std::string&>());
  if (!decoded.ok()) return Bad("output 'data' is not base64");
  m.data = std::move(decoded).value();
  return m;
}

}  // namespace

Result<Hello> ParseHello(const json& frame) {
  Hello hello;
  VMCTL_ASSIGN_OR_RETURN(hello.agent_version, StringMember(frame, "agent_version", ""));
  VMCTL_ASSIGN_OR_RETURN(hello.kernel, StringMember(frame, "kernel", ""));
  VMCTL_ASSIGN_OR_RETURN(hello.hostname, StringMember(frame, "hostname", ""));
  hello.agent_version = Printable(std::move(hello.agent_version));
  hello.kernel = Printable(std::move(hello.kernel));
  hello.hostname = Printable(std::move(hello.hostname));
  return hello;
}

Result<GuestMessage> ParseGuestMessage(const json& frame) {
  if (!frame.is_object()) return Bad("a frame is not a JSON object");
  auto type = frame.find("type");
  if (type == frame.end()) {
    if (!frame.contains("id")) return Bad("a frame has neither 'type' nor 'id'");
    return ParseReply(frame);
  }
  if (!type->is_string()) return Bad("'type' is not a string");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "hello") {
    GuestMessage m;
    m.kind = GuestMessage::Kind::kHello;
    VMCTL_ASSIGN_OR_RETURN(m.hello, ParseHello(frame));
    return m;
  }
  if (t == "stdout" || t == "stderr" || t == "exit") return ParseStreamFrame(frame, t);
  return GuestMessage{};
}

Result<std::vector<GuestMessage>> DecodeGuestMessages(std::string_view bytes) {
  FrameDecoder decoder(kMaxGuestFrameSize);
  decoder.Feed(bytes);
  std::vector<GuestMessage> out;
  for (;;) {
    VMCTL_ASSIGN_OR_RETURN(auto frame, decoder.Next());
    if (!frame) return out;
    VMCTL_ASSIGN_OR_RETURN(GuestMessage m, ParseGuestMessage(*frame));
    out.push_back(std::move(m));
  }
}

Result<bool> ReplyBool(const json& reply, const char* key, bool fallback) {
  auto it = reply.find(key);
  if (it == reply.end()) return fallback;
  if (!it->is_boolean())
    return Internal(fmt::format("the guest agent's '{}' is not a boolean", key));
  return it->get<bool>();
}

Result<int64_t> ReplyInt(const json& reply, const char* key, int64_t fallback) {
  auto it = reply.find(key);
  if (it == reply.end()) return fallback;
  auto v = AsInt64(*it);
  if (!v) return Internal(fmt::format("the guest agent's '{}' is not an integer", key));
  return *v;
}

Result<std::vector<std::string>> ReplyStrings(const json& reply, const char* key) {
  std::vector<std::string> out;
  auto it = reply.find(key);
  if (it == reply.end()) return out;
  if (!it->is_array()) return Internal(fmt::format("the guest agent's '{}' is not a list", key));
  for (const auto& v : *it) {
    if (!v.is_string())
      return Internal(fmt::format("the guest agent's '{}' holds a non-string", key));
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace vmctl::agent
