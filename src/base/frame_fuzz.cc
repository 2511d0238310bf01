// libFuzzer target for the length-prefixed JSON frames every stream speaks (guest agent, both
// sides; exec and log streams between daemon and CLI) and for the base64 carried inside them.
// First byte: 0 feeds the rest to one FrameDecoder in pieces; 1 decodes the rest as base64.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/frame.h"

namespace {

// Re-encoding a decoded frame decodes to the same value.
void CheckRoundTrip(const nlohmann::json& frame) {
  vmctl::FrameDecoder decoder;
  decoder.Feed(vmctl::EncodeFrame(frame));
  auto again = decoder.Next();
  if (!again.ok() || !again->has_value() || **again != frame) std::abort();
}

void DecodeFrames(std::string_view input) {
  // The input arrives in reads of varying size, as from a socket: a length byte before each piece.
  vmctl::FrameDecoder decoder;
  while (!input.empty()) {
    size_t piece = std::min<size_t>(1 + static_cast<uint8_t>(input[0]), input.size() - 1);
    decoder.Feed(input.substr(1, piece));
    input.remove_prefix(1 + piece);
    for (;;) {
      auto frame = decoder.Next();
      if (!frame.ok()) return;  // the stream is unusable from here
      if (!frame->has_value()) break;
      if (!(*frame)->is_object()) std::abort();
      CheckRoundTrip(**frame);
    }
  }
}

void DecodeBase64(std::string_view input) {
  auto decoded = vmctl::Base64Decode(input);
  if (!decoded.ok()) return;
  auto again = vmctl::Base64Decode(vmctl::Base64Encode(*decoded));
  if (!again.ok() || *again != *decoded) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    DecodeFrames(input);
  } else {
    DecodeBase64(input);
  }
  return 0;
}
