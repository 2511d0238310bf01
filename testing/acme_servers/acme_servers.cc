#include "testing/acme_servers/acme_servers.h"

#include <fmt/format.h>

#include <thread>

#include "base/io.h"
#include "testing/sshd/local_sshd.h"

namespace vmctl::testing {

namespace fs = std::filesystem;

// The TSIG key knot accepts updates of the zone with.
constexpr std::string_view kTsigSecret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

std::string_view AcmeServers::TsigSecret() { return kTsigSecret; }

Result<std::unique_ptr<AcmeServers>> AcmeServers::Start(AcmeServersOptions options) {
  std::unique_ptr<AcmeServers> servers(new AcmeServers(std::move(options)));
  VMCTL_TRY(servers->StartAll());
  return servers;
}

AcmeServers::~AcmeServers() {
  StopPebble();
  if (dns_server_.pid != 0) (void)dns_server_.Kill();
}

std::vector<std::string> AcmeServers::Prefixed(std::vector<std::string> argv) const {
  argv.insert(argv.begin(), options_.prefix.begin(), options_.prefix.end());
  return argv;
}

Result<ProcessRef> AcmeServers::StartServer(const std::vector<std::string>& argv,
                                            const fs::path& log, int port) const {
  VMCTL_ASSIGN_OR_RETURN(ProcessRef process, SpawnDetached(Prefixed(argv), {.log_file = log}));
  // Probed through the prefix, so a server in another network namespace is reached there.
  const auto probe =
      Prefixed({"bash", "-c", fmt::format(": </dev/tcp/127.0.0.1/{} 2>/dev/null", port)});
  for (int i = 0; i < 200; ++i) {
    auto connected = RunCommand(probe);
    if (connected.ok() && connected->exit_code == 0) return process;
    if (!process.Alive()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  (void)process.Kill();
  return Unavailable(argv[0] + " did not start: " + TailFile(log, 2000));
}

Result<void> AcmeServers::StartAll() {
  const fs::path& dir = options_.dir;
  // Ports free here; in a fresh network namespace every port is.
  for (int* port :
       {&pebble_port_, &management_port_, &dns_port_, &challtest_port_, &http01_port_}) {
    VMCTL_ASSIGN_OR_RETURN(*port, UnusedLoopbackPort());
  }
  VMCTL_TRY(RunCommandChecked(
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-subj", "/CN=pebble", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2",
       "-keyout", (dir / "pebble-tls.key").string(), "-out", ca_bundle().string()}));
  if (options_.dns == AcmeDns::kKnot) {
    VMCTL_TRY(StartKnot());
  } else {
    VMCTL_ASSIGN_OR_RETURN(
        dns_server_,
        StartServer({"pebble-challtestsrv", "-dns01", fmt::format("127.0.0.1:{}", dns_port_),
                     "-management", fmt::format("127.0.0.1:{}", challtest_port_), "-http01", "",
                     "-https01", "", "-tlsalpn01", "", "-defaultIPv6", ""},
                    dns_log(), challtest_port_));
  }
  VMCTL_TRY(WriteHook());
  return StartPebble();
}

Result<void> AcmeServers::StartPebble(std::chrono::seconds validity) {
  const fs::path& dir = options_.dir;
  VMCTL_TRY(WriteFileAtomic(
      dir / "pebble.json",
      fmt::format(R"({{"pebble": {{"listenAddress": "127.0.0.1:{}",
  "managementListenAddress": "127.0.0.1:{}", "certificate": "{}", "privateKey": "{}",
  "httpPort": {}, "tlsPort": 5001, "ocspResponderURL": "",
  "externalAccountBindingRequired": false{}}}}})",
                  pebble_port_, management_port_, ca_bundle().string(),
                  (dir / "pebble-tls.key").string(), http01_port_,
                  validity.count() == 0
                      ? ""
                      : fmt::format(R"(, "certificateValidityPeriod": {})", validity.count()))));
  VMCTL_ASSIGN_OR_RETURN(
      pebble_, StartServer({"env", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_AUTHZREUSE=0", "pebble",
                            "-config", (options_.dir / "pebble.json").string(), "-dnsserver",
                            fmt::format("127.0.0.1:{}", dns_port_)},
                           pebble_log(), pebble_port_));
  return Ok();
}

