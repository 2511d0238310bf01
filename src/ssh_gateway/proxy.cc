#include "ssh_gateway/proxy.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <libssh/callbacks.h>
#include <libssh/server.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace vmctl::ssh_gateway {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kChunk = 64 * 1024;

// "TYPE BASE64" of a key line, without the comment.
std::string KeyOnly(const std::string& line) {
  auto first = line.find(' ');
  if (first == std::string::npos) return line;
  auto second = line.find(' ', first + 1);
  return line.substr(0, second);
}

int PollEvents(ssh_session session) {
  return POLLIN | ((ssh_get_poll_flags(session) & SSH_WRITE_PENDING) ? POLLOUT : 0);
}

}  // namespace

std::string PublicKeyLine(ssh_key key) {
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) return "";
  std::string line = fmt::format("{} {}", ssh_key_type_to_char(ssh_key_type(key)), b64);
  ssh_string_free_char(b64);
  return line;
}

Result<ssh_key> LoadOrCreateKey(const std::filesystem::path& path) {
  ssh_key key = nullptr;
  if (!std::filesystem::exists(path)) {
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
      return Internal("cannot generate an Ed25519 key");
    }
    std::string partial = fmt::format("{}.{}.partial", path.string(), ::gettid());
    int rc = ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, partial.c_str());
    ssh_key_free(key);
    key = nullptr;
    if (rc != SSH_OK || ::chmod(partial.c_str(), 0600) != 0) {
      ::unlink(partial.c_str());
      return Internal(fmt::format("cannot write the key {}", partial));
    }
    // link(2) never replaces: of two first connections, one key wins and both use it.
    int linked = ::link(partial.c_str(), path.c_str());
    int err = errno;
    ::unlink(partial.c_str());
    if (linked != 0 && err != EEXIST) {
      return Internal(fmt::format("cannot install the key {}: {}", path.string(), strerror(err)));
    }
  }
  if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &key) != SSH_OK) {
    return Internal(fmt::format("cannot read the key {}", path.string()));
  }
  return key;
}

Result<ssh_session> ConnectUpstream(const UpstreamOptions& options) {
  ssh_session session = ssh_new();
  if (session == nullptr) return Internal("ssh_new failed");
  auto fail = [&](Error error) -> Result<ssh_session> {
    ssh_disconnect(session);
    ssh_free(session);
    return error;
  };
  long timeout = static_cast<long>(options.timeout.count());
  bool no = false;
  int port = options.port;
  // The gateway's own ~/.ssh/config and known_hosts have no say: the pinned keys decide.
  ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &no);
  ssh_options_set(session, SSH_OPTIONS_HOST, options.address.c_str());
  ssh_options_set(session, SSH_OPTIONS_PORT, &port);
  ssh_options_set(session, SSH_OPTIONS_USER, options.user.c_str());
  ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout);
  ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null");
  ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null");
  if (ssh_connect(session) != SSH_OK) {
    return fail(Unavailable(fmt::format("cannot reach the VM's sshd at {}:{}: {}", options.address,
                                        options.port, ssh_get_error(session))));
  }
  ssh_key server_key = nullptr;
  if (ssh_get_server_publickey(session, &server_key) != SSH_OK) {
    return fail(Unavailable("the VM's sshd sent no host key"));
  }
  std::string presented = PublicKeyLine(server_key);
  ssh_key_free(server_key);
  bool pinned = std::any_of(options.host_keys.begin(), options.host_keys.end(),
                            [&](const std::string& k) { return KeyOnly(k) == presented; });
  if (!pinned) {
    return fail(Unavailable(
        fmt::format("the VM's sshd presented host key {}..., which its agent did not report; "
                    "refusing to log in",
                    presented.substr(0, 40))));
  }
  if (ssh_userauth_publickey(session, nullptr, options.identity) != SSH_AUTH_SUCCESS) {
    return fail(FailedPrecondition(
        fmt::format("the VM's sshd refused the gateway's key for user '{}'", options.user)));
  }
  return session;
}

// A downstream channel and its upstream twin.
struct Bridge::Pair {
  Bridge* bridge = nullptr;
  ssh_channel down = nullptr;
  ssh_channel up = nullptr;
  bool session = false;  // a session channel (else direct-tcpip)
  ssh_channel_callbacks_struct down_cb{};
  ssh_channel_callbacks_struct up_cb{};
  bool up_eof_sent = false, down_eof_sent = false;
  bool closed = false;
  std::optional<int> exit_status;
  std::optional<std::string> exit_signal;
  bool exit_core = false;
  std::string exit_message;
};

