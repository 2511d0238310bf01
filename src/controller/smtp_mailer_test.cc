#include "controller/smtp_mailer.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "base/unique_fd.h"

namespace vmctl::controller {
namespace {

TEST(ParseSmtpReply, SingleAndMultiLineReplies) {
  auto one = ParseSmtpReply("220 mail.example ESMTP\r\nrest");
  ASSERT_TRUE(one.ok() && one->has_value());
  EXPECT_EQ((*one)->code, 220);
  EXPECT_EQ((*one)->lines, std::vector<std::string>{"mail.example ESMTP"});
  EXPECT_EQ((*one)->consumed, 24u);

  auto many = ParseSmtpReply("250-mail.example\r\n250-SMTPUTF8\r\n250 8BITMIME\r\n");
  ASSERT_TRUE(many.ok() && many->has_value());
  EXPECT_EQ((*many)->code, 250);
  EXPECT_EQ((*many)->lines, (std::vector<std::string>{"mail.example", "SMTPUTF8", "8BITMIME"}));

  auto bare = ParseSmtpReply("354\n");
  ASSERT_TRUE(bare.ok() && bare->has_value());
  EXPECT_EQ((*bare)->code, 354);

  for (const char* partial : {"", "25", "250-first\r\n", "250 no end"}) {
    auto r = ParseSmtpReply(partial);
    ASSERT_TRUE(r.ok()) << partial;
    EXPECT_FALSE(r->has_value()) << partial;
  }
  for (const std::string& bad :
       {std::string("hello\r\n"), std::string("2500 x\r\n"), std::string("650 x\r\n"),
        std::string("250-a\r\n251 b\r\n"), std::string("25x ok\r\n"), std::string(2001, '2')}) {
    auto r = ParseSmtpReply(bad);
    EXPECT_FALSE(r.ok()) << bad;
  }
  std::string many_lines;
  for (int i = 0; i < 101; ++i) many_lines += "250-x\r\n";
  EXPECT_FALSE(ParseSmtpReply(many_lines).ok());
}

TEST(DotStuff, EndsLinesInCrlfAndDoublesLeadingDots) {
  EXPECT_EQ(DotStuff("a\n.b\n..c\r\nd"), "a\r\n..b\r\n...c\r\nd\r\n.\r\n");
  EXPECT_EQ(DotStuff("x\n"), "x\r\n.\r\n");
  EXPECT_EQ(DotStuff(".\n"), "..\r\n.\r\n");
  EXPECT_EQ(DotStuff(""), ".\r\n");
}

TEST(ParseHostPort, TakesHostsAndPorts) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:25").value(),
            (std::pair<std::string, uint16_t>{"127.0.0.1", 25}));
  EXPECT_EQ(ParseHostPort("mail.example.com:587").value().first, "mail.example.com");
  EXPECT_EQ(ParseHostPort("[::1]:2525").value().first, "::1");
  for (const char* bad : {"", "host", ":25", "host:", "host:0", "host:65536", "host:2x", "::1:25",
                          "ho st:25", "[::1:25"}) {
    EXPECT_FALSE(ParseHostPort(bad).ok()) << bad;
  }
}

// A scripted SMTP server on a loopback port, for one connection: `serve` gets the accepted fd.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> serve) {
    listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(::listen(listener_.get(), 1), 0);
    socklen_t len = sizeof(sa);
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this, serve] {
      UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (fd.valid()) serve(fd.get());
    });
  }
  ~FakeServer() {
    ::shutdown(listener_.get(), SHUT_RDWR);
    thread_.join();
  }
  uint16_t port() const { return port_; }

  // Reads up to and including the next "\r\n" (or `until`).
  static std::string ReadUntil(int fd, std::string_view until = "\r\n") {
    std::string got;
    char c;
    while (!got.ends_with(until) && ::read(fd, &c, 1) == 1) got += c;
    return got;
  }
  static void Say(int fd, std::string_view text) {
    ASSERT_EQ(::write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  }

 private:
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::thread thread_;
};

SmtpOptions Options(uint16_t port) {
  SmtpOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.from = "vmctl@host.example";
  o.helo_name = "host.example";
  o.timeout = std::chrono::seconds(5);
  return o;
}