void AcmeServers::StopPebble() {
  if (pebble_.pid != 0) (void)pebble_.Kill();
  pebble_ = {};
}

Result<void> AcmeServers::StartKnot() {
  const fs::path knot = options_.dir / "knot";
  fs::create_directories(knot);
  VMCTL_TRY(WriteFileAtomic(knot / "knot.conf",
                            fmt::format(R"(server:
  rundir: "{0}"
  listen: 127.0.0.1@{1}
  user: root:root
database:
  storage: "{0}"
key:
  - id: acme-key
    algorithm: hmac-sha256
    secret: {2}
acl:
  - id: acme
    key: acme-key
    action: update
template:
  - id: default
    storage: "{0}"
    file: "%s.zone"
zone:
  - domain: {3}
    acl: acme
log:
  - target: stderr
    any: info
)",
                                        knot.string(), dns_port_, kTsigSecret, options_.zone)));
  VMCTL_TRY(WriteFileAtomic(knot / (options_.zone + ".zone"),
                            fmt::format("$ORIGIN {}.\n$TTL 60\n"
                                        "@ SOA ns admin 1 60 60 600 60\n@ NS ns\nns A 127.0.0.1\n",
                                        options_.zone)));
  VMCTL_TRY(WriteFileAtomic(tsig_key_file(),
                            fmt::format("key \"acme-key\" {{\n  algorithm hmac-sha256;\n"
                                        "  secret \"{}\";\n}};\n",
                                        kTsigSecret),
                            0600));
  VMCTL_ASSIGN_OR_RETURN(dns_server_, StartServer({"knotd", "-c", (knot / "knot.conf").string()},
                                                  dns_log(), dns_port_));
  return Ok();
}

Result<void> AcmeServers::WriteHook() {
  std::string script;
  if (options_.dns == AcmeDns::kKnot) {
    script = fmt::format(
        "#!/bin/sh\nset -e\n"
        "case \"$1\" in\n"
        "  add) op=\"add $2. 60 TXT \\\"$3\\\"\" ;;\n"
        "  del) op=\"del $2. TXT \\\"$3\\\"\" ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n"
        "printf 'server 127.0.0.1 {}\\nzone {}.\\nupdate %s\\nsend\\n' \"$op\" |\n"
        "  knsupdate -y hmac-sha256:acme-key:{}\n",
        dns_port_, options_.zone, kTsigSecret);
  } else {
    // challtestsrv's set-txt adds a value to a name, clear-txt drops all of that name's values.
    const std::string api = fmt::format("http://127.0.0.1:{}", challtest_port_);
    script =
        "#!/bin/sh\nset -e\n"
        "case \"$1\" in\n"
        "  add) curl -sf -d \"{\\\"host\\\":\\\"$2.\\\",\\\"value\\\":\\\"$3\\\"}\" " +
        api +
        "/set-txt ;;\n"
        "  del) curl -sf -d \"{\\\"host\\\":\\\"$2.\\\"}\" " +
        api +
        "/clear-txt ;;\n"
        "  *) exit 2 ;;\n"
        "esac\n";
  }
  return WriteFileAtomic(dns_hook(), script, 0755);
}

std::string AcmeServers::directory_url() const {
  return fmt::format("https://127.0.0.1:{}/dir", pebble_port_);
}

fs::path AcmeServers::dns_log() const {
  return options_.dir / (options_.dns == AcmeDns::kKnot ? "knotd.log" : "challtestsrv.log");
}

Result<std::string> AcmeServers::Root() const {
  VMCTL_ASSIGN_OR_RETURN(
      RunOutput out,
      RunCommandChecked(Prefixed({"curl", "-sSf", "--cacert", ca_bundle().string(),
                                  fmt::format("https://127.0.0.1:{}/roots/0", management_port_)})));
  return out.out;
}

std::string AcmeServers::Dig(const std::string& name) const {
  auto out = RunCommand(
      Prefixed({"kdig", "@127.0.0.1", "-p", std::to_string(dns_port_), "+short", "TXT", name}));
  return out.ok() ? out->out : out.error().message();
}

}  // namespace vmctl::testing