// A downstream channel relayed to a socket (ProxyJump into another gateway connection).
struct Bridge::Socket {
  ssh_channel down = nullptr;
  UniqueFd fd;
  std::string to_fd;  // read from the channel, not yet written to the socket
  bool fd_eof = false, channel_eof = false;
  bool closed = false;
};

Bridge::Bridge(ssh_session down, ssh_session up)
    : down_(down), up_(up), down_event_(ssh_event_new()), up_event_(ssh_event_new()) {
  // Two events, so that a blocking call on the upstream session (opening a channel from inside a
  // downstream callback) only ever polls the upstream socket.
  if (up_) ssh_event_add_session(up_event_, up_);
}

Bridge::~Bridge() {
  for (auto& pair : pairs_) {
    if (pair->up) ssh_channel_free(pair->up);
    if (pair->down) ssh_channel_free(pair->down);
  }
  for (auto& socket : sockets_) ssh_channel_free(socket->down);
  ssh_event_free(down_event_);
  if (up_) {
    ssh_event_remove_session(up_event_, up_);
    ssh_disconnect(up_);
    ssh_free(up_);
  }
  ssh_event_free(up_event_);
}

ssh_channel Bridge::OpenSession() {
  if (!up_) return nullptr;
  ssh_channel up = ssh_channel_new(up_);
  if (up == nullptr || ssh_channel_open_session(up) != SSH_OK) {
    if (up) ssh_channel_free(up);
    return nullptr;
  }
  auto pair = std::make_unique<Pair>();
  pair->bridge = this;
  pair->session = true;
  pair->up = up;
  pair->down = ssh_channel_new(down_);
  ssh_callbacks_init(&pair->down_cb);
  pair->down_cb.userdata = pair.get();
  pair->down_cb.channel_pty_request_function = OnPty;
  pair->down_cb.channel_shell_request_function = OnShell;
  pair->down_cb.channel_exec_request_function = OnExec;
  pair->down_cb.channel_env_request_function = OnEnv;
  pair->down_cb.channel_subsystem_request_function = OnSubsystem;
  pair->down_cb.channel_pty_window_change_function = OnWindowChange;
  pair->down_cb.channel_signal_function = OnSignal;
  ssh_set_channel_callbacks(pair->down, &pair->down_cb);
  ssh_callbacks_init(&pair->up_cb);
  pair->up_cb.userdata = pair.get();
  pair->up_cb.channel_exit_status_function = OnExitStatus;
  pair->up_cb.channel_exit_signal_function = OnExitSignal;
  ssh_set_channel_callbacks(pair->up, &pair->up_cb);
  ssh_channel down = pair->down;
  pairs_.push_back(std::move(pair));
  return down;
}

bool Bridge::OpenDirectTcpip(ssh_message message) {
  const char* host = ssh_message_channel_request_open_destination(message);
  int port = ssh_message_channel_request_open_destination_port(message);
  const char* origin = ssh_message_channel_request_open_originator(message);
  int origin_port = ssh_message_channel_request_open_originator_port(message);
  if (!up_) return false;
  ssh_channel up = ssh_channel_new(up_);
  if (up == nullptr || ssh_channel_open_forward(up, host, port, origin ? origin : "127.0.0.1",
                                                origin_port) != SSH_OK) {
    if (up) ssh_channel_free(up);
    return false;
  }
  ssh_channel down = ssh_message_channel_request_open_reply_accept(message);
  if (down == nullptr) {
    ssh_channel_close(up);
    ssh_channel_free(up);
    return false;
  }
  auto pair = std::make_unique<Pair>();
  pair->bridge = this;
  pair->up = up;
  pair->down = down;
  pairs_.push_back(std::move(pair));
  return true;
}

void Bridge::Attach(ssh_channel channel, UniqueFd fd) {
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  auto socket = std::make_unique<Socket>();
  socket->down = channel;
  socket->fd = std::move(fd);
  sockets_.push_back(std::move(socket));
}

// Requests pass on synchronously so that the user's client sees the VM's own answer.
int Bridge::OnPty(ssh_session, ssh_channel, const char* term, int cols, int rows, int, int,
                  void* p) {
  auto* pair = static_cast<Pair*>(p);
  return ssh_channel_request_pty_size(pair->up, term, cols, rows) == SSH_OK ? 0 : -1;
}

