#include "acme/options.h"

#include <unistd.h>

#include <charconv>

#include "acme/hook_publisher.h"
#include "acme/https_client.h"
#include "acme/rfc2136_publisher.h"
#include "base/io.h"
#include "model/email.h"

namespace vmctl::acme {

Result<std::pair<std::string, std::string>> ParseHostPort(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return InvalidArgument("not HOST:PORT");
  std::string_view host = text.substr(0, colon), port = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return InvalidArgument("bad [IPv6] host");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return InvalidArgument("an IPv6 host needs brackets: [ADDRESS]:PORT");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return InvalidArgument("bad port '" + std::string(port) + "'");
  }
  return std::pair(std::string(host), std::to_string(value));
}

Result<std::optional<AcmeOptions>> ParseAcmeFlags(const AcmeFlags& f) {
  if (f.directory_url.empty()) {
    if (!f.email.empty() || !f.ca_bundle.empty() || !f.dns_hook.empty() || !f.dns_rfc2136.empty() ||
        !f.tsig_key.empty()) {
      return InvalidArgument("--acme-* flags need --acme-directory URL");
    }
    return std::optional<AcmeOptions>();
  }
  AcmeOptions o;
  if (!ParseHttpsUrl(f.directory_url).ok()) {
    return InvalidArgument("--acme-directory " + f.directory_url + " is not an https:// URL");
  }
  o.directory_url = f.directory_url;
  if (!f.email.empty()) {
    VMCTL_ASSIGN_OR_RETURN(o.email, NormalizeEmail(f.email).WithContext("--acme-email"));
  }
  if (!f.ca_bundle.empty()) {
    if (!std::filesystem::is_regular_file(f.ca_bundle)) {
      return InvalidArgument("--acme-ca-bundle " + f.ca_bundle + ": no such file");
    }
    o.ca_bundle = std::filesystem::absolute(f.ca_bundle);
  }
  if (f.dns_hook.empty() == f.dns_rfc2136.empty()) {
    return InvalidArgument(
        "ACME needs one way to publish DNS-01 records: --acme-dns-hook CMD or "
        "--acme-dns-rfc2136 HOST:PORT (not both)");
  }
  if (!f.dns_hook.empty()) {
    if (!f.tsig_key.empty()) return InvalidArgument("--acme-tsig-key goes with --acme-dns-rfc2136");
    if (::access(f.dns_hook.c_str(), X_OK) != 0 || !std::filesystem::is_regular_file(f.dns_hook)) {
      return InvalidArgument("--acme-dns-hook " + f.dns_hook + " is not an executable file");
    }
    o.dns_hook = std::filesystem::absolute(f.dns_hook);
    return std::optional<AcmeOptions>(std::move(o));
  }
  auto host_port = ParseHostPort(f.dns_rfc2136);
  if (!host_port.ok()) {
    return InvalidArgument("--acme-dns-rfc2136 " + f.dns_rfc2136 + ": " +
                           host_port.error().message());
  }
  std::tie(o.rfc2136_host, o.rfc2136_port) = *host_port;
  if (f.tsig_key.empty()) return InvalidArgument("--acme-dns-rfc2136 needs --acme-tsig-key FILE");
  auto text = ReadFile(f.tsig_key);
  if (!text.ok()) return InvalidArgument("--acme-tsig-key: " + text.error().message());
  auto key = ParseTsigKeyFile(*text);
  if (!key.ok())
    return InvalidArgument("--acme-tsig-key " + f.tsig_key + ": " + key.error().message());
  o.tsig_key = std::move(*key);
  return std::optional<AcmeOptions>(std::move(o));
}

std::unique_ptr<DnsPublisher> MakeDnsPublisher(const AcmeOptions& options) {
  if (!options.dns_hook.empty()) return std::make_unique<HookPublisher>(options.dns_hook);
  return std::make_unique<Rfc2136Publisher>(options.rfc2136_host, options.rfc2136_port,
                                            *options.tsig_key);
}

}  // namespace vmctl::acme
