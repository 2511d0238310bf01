#ifndef VMCTL_SSH_GATEWAY_GATEWAY_H_
#define VMCTL_SSH_GATEWAY_GATEWAY_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "controller/account_service.h"
#include "controller/vm_service.h"

namespace vmctl::ssh_gateway {

struct GatewayOptions {
  // "ADDRESS:PORT" each; port 0 picks a free one (tests).
  std::vector<std::string> listen = {"127.0.0.1:2222"};
  // The gateway's Ed25519 host key, created (mode 0600) on first start and kept.
  std::filesystem::path host_key;
  // The daemon's API socket: command mode runs the CLI's own commands against it, as the user.
  std::filesystem::path api_socket;
  // How users reach the gateway, for the hints it prints ("ssh -p 2222 host").
  std::string ssh_command = "ssh -p 2222 localhost";
  // The host patterns `known-hosts` prints the host key for, e.g. "[host]:2222" and
  // "[*.vm.example.com]:2222": every VM name reaches the same gateway key, so one line trusts all.
  std::vector<std::string> known_hosts_patterns = {"[localhost]:2222"};
  // Limits before and after authentication (docs/ssh-gateway.md, "Limits"; ssh_gateway::Admission
  // says how they work together). A client must finish the key exchange and authentication
  // within handshake_timeout, or within handshake_timeout_under_pressure while at least half of
  // max_unauthenticated handshakes run at once.
  std::chrono::seconds handshake_timeout{20};
  std::chrono::seconds handshake_timeout_under_pressure{5};
  // Handshakes at once; a new connection beyond takes the slot of the oldest handshake of the
  // source address holding the most.
  int max_unauthenticated = 256;
  // Connections of one source address not logged in as a registered user (handshakes and
  // registration lobbies); more wait, up to max_unauthenticated of them in all, then are refused.
  int max_unauthenticated_per_source = 32;
  // Logged-in connections at once (registered users and registration lobbies).
  int max_sessions = 512;
  // Routing addresses (docs/ssh-gateway.md): a connection that arrives on one of them (by any
  // listener; add listeners for them) goes to the user's VM holding that address.
  std::vector<std::string> address_pool;
};

// The SSH front end (docs/ssh-gateway.md): public-key authentication (KeyAuth), registration of
// new keys, command mode (`ssh host CMD` or an interactive lobby, whose commands are the CLI's
// own, cli/commands.h, run against the API as the authenticated user) and proxy mode (a Bridge
// to a VM's sshd, logged into with a per-VM key the VM's agent installed).
//
// Threading: Start() binds and starts one accept thread; each connection gets its own thread
// once Admission lets it start its handshake (a waiting one has only its socket).
// Stop() (or destruction) closes the listeners, ends every session and waits for their threads.
class Gateway {
 public:
  // Does not take ownership; the account and VM services must outlive the gateway.
  Gateway(GatewayOptions options, controller::AccountService& accounts, controller::VmService& vms);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Loads or creates the host key and binds every address. kInvalidArgument (bad address),
  // kUnavailable (address in use), kInternal (host key unreadable).
  Result<void> Start();
  void Stop();
  // The bound ports, in the order of options.listen.
  std::vector<uint16_t> ports() const;

  struct Impl;  // opaque; public so the per-connection code in gateway.cc can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_GATEWAY_H_