TEST(SmtpMailer, SpeaksTheProtocolAndStuffsDots) {
  std::vector<std::string> commands;
  std::string data;
  FakeServer server([&](int fd) {
    FakeServer::Say(fd, "220 fake ESMTP\r\n");
    commands.push_back(FakeServer::ReadUntil(fd));
    FakeServer::Say(fd, "250-fake\r\n250 8BITMIME\r\n");
    commands.push_back(FakeServer::ReadUntil(fd));
    FakeServer::Say(fd, "250 ok\r\n");
    commands.push_back(FakeServer::ReadUntil(fd));
    FakeServer::Say(fd, "250 ok\r\n");
    commands.push_back(FakeServer::ReadUntil(fd));
    FakeServer::Say(fd, "354 go on\r\n");
    data = FakeServer::ReadUntil(fd, "\r\n.\r\n");
    FakeServer::Say(fd, "250 queued\r\n");
    commands.push_back(FakeServer::ReadUntil(fd));
    FakeServer::Say(fd, "221 bye\r\n");
  });
  auto mailer = NewSmtpMailer(Options(server.port()));
  auto sent = mailer->Send(Mail{"bob@example.org", "Hi", "line one\n.hidden\nend\n"});
  ASSERT_TRUE(sent.ok()) << sent.error().message();
  ASSERT_EQ(commands.size(), 5u);
  EXPECT_EQ(commands[0], "EHLO host.example\r\n");
  EXPECT_EQ(commands[1], "MAIL FROM:<vmctl@host.example>\r\n");
  EXPECT_EQ(commands[2], "RCPT TO:<bob@example.org>\r\n");
  EXPECT_EQ(commands[3], "DATA\r\n");
  EXPECT_EQ(commands[4], "QUIT\r\n");
  EXPECT_NE(data.find("\r\nTo: bob@example.org\r\n"), std::string::npos) << data;
  EXPECT_NE(data.find("\r\nSubject: Hi\r\n"), std::string::npos);
  EXPECT_NE(data.find("\r\n\r\nline one\r\n..hidden\r\nend\r\n.\r\n"), std::string::npos) << data;
}

TEST(SmtpMailer, ARefusedRecipientIsAnErrorWithTheServersReply) {
  FakeServer server([](int fd) {
    FakeServer::Say(fd, "220 fake\r\n");
    FakeServer::ReadUntil(fd);
    FakeServer::Say(fd, "502 no EHLO\r\n");
    FakeServer::ReadUntil(fd);
    FakeServer::Say(fd, "250 hello\r\n");
    FakeServer::ReadUntil(fd);
    FakeServer::Say(fd, "250 ok\r\n");
    FakeServer::ReadUntil(fd);
    FakeServer::Say(fd, "550 5.1.1 no such user\r\n");
    FakeServer::ReadUntil(fd);
  });
  auto sent = NewSmtpMailer(Options(server.port()))->Send(Mail{"nobody@example.org", "s", "b"});
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(sent.error().message(), fmt::format("mail server 127.0.0.1:{} refused the recipient: "
                                                "550 5.1.1 no such user",
                                                server.port()));
}

TEST(SmtpMailer, ASilentServerTimesOut) {
  FakeServer server([](int fd) { FakeServer::ReadUntil(fd); });
  SmtpOptions o = Options(server.port());
  o.timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto sent = NewSmtpMailer(o)->Send(Mail{"bob@example.org", "s", "b"});
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code(), ErrorCode::kDeadlineExceeded) << sent.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST(SmtpMailer, NoServerIsUnavailable) {
  uint16_t port;
  {
    FakeServer server([](int) {});
    port = server.port();
  }
  auto sent = NewSmtpMailer(Options(port))->Send(Mail{"bob@example.org", "s", "b"});
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code(), ErrorCode::kUnavailable) << sent.error().message();
}

TEST(SmtpMailer, NonAsciiAddressesNeedSmtputf8AndHeadersNoLineBreaks) {
  FakeServer server([](int fd) {
    FakeServer::Say(fd, "220 fake\r\n");
    FakeServer::ReadUntil(fd);
    FakeServer::Say(fd, "250 fake\r\n");
    FakeServer::ReadUntil(fd);
  });
  auto sent =
      NewSmtpMailer(Options(server.port()))->Send(Mail{"j\xc3\xb6rg@example.org", "s", "b"});
  ASSERT_FALSE(sent.ok());
  EXPECT_EQ(sent.error().code(), ErrorCode::kInvalidArgument);
  auto injected = NewSmtpMailer(Options(1))->Send(Mail{"a@b.org", "x\r\nBcc: c@d.org", "b"});
  EXPECT_EQ(injected.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace vmctl::controller
