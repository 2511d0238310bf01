#include "controller/sharing_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "model/email.h"

namespace vmctl::controller {
namespace {

std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

std::optional<uint16_t> TcpPort(std::string_view entry) {
  auto slash = entry.find('/');
  if (slash != std::string_view::npos) {
    std::string proto(entry.substr(slash + 1));
    std::transform(proto.begin(), proto.end(), proto.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (proto != "tcp") return std::nullopt;
    entry = entry.substr(0, slash);
  }
  return ParsePort(entry);
}

bool IsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

Error BadDomain(std::string_view domain, std::string_view why) {
  return InvalidArgument(
      fmt::format("'{}' is not a domain name: {}", EscapeForDisplay(domain), why));
}

}  // namespace

uint16_t DefaultWebPort(const std::vector<std::string>& exposed_ports) {
  std::optional<uint16_t> smallest_high;
  for (const auto& entry : exposed_ports) {
    auto port = TcpPort(entry);
    if (!port) continue;
    if (*port == 80) return 80;
    if (*port >= 1024 && (!smallest_high || *port < *smallest_high)) smallest_high = port;
  }
  return smallest_high.value_or(80);
}

Result<std::string> NormalizeCustomDomain(std::string_view domain,
                                          std::string_view platform_domain) {
  std::string name(domain);
  if (!name.empty() && name.back() == '.') name.pop_back();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
  });
  if (name.empty()) return BadDomain(domain, "it is empty");
  if (name.size() > 253) return BadDomain(domain, "longer than 253 characters");
  size_t labels = 0;
  std::string_view last;
  for (size_t start = 0; start <= name.size();) {
    size_t end = std::min(name.find('.', start), name.size());
    std::string_view label(name.data() + start, end - start);
    if (label.empty()) return BadDomain(domain, "an empty label");
    if (label.size() > 63) return BadDomain(domain, "a label longer than 63 characters");
    if (!std::all_of(label.begin(), label.end(), IsLabelChar)) {
      return BadDomain(domain, "only letters, digits, '-' and '.' are allowed");
    }
    if (label.front() == '-' || label.back() == '-') {
      return BadDomain(domain, "a label starts or ends with '-'");
    }
    ++labels;
    last = label;
    start = end + 1;
  }
  if (labels < 2) return BadDomain(domain, "it needs at least two labels (example.com)");
  if (std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return BadDomain(domain, "an IP address is not a domain");
  }
  std::string platform(platform_domain);
  if (name == platform || (name.size() > platform.size() && name.ends_with("." + platform))) {
    return InvalidArgument(
        fmt::format("{} is under {}, where VMs have their names already; add a domain of your own",
                    name, platform));
  }
  return name;
}

Result<ShareTarget> ParseShareTarget(std::string_view target) {
  if (target.find('@') != std::string_view::npos) return ShareTarget{false, std::string(target)};
  bool link = target.size() == 8 && std::all_of(target.begin(), target.end(), [](char c) {
                return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
              });
  if (!link) {
    return InvalidArgument(
        fmt::format("'{}' is neither an email address nor a share link id (8 hex characters, as "
                    "`share ls` shows)",
                    EscapeForDisplay(target)));
  }
  return ShareTarget{true, std::string(target)};
}

Result<WebOrigin> ParseWebOrigin(std::string_view url) {
  constexpr std::string_view kScheme = "https://";
  auto bad = [&](std::string_view why) {
    return InvalidArgument(fmt::format("bad web URL '{}': {}", EscapeForDisplay(url), why));
  };
  if (!url.starts_with(kScheme)) return bad("it must start with https://");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return bad("only https://DOMAIN[:PORT] is allowed");
  }
  WebOrigin origin;
  auto colon = rest.find(':');
  if (colon != std::string_view::npos) {
    if (!ParsePort(rest.substr(colon + 1))) return bad("the port must be 1-65535");
    if (rest.substr(colon + 1) != "443") origin.port = std::string(rest.substr(colon));
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad("it names no host");
  for (char c : rest) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return bad("the host must be a domain name");
    origin.domain.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return origin;
}

}  // namespace vmctl::controller
