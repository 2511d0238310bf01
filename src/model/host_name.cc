#include "model/host_name.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "base/ascii.h"
#include "model/vm.h"

namespace vmctl {
namespace {

bool DnsLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Lowercase dot-separated DNS labels, at most 253 bytes.
bool DnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = std::min(name.find('.', start), name.size());
    if (!DnsLabel(name.substr(start, end - start))) return false;
    start = end + 1;
  }
  return true;
}

// A name whose last label is all digits is an IPv4 literal (or one in disguise, like 0x7f.1),
// never a host name (RFC 3696 section 2).
bool LooksNumeric(std::string_view name) {
  std::string_view last = name.substr(name.rfind('.') + 1);
  return std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "host[:port]" without brackets: IPv6 literals are never VM hosts.
Result<std::string_view> StripPort(std::string_view host_header) {
  auto colon = host_header.find(':');
  if (colon == std::string_view::npos) return host_header;
  std::string_view port = host_header.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535) {
    return InvalidArgument("bad port in the Host header");
  }
  return host_header.substr(0, colon);
}

// The label before DOMAIN, the first `label_length` bytes of `host`: "web" or "web--8080".
Result<WebHost> ParseVmLabel(std::string host, size_t label_length) {
  WebHost web{WebHost::Kind::kVm, std::move(host), "", 0};
  std::string_view label = std::string_view(web.host).substr(0, label_length);
  web.vm = std::string(label);
  if (auto dashes = label.rfind("--"); dashes != std::string_view::npos) {
    std::string_view port = label.substr(dashes + 2);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || port.front() == '0' || ec != std::errc() ||
        end != port.data() + port.size() || value < 1 || value > 65535) {
      return InvalidArgument(
          fmt::format("bad VM host '{}' (expected VM--PORT, PORT 1-65535)", web.host));
    }
    web.vm = std::string(label.substr(0, dashes));
    web.port = static_cast<uint16_t>(value);
  }
  if (!ValidateVmName(web.vm).ok()) {
    return InvalidArgument(fmt::format("'{}' names no VM", web.host));
  }
  return web;
}

}  // namespace

Result<void> ValidateDomain(std::string_view domain) {
  if (domain.size() > 200 || !DnsName(domain)) {
    return InvalidArgument(fmt::format(
        "bad domain '{}' (expected a DNS name such as vm.example.com: labels of a-z, 0-9 and -)",
        domain));
  }
  return Ok();
}

std::string VmForDestination(std::string_view host) {
  std::string_view label = host.substr(0, host.find('.'));
  if (host.size() > 256 || !ValidateVmName(label).ok() || !DnsName(LowercaseAscii(host))) return "";
  return std::string(label);
}

Result<WebHost> ParseWebHost(std::string_view host_header, std::string_view domain) {
  if (host_header.size() > 260) return InvalidArgument("the Host header is too long");
  // One copy of the name per request, made here: the proxy parses every request's Host.
  VMCTL_ASSIGN_OR_RETURN(std::string_view name, StripPort(host_header));
  std::string host(name);
  LowercaseAsciiInPlace(host);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (!DnsName(host) || LooksNumeric(host)) {
    return InvalidArgument("the Host header is not a DNS name");
  }
  if (host == domain) return WebHost{WebHost::Kind::kApex, std::move(host), "", 0};
  if (host.size() > domain.size() + 1 && host.ends_with(domain) &&
      host[host.size() - domain.size() - 1] == '.') {
    std::string_view label = std::string_view(host).substr(0, host.size() - domain.size() - 1);
    if (label.find('.') != std::string_view::npos) {
      return InvalidArgument(fmt::format("'{}' names no VM", host));
    }
    return ParseVmLabel(std::move(host), label.size());
  }
  return WebHost{WebHost::Kind::kCustom, std::move(host), "", 0};
}

}  // namespace vmctl
