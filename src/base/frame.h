#ifndef VMCTL_BASE_FRAME_H_
#define VMCTL_BASE_FRAME_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl {

// Length-prefixed JSON frames: a 4-byte big-endian length N (1..kMaxFrameSize), then N bytes of
// one JSON object. Spoken by the guest agent, and by the daemon's exec stream to the CLI
// (docs/agent-protocol.md). Binary payloads travel base64-encoded in a "data" member.
inline constexpr uint32_t kMaxFrameSize = 16 * 1024 * 1024;

std::string EncodeFrame(const nlohmann::json& message);

// Incremental decoder for non-blocking readers: Feed bytes, then Next() until it returns nullopt.
// A pure function of the bytes fed (no I/O), so it can be fuzzed on a byte string.
class FrameDecoder {
 public:
  // Frames longer than max_frame_size are an error: a reader facing a less trusted peer (the
  // daemon reading a guest) sets it well below kMaxFrameSize, bounding what it buffers.
  explicit FrameDecoder(uint32_t max_frame_size = kMaxFrameSize)
      : max_frame_size_(max_frame_size) {}
  void Feed(std::string_view bytes) { buffer_.append(bytes); }
  // A complete frame, nullopt if more bytes are needed, or kInvalidArgument for a bad length or
  // bad JSON (the stream is then unusable).
  Result<std::optional<nlohmann::json>> Next();
  // Bytes fed but not yet returned as frames.
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  uint32_t max_frame_size_;
  std::string buffer_;
  // Decoded bytes at the front of buffer_, dropped in bulk: erasing each frame as it was decoded
  // made a read full of tiny frames cost quadratic time.
  size_t consumed_ = 0;
};

// Blocking helpers on an fd.
Result<void> WriteFrame(int fd, const nlohmann::json& message);
// kUnavailable "end of stream" on clean EOF.
Result<nlohmann::json> ReadFrame(int fd);

std::string Base64Encode(std::string_view data);
Result<std::string> Base64Decode(std::string_view text);

}  // namespace vmctl

#endif  // VMCTL_BASE_FRAME_H_
