#ifndef VMCTL_SSH_GATEWAY_PROXY_H_
#define VMCTL_SSH_GATEWAY_PROXY_H_

#include <libssh/libssh.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::ssh_gateway {

// An Ed25519 key pair the gateway logs into one VM with, kept at `path` (mode 0600; created once,
// atomically, so concurrent first connections agree on it). Returns the private key; the caller
// frees it with ssh_key_free.
Result<ssh_key> LoadOrCreateKey(const std::filesystem::path& path);
// "ssh-ed25519 AAAA..." (no comment).
std::string PublicKeyLine(ssh_key key);

struct UpstreamOptions {
  std::string address;
  int port = 22;
  std::string user;
  ssh_key identity = nullptr;  // not owned
  // The server must present one of these ("TYPE BASE64 [comment]" lines).
  std::vector<std::string> host_keys;
  std::chrono::seconds timeout{10};
};
// Connects and authenticates to a VM's sshd as a client. kUnavailable if sshd cannot be reached
// or presents no pinned host key (the connection is dropped before authenticating; while a VM
// boots for the first time both pass once sshd has made its keys and the agent reported them),
// kFailedPrecondition if sshd refuses the gateway's key.
Result<ssh_session> ConnectUpstream(const UpstreamOptions& options);

// Relays one user's session (downstream, the gateway as server) to a VM's sshd (upstream, the
// gateway as client) channel by channel: each session channel the user opens gets one upstream,
// with its requests (pty-req, env, shell, exec, subsystem, window-change, signal) passed on and
// the answers (data, stderr, exit-status, exit-signal, eof, close) passed back; direct-tcpip
// channels (-L) become direct-tcpip channels from the VM's sshd. Agent and X11 forwarding are
// refused. Flow control follows the SSH windows: data is read from one side only as far as the
// other side's window allows.
//
// Also relays direct-tcpip channels to local sockets (Attach), for ProxyJump: the socket's far
// end is another gateway connection.
//
// Not thread-safe: the connection's thread drives it. Owns the upstream session, which may be
// null (a command-mode connection that only relays ProxyJump sockets).
class Bridge {
 public:
  Bridge(ssh_session down, ssh_session up);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // For the server callbacks: a session channel the user opens; nullptr if the VM refused it.
  ssh_channel OpenSession();
  // A direct-tcpip request (`message`) to HOST:PORT as the VM sees it; false if the VM refused it.
  bool OpenDirectTcpip(ssh_message message);
  // Relays `channel` (downstream, already open) to and from `fd` (a connected socket).
  void Attach(ssh_channel channel, UniqueFd fd);

  // Relays until the user closes every channel they opened and `keep_going` says so, either side
  // hangs up, or `stop` is set. When the VM's side drops (VM stopped or restarted), open session
  // channels get `lost_message` on stderr and exit status 255.
  void Run(const std::atomic<bool>& stop, const std::string& lost_message,
           std::chrono::seconds idle_without_channels);

 private:
  struct Pair;
  struct Socket;
  static int OnPty(ssh_session, ssh_channel, const char* term, int cols, int rows, int, int,
                   void* pair);
  static int OnShell(ssh_session, ssh_channel, void* pair);
  static int OnExec(ssh_session, ssh_channel, const char* command, void* pair);
  static int OnEnv(ssh_session, ssh_channel, const char* name, const char* value, void* pair);
  static int OnSubsystem(ssh_session, ssh_channel, const char* name, void* pair);
  static int OnWindowChange(ssh_session, ssh_channel, int cols, int rows, int, int, void* pair);
  static void OnSignal(ssh_session, ssh_channel, const char* signal, void* pair);
  static void OnExitStatus(ssh_session, ssh_channel, int status, void* pair);
  static void OnExitSignal(ssh_session, ssh_channel, const char* signal, int core,
                           const char* message, const char* lang, void* pair);

  void RunLoop(const std::atomic<bool>& stop, const std::string& lost_message,
               std::chrono::seconds idle_without_channels);
  // Moves what one side buffered to the other; true if anything moved.
  bool Pump(Pair& pair, bool up_lost);
  bool Pump(Socket& socket);

  ssh_session down_;
  ssh_session up_;
  ssh_event down_event_;
  ssh_event up_event_;
  std::list<std::unique_ptr<Pair>> pairs_;
  std::list<std::unique_ptr<Socket>> sockets_;
};

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_PROXY_H_
