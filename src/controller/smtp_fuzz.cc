// libFuzzer target for what the account service parses: replies from the mail relay (which the
// daemon does not control), the --smtp address, the --registration mode, and the dot-stuffing of
// a mail body. The first byte picks which.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "controller/accounts.h"
#include "controller/smtp_mailer.h"

namespace {

namespace c = vmctl::controller;

void CheckReply(std::string_view bytes) {
  auto reply = c::ParseSmtpReply(bytes);
  if (!reply.ok() || !reply->has_value()) return;
  const auto& r = **reply;
  if (r.consumed == 0 || r.consumed > bytes.size() || r.lines.empty()) std::abort();
  if (r.code < 200 || r.code > 599) std::abort();
}

// The payload ends in the terminating line, and no line inside it is a lone "." that would end
// the mail early.
void CheckDotStuff(std::string_view body) {
  std::string data = c::DotStuff(body);
  std::string_view end = "\r\n.\r\n";
  if (data.size() < 3 || (data != ".\r\n" && !data.ends_with(end))) std::abort();
  std::string_view inner(data.data(), data.size() - 3);
  if (inner.find("\r\n.\r\n") != std::string_view::npos || inner.starts_with(".\r\n")) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckReply(input);
      break;
    case 1:
      if (auto hp = c::ParseHostPort(input); hp.ok() && (hp->first.empty() || hp->second == 0)) {
        std::abort();
      }
      break;
    case 2:
      (void)c::ParseRegistrationMode(input);
      break;
    case 3:
      CheckDotStuff(input);
      break;
  }
  return 0;
}
