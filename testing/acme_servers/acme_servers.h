#ifndef VMCTL_TESTING_ACME_SERVERS_ACME_SERVERS_H_
#define VMCTL_TESTING_ACME_SERVERS_ACME_SERVERS_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/process.h"
#include "base/result.h"

namespace vmctl::testing {

// Which DNS server pebble's validator asks for DNS-01 records.
enum class AcmeDns {
  // pebble-challtestsrv: records are set through its management API (dns_hook() does that).
  kChallTestSrv,
  // A real knotd serving `zone`, updated by RFC 2136 signed with tsig_key_file() (or dns_hook(),
  // which calls knsupdate with that key).
  kKnot,
};

struct AcmeServersOptions {
  // Config, keys, zone files and logs go here; it must exist. Nothing is removed from it.
  std::filesystem::path dir;
  AcmeDns dns = AcmeDns::kChallTestSrv;
  // The zone knot serves and accepts updates for.
  std::string zone = "vmctl.localhost";
  // Runs each server (and every probe of it) through this argv prefix, e.g. {"ip", "netns",
  // "exec", NS} so a daemon in that namespace reaches them on its 127.0.0.1; empty: here. The
  // prefix must exec the program so its pid is the server's.
  std::vector<std::string> prefix;
};

// Debian's pebble (an ACME server with a fresh issuing root at every start) on 127.0.0.1 with a
// TLS certificate of its own, and the DNS server its validator asks, as real peers for ACME
// clients. Owns the processes, which it kills by PID when destroyed. Not thread-safe.
class AcmeServers {
 public:
  // Starts the DNS server, then pebble, and returns once both accept connections. kUnavailable
  // with the tail of the log if one exits or does not listen within 10 s; kInternal if its
  // files cannot be made.
  static Result<std::unique_ptr<AcmeServers>> Start(AcmeServersOptions options);
  ~AcmeServers();
  AcmeServers(const AcmeServers&) = delete;
  AcmeServers& operator=(const AcmeServers&) = delete;

  // Kills pebble (an ACME server that is down), and starts it again with the same ports; the
  // restarted one has a new root and knows no earlier account or order. It issues certificates
  // valid for `validity` (0: pebble's default of 5 years), so a short one makes a client renew.
  void StopPebble();
  Result<void> StartPebble(std::chrono::seconds validity = std::chrono::seconds(0));

  // "https://127.0.0.1:PORT/dir".
  std::string directory_url() const;
  // Pebble's own TLS certificate, the CA bundle an ACME client needs to trust it.
  std::filesystem::path ca_bundle() const { return options_.dir / "pebble-tls.pem"; }
  // The issuing root of the running pebble (its management API's /roots/0), PEM.
  Result<std::string> Root() const;
  // An executable `HOOK add|del NAME VALUE` that publishes or withdraws a TXT record in the DNS
  // server (challtestsrv's del drops every value of NAME).
  std::filesystem::path dns_hook() const { return options_.dir / "dns-hook"; }
  // kKnot only: the TSIG key file (bind's format) knot accepts updates of the zone with.
  std::filesystem::path tsig_key_file() const { return options_.dir / "tsig.key"; }
  // kKnot only: the key's base64 secret.
  static std::string_view TsigSecret();
  // `kdig +short TXT name` against the DNS server: one quoted value per line.
  std::string Dig(const std::string& name) const;

  int pebble_port() const { return pebble_port_; }
  int management_port() const { return management_port_; }
  int dns_port() const { return dns_port_; }
  // The port pebble's validator connects to on a name's address for HTTP-01.
  int http01_port() const { return http01_port_; }
  std::filesystem::path pebble_log() const { return options_.dir / "pebble.log"; }
  std::filesystem::path dns_log() const;

 private:
  explicit AcmeServers(AcmeServersOptions options) : options_(std::move(options)) {}
  Result<void> StartAll();
  Result<void> StartKnot();
  Result<void> WriteHook();
  Result<ProcessRef> StartServer(const std::vector<std::string>& argv,
                                 const std::filesystem::path& log, int port) const;
  std::vector<std::string> Prefixed(std::vector<std::string> argv) const;

  AcmeServersOptions options_;
  int pebble_port_ = 0, management_port_ = 0, dns_port_ = 0, challtest_port_ = 0, http01_port_ = 0;
  ProcessRef dns_server_, pebble_;
};

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_ACME_SERVERS_ACME_SERVERS_H_
