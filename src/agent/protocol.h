#ifndef VMCTL_AGENT_PROTOCOL_H_
#define VMCTL_AGENT_PROTOCOL_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client.h"
#include "base/result.h"

namespace vmctl::agent {

// The host's checks of what a guest sends (docs/agent-protocol.md). The guest is the least
// trusted party: every frame goes through ParseGuestMessage before the client acts on it, and a
// frame that fails is a protocol violation that ends the connection. Pure functions, no I/O.

// No guest-to-host frame legitimately comes near this (output travels in 16 KiB pieces, replies
// are small), so the daemon buffers at most this much of a frame in progress per VM.
inline constexpr uint32_t kMaxGuestFrameSize = 1 << 20;

struct GuestMessage {
  enum class Kind {
    kHello,   // the agent began a session: `hello`
    kReply,   // the answer to request `id`
    kOutput,  // `data` of `stream` (on stderr when `is_stderr`)
    kExit,    // `stream` ended with `exit_code`
    kOther,   // a type this daemon does not know: ignored, for agents newer than the daemon
  };
  Kind kind = Kind::kOther;
  Hello hello;
  int64_t id = 0;
  // kReply: the result members (without id and ok) on success, else the agent's error.
  std::optional<Error> error;
  nlohmann::json result;
  int64_t stream = 0;
  bool is_stderr = false;
  std::string data;  // base64-decoded
  int exit_code = 0;
};

// kInvalidArgument naming the offending member for a frame of the wrong shape.
Result<GuestMessage> ParseGuestMessage(const nlohmann::json& frame);

// The hello fields of a hello frame or of the reply to a hello request; control characters are
// replaced and long values cut, since they end up in events and on terminals.
Result<Hello> ParseHello(const nlohmann::json& frame);

// Every message in a byte stream from a guest, as the client's reader sees them; stops at the
// first violation. For fuzzing and tests.
Result<std::vector<GuestMessage>> DecodeGuestMessages(std::string_view bytes);

// A member of an agent's reply to a request: `fallback` when absent, kInternal naming the member
// when it has another type (the guest is not to be trusted with the shape of its answers).
Result<bool> ReplyBool(const nlohmann::json& reply, const char* key, bool fallback);
Result<int64_t> ReplyInt(const nlohmann::json& reply, const char* key, int64_t fallback);
Result<std::vector<std::string>> ReplyStrings(const nlohmann::json& reply, const char* key);

}  // namespace vmctl::agent

#endif  // VMCTL_AGENT_PROTOCOL_H_
