#include "base/frame.h"

#include <array>

#include "base/io.h"

namespace vmctl {
namespace {

uint32_t DecodeLength(std::string_view b) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(b[0])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(b[2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(b[3]));
}

Result<nlohmann::json> ParseBody(std::string_view body) {
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return InvalidArgument("frame is not a JSON object");
  }
  return parsed;
}

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string EncodeFrame(const nlohmann::json& message) {
  std::string body = message.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto n = static_cast<uint32_t>(body.size());
  std::string out;
  out.reserve(body.size() + 4);
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out += body;
  return out;
}

Result<std::optional<nlohmann::json>> FrameDecoder::Next() {
  // Compacting only once half the buffer is decoded keeps the copying linear overall.
  if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  std::string_view rest = std::string_view(buffer_).substr(consumed_);
  if (rest.size() < 4) return std::optional<nlohmann::json>();
  uint32_t n = DecodeLength(rest);
  if (n == 0 || n > max_frame_size_) {
    return InvalidArgument("bad frame length " + std::to_string(n) + " (limit " +
                           std::to_string(max_frame_size_) + " bytes)");
  }
  if (rest.size() < 4 + static_cast<size_t>(n)) return std::optional<nlohmann::json>();
  auto parsed = ParseBody(rest.substr(4, n));
  consumed_ += 4 + static_cast<size_t>(n);
  if (!parsed.ok()) return std::move(parsed).error();
  return std::optional<nlohmann::json>(std::move(parsed).value());
}

Result<void> WriteFrame(int fd, const nlohmann::json& message) {
  return WriteAll(fd, EncodeFrame(message));
}

Result<nlohmann::json> ReadFrame(int fd) {
  VMCTL_ASSIGN_OR_RETURN(std::string header, ReadExactly(fd, 4));
  uint32_t n = DecodeLength(header);
  if (n == 0 || n > kMaxFrameSize) return InvalidArgument("bad frame length " + std::to_string(n));
  VMCTL_ASSIGN_OR_RETURN(std::string body, ReadExactly(fd, n));
  return ParseBody(body);
}

std::string Base64Encode(std::string_view data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < data.size()) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    if (i + 1 < data.size()) v |= static_cast<uint8_t>(data[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < data.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  std::array<int, 256> table;
  table.fill(-1);
  for (size_t i = 0; i < kAlphabet.size(); ++i) table[static_cast<uint8_t>(kAlphabet[i])] = int(i);
  if (text.size() % 4 != 0) return InvalidArgument("bad base64 length");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = text[i + j];
      if (c == '=' && i + 4 == text.size() && j >= 2) {
        v[j] = 0;
        ++pad;
        continue;
      }
      v[j] = table[static_cast<uint8_t>(c)];
      if (v[j] < 0 || pad) return InvalidArgument("bad base64 character");
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>(n >> 16));
    if (pad < 2) out.push_back(static_cast<char>(n >> 8));
    if (pad < 1) out.push_back(static_cast<char>(n));
  }
  return out;
}

}  // namespace vmctl
