#include "controller/smtp_mailer.h"

#include <fmt/format.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <initializer_list>
#include <random>

#include "base/unique_fd.h"

namespace vmctl::controller {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxReplyLine = 2000;
constexpr size_t kMaxReplyLines = 100;

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// One SMTP conversation with a deadline for all of it.
class Conversation {
 public:
  Conversation(const SmtpOptions& options)
      : options_(options), deadline_(Clock::now() + options.timeout) {}

  Result<void> Connect() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    std::string port = std::to_string(options_.port);
    if (int rc = ::getaddrinfo(options_.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
      return Unavailable(
          fmt::format("cannot resolve mail server {}: {}", options_.host, ::gai_strerror(rc)));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, ::freeaddrinfo);
    Error last = Unavailable(fmt::format("mail server {} has no address", Where()));
    for (addrinfo* a = found; a; a = a->ai_next) {
      UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) return ErrnoError("socket", errno);
      if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = Unavailable(
            fmt::format("cannot connect to mail server {}: {}", Where(), std::strerror(errno)));
        continue;
      }
      VMCTL_TRY(Wait(fd.get(), POLLOUT, "connecting"));
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = Unavailable(
            fmt::format("cannot connect to mail server {}: {}", Where(), std::strerror(err)));
        continue;
      }
      fd_ = std::move(fd);
      return Ok();
    }
    return last;
  }

  // Reads a reply and checks its code is one of `ok`; `what` names the step for the error.
  Result<SmtpReply> Expect(std::initializer_list<int> ok, std::string_view what) {
    VMCTL_ASSIGN_OR_RETURN(SmtpReply reply, Read());
    if (std::find(ok.begin(), ok.end(), reply.code) == ok.end()) {
      return Unavailable(fmt::format("mail server {} refused {}: {} {}", Where(), what, reply.code,
                                     reply.lines.empty() ? "" : reply.lines.front()));
    }
    return reply;
  }

  Result<SmtpReply> Command(const std::string& line, std::initializer_list<int> ok,
                            std::string_view what) {
    VMCTL_TRY(Write(line + "\r\n"));
    return Expect(ok, what);
  }

  Result<void> Write(std::string_view data) {
    while (!data.empty()) {
      VMCTL_TRY(Wait(fd_.get(), POLLOUT, "sending"));
      ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return Unavailable(fmt::format("mail server {}: {}", Where(), std::strerror(errno)));
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Ok();
  }

 private:
  std::string Where() const { return fmt::format("{}:{}", options_.host, options_.port); }

  Result<void> Wait(int fd, short events, std::string_view doing) {
    while (true) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now());
      if (left.count() <= 0) {
        return DeadlineExceeded(fmt::format("mail server {} did not answer within {} s ({})",
                                            Where(), options_.timeout.count() / 1000.0, doing));
      }
      pollfd p{fd, events, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left.count()));
      if (rc > 0) return Ok();
      if (rc < 0 && errno != EINTR) return ErrnoError("poll", errno);
    }
  }

  Result<SmtpReply> Read() {
    while (true) {
      VMCTL_ASSIGN_OR_RETURN(auto reply, ParseSmtpReply(buffer_));
      if (reply) {
        buffer_.erase(0, reply->consumed);
        return *std::move(reply);
      }
      VMCTL_TRY(Wait(fd_.get(), POLLIN, "waiting for its reply"));
      char chunk[4096];
      ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
      if (n == 0) return Unavailable(fmt::format("mail server {} closed the connection", Where()));
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return Unavailable(fmt::format("mail server {}: {}", Where(), std::strerror(errno)));
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  const SmtpOptions& options_;
  Clock::time_point deadline_;
  UniqueFd fd_;
  std::string buffer_;
};

std::string DateHeader() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return text;
}

class SmtpMailer final : public Mailer {
 public:
  explicit SmtpMailer(SmtpOptions options) : options_(std::move(options)) {}