int Bridge::OnShell(ssh_session, ssh_channel, void* p) {
  return ssh_channel_request_shell(static_cast<Pair*>(p)->up) == SSH_OK ? 0 : -1;
}

int Bridge::OnExec(ssh_session, ssh_channel, const char* command, void* p) {
  return ssh_channel_request_exec(static_cast<Pair*>(p)->up, command) == SSH_OK ? 0 : -1;
}

int Bridge::OnEnv(ssh_session, ssh_channel, const char* name, const char* value, void* p) {
  return ssh_channel_request_env(static_cast<Pair*>(p)->up, name, value) == SSH_OK ? 0 : -1;
}

int Bridge::OnSubsystem(ssh_session, ssh_channel, const char* name, void* p) {
  return ssh_channel_request_subsystem(static_cast<Pair*>(p)->up, name) == SSH_OK ? 0 : -1;
}

int Bridge::OnWindowChange(ssh_session, ssh_channel, int cols, int rows, int, int, void* p) {
  return ssh_channel_change_pty_size(static_cast<Pair*>(p)->up, cols, rows) == SSH_OK ? 0 : -1;
}

void Bridge::OnSignal(ssh_session, ssh_channel, const char* signal, void* p) {
  ssh_channel_request_send_signal(static_cast<Pair*>(p)->up, signal);
}

void Bridge::OnExitStatus(ssh_session, ssh_channel, int status, void* p) {
  static_cast<Pair*>(p)->exit_status = status;
}

void Bridge::OnExitSignal(ssh_session, ssh_channel, const char* signal, int core,
                          const char* message, const char*, void* p) {
  auto* pair = static_cast<Pair*>(p);
  pair->exit_signal = signal ? signal : "KILL";
  pair->exit_core = core != 0;
  pair->exit_message = message ? message : "";
}

bool Bridge::Pump(Pair& pair, bool up_lost) {
  char buffer[kChunk];
  bool moved = false;
  // Read only what the receiving side's window takes, so writes never block and a slow reader
  // slows the writer through the SSH windows instead of filling the gateway's memory.
  auto relay = [&](ssh_channel from, ssh_channel to, bool is_stderr) {
    while (ssh_channel_is_open(to)) {
      uint32_t room = std::min(ssh_channel_window_size(to), kChunk);
      if (room == 0) return;
      int n = ssh_channel_read_nonblocking(from, buffer, room, is_stderr ? 1 : 0);
      if (n <= 0) return;
      moved = true;
      if (is_stderr) {
        ssh_channel_write_stderr(to, buffer, static_cast<uint32_t>(n));
      } else {
        ssh_channel_write(to, buffer, static_cast<uint32_t>(n));
      }
    }
  };
  relay(pair.down, pair.up, false);
  relay(pair.up, pair.down, false);
  relay(pair.up, pair.down, true);
  // A dead upstream session reads as closed channels: RunLoop tells the user instead.
  if (up_lost) return moved;

  if (!pair.up_eof_sent && ssh_channel_is_eof(pair.down) && ssh_channel_is_open(pair.up)) {
    ssh_channel_send_eof(pair.up);
    pair.up_eof_sent = true;
  }
  bool up_done = ssh_channel_is_eof(pair.up) || ssh_channel_is_closed(pair.up);
  if (!pair.down_eof_sent && up_done && ssh_channel_poll(pair.up, 0) <= 0 &&
      ssh_channel_poll(pair.up, 1) <= 0 && ssh_channel_is_open(pair.down)) {
    ssh_channel_send_eof(pair.down);
    pair.down_eof_sent = true;
    moved = true;
  }
  // The exit status goes after the output's EOF and before the close.
  if ((pair.exit_status || pair.exit_signal) &&
      (pair.down_eof_sent || ssh_channel_is_closed(pair.up))) {
    if (pair.exit_status) ssh_channel_request_send_exit_status(pair.down, *pair.exit_status);
    if (pair.exit_signal) {
      ssh_channel_request_send_exit_signal(pair.down, pair.exit_signal->c_str(), pair.exit_core,
                                           pair.exit_message.c_str(), "");
    }
    pair.exit_status.reset();
    pair.exit_signal.reset();
  }
  if (ssh_channel_is_closed(pair.up) && pair.down_eof_sent) ssh_channel_close(pair.down);
  if (ssh_channel_is_closed(pair.down) && ssh_channel_is_open(pair.up)) {
    ssh_channel_close(pair.up);
  }
  if (ssh_channel_is_closed(pair.down) && ssh_channel_is_closed(pair.up)) {
    pair.closed = true;
    moved = true;
  }
  return moved;
}

