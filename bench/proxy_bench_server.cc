// The vmctl side of the proxy benchmark (proxy_bench.cc): the real HTTPS front end of
// `vmctl serve` (proxy::Server and the real proxy::Gatekeeper, with the certificates of a
// tls::CertStore) in a process of its own, so that its memory can be read apart from the client's.
// Only the controller is replaced: in-memory services (testing/fake_web_services) describe one
// running, public VM named "web" at the upstream's address, so no TCG guest is involved.
//
// Usage: vmctl_proxy_bench_server --certs DIR --listen ADDR:PORT --upstream ADDRESS
//        [--upstream-port 80] [--threads N]
// Prints "ready" once it serves; ends on SIGTERM or SIGINT.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "proxy/gatekeeper.h"
#include "proxy/server.h"
#include "testing/fake_web_services/fake_web_services.h"
#include "tls/cert_store.h"

namespace vmctl::bench {
namespace {

constexpr const char* kDomain = "vmctl.localhost";

int Fail(const std::string& what, const Error& error) {
  std::cerr << "proxy_bench_server: " << what << ": " << error.message() << "\n";
  return 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"vmctl HTTPS proxy, for its benchmark"};
  std::string certs, listen, upstream;
  int upstream_port = 80;
  proxy::ProxyOptions options;  // its defaults are the daemon's
  app.add_option("--certs", certs, "a CertStore directory")->required();
  app.add_option("--listen", listen, "ADDR:PORT")->required();
  app.add_option("--upstream", upstream, "the VM's address")->required();
  app.add_option("--upstream-port", upstream_port)->capture_default_str();
  app.add_option("--threads", options.threads, "event-loop threads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Blocked before any thread starts, so every thread leaves them to sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto store = tls::CertStore::Open(certs, kDomain);
  if (!store.ok()) return Fail("open " + certs, store.error());
  testing::FakeAuthService auth(kDomain);
  testing::FakeSharingService sharing(kDomain);
  sharing.AddUser("owner", "owner@example.com");
  VmRecord vm;
  vm.id = "0123456789ab";
  vm.owner = "owner";
  vm.name = "web";
  vm.state = VmState::kRunning;
  vm.address = upstream;
  sharing.AddVm(vm);
  if (auto set = sharing.SetPublic("owner", "web", true); !set.ok()) {
    return Fail("share set-public", set.error());
  }
  if (auto set = sharing.SetWebPort("owner", "web", static_cast<uint16_t>(upstream_port));
      !set.ok()) {
    return Fail("share port", set.error());
  }
  auto gatekeeper = proxy::Gatekeeper::Create(
      {.domain = kDomain, .web_url = "https://vmctl.localhost", .ssh_command = "ssh localhost"},
      auth, sharing);
  if (!gatekeeper.ok()) return Fail("gatekeeper", gatekeeper.error());

  options.https_listen = {listen};
  options.http_listen = "";
  options.domain = kDomain;
  proxy::Server server(options, **store, **gatekeeper, nullptr);
  if (auto started = server.Start(); !started.ok()) return Fail("start", started.error());
  std::printf("ready\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  server.Stop();
  return 0;
}

}  // namespace
}  // namespace vmctl::bench

int main(int argc, char** argv) { return vmctl::bench::Main(argc, argv); }