  Result<void> Send(const Mail& mail) override {
    for (std::string_view field : {std::string_view(mail.to), std::string_view(mail.subject),
                                   std::string_view(options_.from)}) {
      if (field.find_first_of("\r\n") != std::string_view::npos) {
        return InvalidArgument("a mail header holds a line break");
      }
    }
    Conversation smtp(options_);
    VMCTL_TRY(smtp.Connect());
    VMCTL_TRY(smtp.Expect({220}, "the connection"));
    bool utf8 = false;
    auto ehlo = smtp.Command("EHLO " + options_.helo_name, {250}, "EHLO");
    if (ehlo.ok()) {
      for (const auto& line : ehlo->lines) utf8 = utf8 || line == "SMTPUTF8";
    } else if (ehlo.error().code() == ErrorCode::kUnavailable) {
      VMCTL_TRY(smtp.Command("HELO " + options_.helo_name, {250}, "HELO"));
    } else {
      return ehlo.error();
    }
    bool ascii = IsAscii(mail.to) && IsAscii(options_.from);
    if (!ascii && !utf8) {
      return InvalidArgument(
          fmt::format("the mail server cannot deliver to the non-ASCII address {} (it does not "
                      "offer SMTPUTF8)",
                      mail.to));
    }
    VMCTL_TRY(smtp.Command(fmt::format("MAIL FROM:<{}>{}", options_.from, ascii ? "" : " SMTPUTF8"),
                           {250}, "the sender"));
    VMCTL_TRY(smtp.Command(fmt::format("RCPT TO:<{}>", mail.to), {250, 251}, "the recipient"));
    VMCTL_TRY(smtp.Command("DATA", {354}, "DATA"));
    thread_local std::mt19937_64 random{std::random_device{}()};
    std::string message = fmt::format(
        "From: {}\nTo: {}\nSubject: {}\nDate: {}\nMessage-ID: <{:016x}@{}>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{}",
        options_.from, mail.to, mail.subject, DateHeader(), random(), options_.helo_name,
        mail.body);
    VMCTL_TRY(smtp.Write(DotStuff(message)));
    VMCTL_TRY(smtp.Expect({250}, "the message"));
    // The mail is accepted; a server that hangs up instead of answering QUIT changes nothing.
    (void)smtp.Command("QUIT", {221}, "QUIT");
    return Ok();
  }

 private:
  SmtpOptions options_;
};

}  // namespace

Result<std::pair<std::string, uint16_t>> ParseHostPort(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(fmt::format("bad mail server '{}' (expected HOST:PORT)", text));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();
  }
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':';
    if (!ok) return bad();
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return bad();
  }
  return std::pair{std::string(host), static_cast<uint16_t>(value)};
}

Result<std::optional<SmtpReply>> ParseSmtpReply(std::string_view buffer) {
  SmtpReply reply;
  size_t pos = 0;
  while (true) {
    size_t nl = buffer.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (buffer.size() - pos > kMaxReplyLine) {
        return Unavailable("the mail server sent a reply line over 2000 bytes");
      }
      return std::optional<SmtpReply>();
    }
    std::string_view line = buffer.substr(pos, nl - pos);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.size() > kMaxReplyLine) {
      return Unavailable("the mail server sent a reply line over 2000 bytes");
    }
    int code = 0;
    bool digits = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
                  line[1] <= '9' && line[2] >= '0' && line[2] <= '9';
    if (digits) code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    char separator = line.size() > 3 ? line[3] : ' ';
    if (!digits || (separator != ' ' && separator != '-') ||
        (reply.code != 0 && code != reply.code)) {
      return Unavailable("the mail server sent something that is not an SMTP reply");
    }
    reply.code = code;
    reply.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    pos = nl + 1;
    if (separator == ' ') {
      reply.consumed = pos;
      return std::optional<SmtpReply>(std::move(reply));
    }
    if (reply.lines.size() >= kMaxReplyLines) {
      return Unavailable("the mail server sent a reply of over 100 lines");
    }
  }
}

std::string DotStuff(std::string_view body) {
  std::string out;
  size_t start = 0;
  while (start < body.size()) {
    size_t nl = body.find('\n', start);
    std::string_view line =
        body.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.starts_with('.')) out += '.';
    out.append(line);
    out += "\r\n";
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  out += ".\r\n";
  return out;
}

std::unique_ptr<Mailer> NewSmtpMailer(SmtpOptions options) {
  return std::make_unique<SmtpMailer>(std::move(options));
}

}  // namespace vmctl::controller
