// libFuzzer target for the pure checks of what a guest sends: a byte stream of frames through
// DecodeGuestMessages (the reader's parse of every frame), and one JSON value as a `boot_status`
// reply. The first byte picks which. The guest is the least trusted party, so both must turn any
// input into messages or an error, never an exception or a crash.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "agent/boot_status.h"
#include "agent/protocol.h"

namespace {

void CheckStream(std::string_view bytes) {
  auto messages = vmctl::agent::DecodeGuestMessages(bytes);
  if (!messages.ok()) return;
  for (const auto& m : *messages) {
    // Output is base64 in the frame, so decoded data is never longer than the stream.
    if (m.data.size() > bytes.size()) std::abort();
  }
}

void CheckBootStatus(std::string_view text) {
  auto reply = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (reply.is_discarded()) return;
  auto status = vmctl::agent::ParseBootStatus(reply);
  if (!status.ok()) return;
  // Its strings reach terminals: printable ASCII only.
  for (const auto* s : {&status->state, &status->init, &status->detail}) {
    for (unsigned char c : *s) {
      if (c < 0x20 || c > 0x7e) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    CheckStream(input);
  } else {
    CheckBootStatus(input);
  }
  return 0;
}
