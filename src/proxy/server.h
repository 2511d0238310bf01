#ifndef VMCTL_PROXY_SERVER_H_
#define VMCTL_PROXY_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "proxy/access.h"
#include "proxy/acme_challenges.h"
#include "tls/certificate_source.h"

namespace vmctl::proxy {

struct ProxyOptions {
  std::vector<std::string> https_listen = {"127.0.0.1:8443"};  // ADDR:PORT each; none: off
  std::string http_listen = "127.0.0.1:8080";                  // empty: off
  std::string domain = "vmctl.localhost";
  std::string ssh_command = "ssh vmctl.localhost";  // how users reach the gateway, for pages
  std::string api_socket;                           // the daemon's API, for kForwardToApi
  size_t max_connections = 20000;                   // client connections; more are closed
  size_t header_limit = 16 * 1024;                  // request head bytes; more: 431
  std::chrono::milliseconds header_timeout{10000};  // TLS handshake, and a request head
  // A first handshake for a name whose certificate is being issued (a custom domain's first use)
  // waits this long at most, then goes on with whatever is served.
  std::chrono::milliseconds certificate_wait{60000};
  std::chrono::milliseconds idle_timeout{75000};  // between requests, and while streaming
  std::chrono::milliseconds upstream_connect_timeout{10000};
  std::chrono::milliseconds upstream_response_timeout{300000};  // until the response head
  std::chrono::milliseconds upstream_idle_timeout{90000};       // a pooled connection's life
  // Idle connections kept per upstream. Below the number of concurrent requests to one VM, every
  // exchange beyond it ends by closing a connection and the next one opens a new one: the
  // proxy's TIME_WAIT sockets then exhaust its ephemeral ports (~470 connections/s) and an app's
  // throughput collapses to that (bench/RESULTS.md, 2026-12-02).
  // Per event loop: each keeps its own.
  size_t pool_size = 256;
  int threads = 2;  // event loops, a thread each; connections are spread over them in turn
  // Access::Decide runs on these when Access::DecideCached has no answer.
  int decide_threads = 4;
};

// "ADDR:PORT" or "[V6ADDR]:PORT" as a listen address; kInvalidArgument otherwise. Pure.
Result<std::pair<std::string, uint16_t>> ParseListenAddress(std::string_view text);

// The HTTPS front end (docs/proxy.md): TLS with the certificate SNI selects, each request head
// decided by `access`, then answered, forwarded to a VM's port, or forwarded to the API socket;
// and the plain-HTTP listener, which redirects to HTTPS and answers ACME HTTP-01 challenges.
//
// Asynchronous: `threads` event loops of one thread each serve every connection (C++20
// coroutines), so idle connections cost memory, not threads; a connection stays on its loop.
// `certificates`, `access` and `challenges` (may be null) must outlive the server. Threading: Start
// and Stop from one thread.
class Server {
 public:
  Server(ProxyOptions options, tls::CertificateSource& certificates, Access& access,
         AcmeHttpChallenges* challenges);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listener and starts serving. kInvalidArgument for a bad address, kUnavailable
  // when one cannot be bound (nothing is left listening then).
  Result<void> Start();
  // Closes the listeners, ends every connection and returns once all have ended and Access
  // calls have returned.
  void Stop();

  // The bound ports (useful with port 0), in the order of options.https_listen; 0 for HTTP off.
  std::vector<uint16_t> https_ports() const;
  uint16_t http_port() const;
  // Client connections open now.
  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_SERVER_H_
