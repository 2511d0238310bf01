#include "tls/client_hello.h"

namespace vmctl::tls {
namespace {

// A bounds-checked reader over one message; every read fails once past the end.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  bool Skip(size_t n) {
    if (n > data_.size()) return false;
    data_ = data_.subspan(n);
    return true;
  }
  std::optional<size_t> Number(size_t bytes) {
    if (bytes > data_.size()) return std::nullopt;
    size_t value = 0;
    for (size_t i = 0; i < bytes; ++i) value = value << 8 | data_[i];
    data_ = data_.subspan(bytes);
    return value;
  }
  // The next `length_bytes`-prefixed block.
  std::optional<Reader> Block(size_t length_bytes) {
    auto length = Number(length_bytes);
    if (!length || *length > data_.size()) return std::nullopt;
    Reader block(data_.first(*length));
    data_ = data_.subspan(*length);
    return block;
  }
  bool empty() const { return data_.empty(); }
  std::span<const uint8_t> rest() const { return data_; }

 private:
  std::span<const uint8_t> data_;
};

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kServerNameExtension = 0;
constexpr uint8_t kHostName = 0;

// The host name in a server_name extension's body; "" if it has none.
std::string HostNameIn(Reader extension) {
  auto list = extension.Block(2);
  while (list && !list->empty()) {
    auto type = list->Number(1);
    auto name = list->Block(2);
    if (!type || !name) break;
    if (*type == kHostName) {
      auto bytes = name->rest();
      return std::string(bytes.begin(), bytes.end());
    }
  }
  return "";
}

// The SNI name in a complete ClientHello message body (after its 4-byte header).
std::string ServerNameIn(Reader hello) {
  // client_version, random, then the variable-length session id, cipher suites, compression.
  if (!hello.Skip(2 + 32) || !hello.Block(1) || !hello.Block(2) || !hello.Block(1)) return "";
  auto extensions = hello.Block(2);
  while (extensions && !extensions->empty()) {
    auto type = extensions->Number(2);
    auto body = extensions->Block(2);
    if (!type || !body) break;
    if (*type == kServerNameExtension) return HostNameIn(*body);
  }
  return "";
}

}  // namespace

std::optional<std::string> PeekServerName(std::span<const uint8_t> bytes) {
  Reader record(bytes);
  auto type = record.Number(1);
  if (type && *type != kHandshakeRecord) return "";
  if (!type || !record.Skip(2)) return std::nullopt;
  auto length = record.Number(2);
  if (!length) return std::nullopt;
  if (*length > kMaxClientHelloPeek - 5) return "";
  if (record.rest().size() < *length) return std::nullopt;
  Reader fragment(record.rest().first(*length));
  auto message = fragment.Number(1);
  if (!message || *message != kClientHello) return "";
  auto hello = fragment.Block(3);
  if (!hello) return "";
  return ServerNameIn(*hello);
}

}  // namespace vmctl::tls