bool Bridge::Pump(Socket& socket) {
  char buffer[kChunk];
  bool moved = false;
  while (!socket.to_fd.empty() || !socket.channel_eof) {
    if (socket.to_fd.empty()) {
      int n = ssh_channel_read_nonblocking(socket.down, buffer, kChunk, 0);
      if (n > 0) {
        socket.to_fd.assign(buffer, static_cast<size_t>(n));
      } else {
        if (ssh_channel_is_eof(socket.down) || ssh_channel_is_closed(socket.down)) {
          socket.channel_eof = true;
          ::shutdown(socket.fd.get(), SHUT_WR);
        }
        break;
      }
    }
    ssize_t w = ::write(socket.fd.get(), socket.to_fd.data(), socket.to_fd.size());
    if (w <= 0) break;
    socket.to_fd.erase(0, static_cast<size_t>(w));
    moved = true;
  }
  while (!socket.fd_eof && ssh_channel_is_open(socket.down)) {
    uint32_t room = std::min(ssh_channel_window_size(socket.down), kChunk);
    if (room == 0) break;
    ssize_t n = ::read(socket.fd.get(), buffer, room);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
    moved = true;
    if (n <= 0) {
      socket.fd_eof = true;
      ssh_channel_send_eof(socket.down);
      ssh_channel_close(socket.down);
      break;
    }
    ssh_channel_write(socket.down, buffer, static_cast<uint32_t>(n));
  }
  if (ssh_channel_is_closed(socket.down) && !socket.closed) {
    socket.closed = true;
    socket.fd.reset();
    moved = true;
  }
  return moved;
}

void Bridge::Run(const std::atomic<bool>& stop, const std::string& lost_message,
                 std::chrono::seconds idle_without_channels) {
  // Joined here, not at construction: a Bridge may be made inside a callback of the event that
  // still holds the downstream session (a ProxyJump arriving in command mode).
  ssh_event_add_session(down_event_, down_);
  RunLoop(stop, lost_message, idle_without_channels);
  ssh_event_remove_session(down_event_, down_);
}

void Bridge::RunLoop(const std::atomic<bool>& stop, const std::string& lost_message,
                     std::chrono::seconds idle_without_channels) {
  auto last_channel = Clock::now();
  while (!stop) {
    std::vector<pollfd> fds = {{ssh_get_fd(down_), static_cast<short>(PollEvents(down_)), 0}};
    if (up_) fds.push_back({ssh_get_fd(up_), static_cast<short>(PollEvents(up_)), 0});
    for (const auto& socket : sockets_) {
      if (socket->fd.valid() && !socket->fd_eof) {
        fds.push_back({socket->fd.get(), POLLIN, 0});
      }
    }
    ::poll(fds.data(), fds.size(), 200);
    if (ssh_event_dopoll(down_event_, 0) == SSH_ERROR) break;
    bool up_lost = up_ && (ssh_event_dopoll(up_event_, 0) == SSH_ERROR || !ssh_is_connected(up_));
    bool moved = true;
    while (moved) {
      moved = false;
      for (auto& pair : pairs_) moved |= !pair->closed && Pump(*pair, up_lost);
      for (auto& socket : sockets_) moved |= !socket->closed && Pump(*socket);
    }
    if (up_lost) {
      for (auto& pair : pairs_) {
        if (pair->closed || !ssh_channel_is_open(pair->down)) continue;
        if (pair->session) {
          ssh_channel_write_stderr(pair->down, lost_message.data(),
                                   static_cast<uint32_t>(lost_message.size()));
          ssh_channel_request_send_exit_status(pair->down, 255);
        }
        ssh_channel_send_eof(pair->down);
        ssh_channel_close(pair->down);
      }
      ssh_blocking_flush(down_, 2000);  // the notice must reach the user before the hangup
      break;
    }
    if (!ssh_is_connected(down_)) break;
    pairs_.remove_if([](const auto& pair) {
      if (!pair->closed) return false;
      ssh_channel_free(pair->up);
      ssh_channel_free(pair->down);
      return true;
    });
    sockets_.remove_if([](const auto& socket) {
      if (!socket->closed) return false;
      ssh_channel_free(socket->down);
      return true;
    });
    if (!pairs_.empty() || !sockets_.empty()) {
      last_channel = Clock::now();
    } else if (Clock::now() - last_channel > idle_without_channels) {
      break;
    }
  }
}

}  // namespace vmctl::ssh_gateway
