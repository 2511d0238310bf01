#ifndef VMCTL_CONTROLLER_SMTP_MAILER_H_
#define VMCTL_CONTROLLER_SMTP_MAILER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "controller/mailer.h"

namespace vmctl::controller {

struct SmtpOptions {
  std::string host;  // a name or an IPv4/IPv6 address
  uint16_t port = 25;
  std::string from;       // envelope sender and From: header
  std::string helo_name;  // EHLO argument: this host's name
  // The whole conversation (connect to QUIT) must finish within this time.
  std::chrono::milliseconds timeout = std::chrono::seconds(30);
};

// "HOST:PORT" (an IPv6 host in brackets) as `--smtp` takes it. kInvalidArgument otherwise. Pure.
Result<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view text);

// One SMTP reply (RFC 5321 4.2): "250-first\r\n250 last\r\n" is code 250 with two lines.
struct SmtpReply {
  int code = 0;
  std::vector<std::string> lines;  // text after the code and separator
  size_t consumed = 0;             // bytes of the buffer the reply took
};
// The first complete reply at the start of `buffer`, nullopt when more bytes are needed, or
// kUnavailable for bytes that are not a reply (bad code, mixed codes, a line over 2000 bytes,
// over 100 lines). Pure; callable on any byte string.
Result<std::optional<SmtpReply>> ParseSmtpReply(std::string_view buffer);

// The DATA payload for `body`: every line ends in CRLF, a line starting with '.' gets another
// (RFC 5321 4.5.2), and the terminating "." line is appended. Pure.
std::string DotStuff(std::string_view body);

// A mailer speaking plain SMTP (no TLS, no AUTH: meant for a relay on the host or a trusted
// network): EHLO (HELO when refused), MAIL FROM, RCPT TO, DATA, QUIT, each reply code checked.
// Non-ASCII addresses go out with SMTPUTF8 when the server offers it and are refused otherwise.
std::unique_ptr<Mailer> NewSmtpMailer(SmtpOptions options);

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_SMTP_MAILER_H_
