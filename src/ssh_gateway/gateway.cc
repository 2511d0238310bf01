#include "ssh_gateway/gateway.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"
#include "cli/commands.h"
#include "model/host_name.h"
#include "model/vm.h"
#include "ssh_gateway/accounts.h"
#include "ssh_gateway/admission.h"
#include "ssh_gateway/command_line.h"
#include "ssh_gateway/key_auth.h"
#include "ssh_gateway/proxy.h"
#include "ssh_gateway/routing.h"
#include "ssh_gateway/text.h"

namespace vmctl::ssh_gateway {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The CLI commands command mode offers, as they are (`new` maps onto `create`).
const std::set<std::string> kCliCommands = {"ls",      "show",   "rm",    "start",  "stop",
                                            "restart", "resize", "share", "domain", "login",
                                            "logout",  "token",  "ca"};

struct SessionDeleter {
  void operator()(ssh_session s) const {
    ssh_disconnect(s);
    ssh_free(s);
  }
};
using SessionPtr = std::unique_ptr<ssh_session_struct, SessionDeleter>;

Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return InvalidArgument(fmt::format("bad listen address '{}' (expected ADDRESS:PORT)", text));
  }
  unsigned port = 0;
  try {
    port = static_cast<unsigned>(std::stoul(text.substr(colon + 1)));
  } catch (const std::exception&) {
    port = 65536;
  }
  if (port > 65535) return InvalidArgument(fmt::format("bad port in '{}'", text));
  return std::pair{text.substr(0, colon), static_cast<uint16_t>(port)};
}

Result<UniqueFd> Listen(const std::string& address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1) {
    return InvalidArgument(fmt::format("bad listen address '{}' (an IPv4 address)", address));
  }
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return Unavailable(
        fmt::format("cannot listen on {}:{}: {}", address, port, std::strerror(errno)));
  }
  if (::listen(fd.get(), 128) != 0) return ErrnoError("listen", errno);
  return fd;
}

uint16_t BoundPort(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  return ntohs(sa.sin_port);
}

std::string LocalAddress(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof(sa);
  char text[INET_ADDRSTRLEN] = "";
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0 && sa.sin_family == AF_INET) {
    ::inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
  }
  return text;
}

// libssh calls the callbacks from C, which nothing may be thrown across: a failure becomes the
// callback's refusal, which the handshake or the channel handles as any other.
template <typename R, typename F>
R AtCallback(R refused, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    spdlog::error("ssh: in a callback: {}", e.what());
  }
  return refused;
}

Admission::Limits LimitsOf(const GatewayOptions& o) {
  Admission::Limits limits;
  limits.max_handshakes = o.max_unauthenticated;
  limits.max_per_source = o.max_unauthenticated_per_source;
  limits.max_queued = o.max_unauthenticated;
  limits.max_sessions = o.max_sessions;
  limits.handshake_timeout = o.handshake_timeout;
  limits.pressure_timeout = o.handshake_timeout_under_pressure;
  return limits;
}

}  // namespace

struct Gateway::Impl {
  Impl(GatewayOptions o, controller::AccountService& a, controller::VmService& v)
      : options(std::move(o)),
        accounts(a),
        vms(v),
        pool(options.address_pool.begin(), options.address_pool.end()),
        admission(LimitsOf(options)) {}
  ~Impl() {
    if (bind) ssh_bind_free(bind);
    if (host_key) ssh_key_free(host_key);
  }

  GatewayOptions options;
  controller::AccountService& accounts;
  controller::VmService& vms;
  std::set<std::string> pool;
  ssh_key host_key = nullptr;
  std::vector<UniqueFd> listeners;
  std::vector<uint16_t> ports;
  UniqueFd stop_event;
  std::atomic<bool> stopping{false};
  std::thread accept_thread;
  ssh_bind bind = nullptr;
  std::mutex bind_mu;

  // An accepted connection, waiting for its turn or served by its own thread.
  struct Accepted {
    int fd;               // -1 once its thread closes it
    std::string source;   // the peer's address (for a ProxyJump's inner connection, the outer's)
    std::string jump_vm;  // for a ProxyJump's inner connection
    bool running = false;
  };
  std::mutex mu;  // guards what follows
  std::condition_variable idle;
  Admission admission;
  std::map<uint64_t, Accepted> accepted;
  uint64_t next_id = 1;
  int running = 0;

  Result<void> LoadHostKey();
  void AcceptLoop();
  // A new connection on `fd` (owned from here on): Admission decides whether it starts now,
  // waits or is refused.
  void Arrive(int fd, const std::string& source, const std::string& jump_vm);
  // A connection that now logged in; false if it must end (max_sessions).
  bool LoggedIn(uint64_t id, bool registered);
  // Does what Admission asked for (while stopping, closes what it would start); returns with
  // `lock` released, having started the connections it named.
  void Apply(const Admission::Actions& actions, std::unique_lock<std::mutex>& lock);
  // Serves connection `id` on its own thread.
  void Start(uint64_t id);
  // Connection `id`'s socket is closed; its admission slot goes to the next one.
  void Finished(uint64_t id);
};

// One connection: handshake and authentication, then either command mode (one session channel
// running a command or the interactive lobby) or proxy mode (a Bridge to a VM's sshd), chosen by
// the username, the address dialled or, for a ProxyJump's inner connection, the jump target.
class Connection {
 public:
  Connection(Gateway::Impl& gw, uint64_t id, ssh_session session, std::string source,
             std::string local_address, std::string jump_vm)
      : gw_(gw),
        id_(id),
        session_(session),
        source_(std::move(source)),
        local_address_(std::move(local_address)),
        jump_vm_(std::move(jump_vm)),
        auth_([&gw](const std::string& fp) { return gw.accounts.Owner(fp); }) {}

  void Run();

 private:
  static int OnPubkey(ssh_session, const char* user, ssh_key_struct* key, char state, void* self);
  static int OnMessage(ssh_session, ssh_message message, void* self);
  static ssh_channel OnChannelOpen(ssh_session, void* self);
  static int OnPty(ssh_session, ssh_channel, const char*, int, int, int, int, void* self);
  static int OnShell(ssh_session, ssh_channel, void* self);
  static int OnExec(ssh_session, ssh_channel, const char* command, void* self);
  static int OnData(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* self);
  static void OnEof(ssh_session, ssh_channel, void* self);

  bool Authenticate();
  // Proxy mode if the connection names a VM: sets bridge_, or route_error_ when it cannot go.
  void Route();
  Result<void> ConnectToVm(const std::string& vm, const std::string& guest_user, bool or_default);
  // A direct-tcpip request in command mode: ProxyJump to a VM's sshd.
  bool Jump(ssh_message message);
  // Handles the session's events until `done()`, the handshake timeout, the client's hangup or
  // the gateway's stop, and returns done().
  bool PollUntil(const std::function<bool()>& done);
  bool WaitForRequest();
  // Writes `data` to the channel, control characters escaped (EscapeForTerminal).
  void Write(std::string_view data, bool stderr_stream = false);
  // Writes `data` as it is: the lobby's line editing.
  void Echo(std::string_view data, bool stderr_stream = false);
  int Execute(const std::vector<std::string>& argv);
  // Execute, with anything the CLI's code throws turned into this command's error.
  int ExecuteGuarded(const std::vector<std::string>& argv);
  int RunCli(std::vector<std::string> argv);
  int Register(const std::string& email);
  int Verify(const std::string& code);
  int SshKey(const std::vector<std::string>& argv);
  void Interactive();
  void Finish(int status);
  void Linger();

  Gateway::Impl& gw_;
  uint64_t id_;
  ssh_session session_;
  std::string source_;  // the client's address, for Admission and the registration rate limit
  std::string local_address_;
  std::string jump_vm_;
  KeyAuth auth_;
  bool authenticated_ = false;
  std::string ssh_user_;  // the username the client logs in as
  ssh_server_callbacks_struct server_cb_{};
  ssh_channel_callbacks_struct channel_cb_{};
  ssh_channel channel_ = nullptr;
  bool pty_ = false;
  bool shell_ = false;
  std::optional<std::string> exec_;
  std::string input_;
  bool input_eof_ = false;
  std::string user_id_, user_name_;
  std::string vm_name_;               // proxy mode's VM
  std::unique_ptr<Bridge> bridge_;    // proxy mode, or a command-mode connection's jumps
  std::optional<Error> route_error_;  // the connection names a VM it cannot reach
  int jumps_ = 0;
};

int Connection::OnPubkey(ssh_session, const char* user, ssh_key_struct* key, char state,
                         void* self) {
  return AtCallback<int>(SSH_AUTH_DENIED, [&]() -> int {
    auto* c = static_cast<Connection*>(self);
    c->ssh_user_ = user ? user : "";
    if (state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID) {
      return SSH_AUTH_DENIED;
    }
    switch (c->auth_.OnPublicKey(Fingerprint(key), PublicKeyLine(key),
                                 state == SSH_PUBLICKEY_STATE_VALID)) {
      case KeyAuth::Reply::kSuccess:
        c->authenticated_ = true;
        return SSH_AUTH_SUCCESS;
      case KeyAuth::Reply::kPkOk:
        return SSH_AUTH_SUCCESS;
      case KeyAuth::Reply::kPartial:
        ssh_set_auth_methods(c->session_, SSH_AUTH_METHOD_PUBLICKEY | SSH_AUTH_METHOD_INTERACTIVE);
        return SSH_AUTH_PARTIAL;
      case KeyAuth::Reply::kFailure:
        break;
    }
    return SSH_AUTH_DENIED;
  });
}

// Keyboard-interactive and direct-tcpip have no callbacks of their own: they arrive as messages.
int Connection::OnMessage(ssh_session, ssh_message message, void* self) {
  return AtCallback<int>(1, [&]() -> int {
    auto* c = static_cast<Connection*>(self);
    if (ssh_message_type(message) == SSH_REQUEST_CHANNEL_OPEN &&
        ssh_message_subtype(message) == SSH_CHANNEL_DIRECT_TCPIP && c->authenticated_) {
      if (c->bridge_ && !c->vm_name_.empty()) return c->bridge_->OpenDirectTcpip(message) ? 0 : 1;
      return c->Jump(message) ? 0 : 1;
    }
    if (ssh_message_type(message) != SSH_REQUEST_AUTH ||
        ssh_message_subtype(message) != SSH_AUTH_METHOD_INTERACTIVE) {
      return 1;
    }
    if (c->auth_.OnKeyboardInteractive() != KeyAuth::Reply::kSuccess) return 1;
    if (!ssh_message_auth_kbdint_is_response(message)) {
      ssh_message_auth_interactive_request(message, "", "", 0, nullptr, nullptr);
    } else {
      c->authenticated_ = true;
      ssh_message_auth_reply_success(message, 0);
    }
    return 0;
  });
}

ssh_channel Connection::OnChannelOpen(ssh_session session, void* self) {
  return AtCallback<ssh_channel>(nullptr, [&]() -> ssh_channel {
    auto* c = static_cast<Connection*>(self);
    if (c->bridge_ && !c->vm_name_.empty()) return c->bridge_->OpenSession();
    if (c->channel_ != nullptr) return nullptr;  // one session channel per connection
    c->channel_ = ssh_channel_new(session);
    ssh_callbacks_init(&c->channel_cb_);
    c->channel_cb_.userdata = c;
    c->channel_cb_.channel_pty_request_function = OnPty;
    c->channel_cb_.channel_shell_request_function = OnShell;
    c->channel_cb_.channel_exec_request_function = OnExec;
    c->channel_cb_.channel_data_function = OnData;
    c->channel_cb_.channel_eof_function = OnEof;
    ssh_set_channel_callbacks(c->channel_, &c->channel_cb_);
    return c->channel_;
  });
}

int Connection::OnPty(ssh_session, ssh_channel, const char*, int, int, int, int, void* self) {
  static_cast<Connection*>(self)->pty_ = true;
  return 0;
}

int Connection::OnShell(ssh_session, ssh_channel, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (c->shell_ || c->exec_) return 1;
  c->shell_ = true;
  return 0;
}

int Connection::OnExec(ssh_session, ssh_channel, const char* command, void* self) {
  return AtCallback<int>(1, [&]() -> int {
    auto* c = static_cast<Connection*>(self);
    if (c->shell_ || c->exec_) return 1;
    c->exec_ = command;
    return 0;
  });
}

int Connection::OnData(ssh_session, ssh_channel, void* data, uint32_t len, int, void* self) {
  return AtCallback<int>(static_cast<int>(len), [&]() -> int {
    auto* c = static_cast<Connection*>(self);
    // A line editor needs little; a client pasting megabytes is cut off, not buffered.
    if (c->input_.size() + len > 4 * kMaxCommandLine) return static_cast<int>(len);
    c->input_.append(static_cast<const char*>(data), len);
    return static_cast<int>(len);
  });
}

void Connection::OnEof(ssh_session, ssh_channel, void* self) {
  static_cast<Connection*>(self)->input_eof_ = true;
}

bool Connection::Authenticate() {
  ssh_callbacks_init(&server_cb_);
  server_cb_.userdata = this;
  server_cb_.auth_pubkey_function = OnPubkey;
  server_cb_.channel_open_request_session_function = OnChannelOpen;
  ssh_set_server_callbacks(session_, &server_cb_);
  ssh_set_message_callback(session_, OnMessage, this);
  if (ssh_handle_key_exchange(session_) != SSH_OK) return false;
  ssh_set_auth_methods(session_, SSH_AUTH_METHOD_PUBLICKEY);
  return PollUntil([this] { return authenticated_; }) && ssh_is_connected(session_);
}

bool Connection::PollUntil(const std::function<bool()>& done) {
  ssh_event event = ssh_event_new();
  ssh_event_add_session(event, session_);
  auto deadline = Clock::now() + gw_.options.handshake_timeout;
  while (!gw_.stopping && Clock::now() < deadline && ssh_is_connected(session_) && !done()) {
    if (ssh_event_dopoll(event, 200) == SSH_ERROR) break;
  }
  ssh_event_remove_session(event, session_);
  ssh_event_free(event);
  return done();
}

void Connection::Route() {
  if (user_id_.empty()) return;  // the registration lobby
  // It may become the guest user the VM's agent is asked about, so it must be text.
  if (auto valid = ValidateUsername(ssh_user_); !valid.ok()) {
    route_error_ = valid.error();
    return;
  }
  if (!jump_vm_.empty()) {
    // ssh -J host VM: the username is the guest user, if the VM has it.
    if (auto r = ConnectToVm(jump_vm_, ssh_user_, true); !r.ok()) route_error_ = r.error();
    return;
  }
  ssh_gateway::Route route = RouteForUsername(ssh_user_);
  if (!route.vm.empty()) {
    // A plain username that names no VM the user sees is just a username: command mode.
    auto visible = gw_.vms.FindVisible(user_id_, route.vm);
    bool plain =
        route.guest_user.empty() && !visible.ok() && visible.error().code() == ErrorCode::kNotFound;
    if (!plain) {
      if (!visible.ok()) {
        route_error_ = visible.error();
      } else if (auto r = ConnectToVm(route.vm, route.guest_user, false); !r.ok()) {
        route_error_ = r.error();
      }
      return;
    }
  }
  if (gw_.pool.count(local_address_)) {
    auto vms = gw_.vms.List(user_id_);
    if (!vms.ok()) return;
    for (const auto& vm : *vms) {
      if (vm.ssh_address != local_address_) continue;
      if (auto r = ConnectToVm(vm.name, ssh_user_, true); !r.ok()) route_error_ = r.error();
      return;
    }
  }
}

Result<void> Connection::ConnectToVm(const std::string& vm, const std::string& guest_user,
                                     bool or_default) {
  // A fresh VM's agent answers before sshd listens, and a first boot may replace the image's host
  // keys after the agent reported them: both settle within seconds (tens of them for an RSA key
  // in an emulated guest), so retry for a while, asking the agent again each time.
  auto deadline = Clock::now() + std::chrono::seconds(90);
  bool reinstalled = false;
  for (;;) {
    std::unique_ptr<ssh_key_struct, void (*)(ssh_key)> identity(nullptr, ssh_key_free);
    auto key_for = [&](const VmRecord& record) -> Result<std::string> {
      VMCTL_ASSIGN_OR_RETURN(ssh_key key,
                             LoadOrCreateKey(fs::path(record.runtime_dir) / "gateway_ed25519"));
      identity.reset(key);
      return PublicKeyLine(key) + " " + controller::VmService::kGatewayKeyTag;
    };
    // Short waits inside, so that a stopping gateway is not held up for long.
    auto target =
        gw_.vms.PrepareSsh(user_id_, vm, guest_user, or_default, key_for, std::chrono::seconds(5));
    if (!target.ok() && target.error().code() == ErrorCode::kDeadlineExceeded &&
        Clock::now() < deadline && !gw_.stopping) {
      continue;  // sshd has not made its host keys yet
    }
    if (!target.ok()) {
      auto record = gw_.vms.FindVisible(user_id_, vm);
      if (target.error().code() != ErrorCode::kFailedPrecondition || !record.ok() ||
          record->state == VmState::kRunning) {
        return target.error();
      }
      return FailedPrecondition(
          record->owner == user_id_
              ? fmt::format("{}; start it with:  {} start {}", target.error().message(),
                            gw_.options.ssh_command, vm)
              : fmt::format("{}; ask its owner to start it", target.error().message()));
    }
    UpstreamOptions upstream;
    upstream.address = target->vm.address;
    upstream.user = target->guest_user;
    upstream.identity = identity.get();
    upstream.host_keys = target->vm.ssh_host_keys;
    auto connected = ConnectUpstream(upstream);
    if (connected.ok()) {
      vm_name_ = vm;
      bridge_ = std::make_unique<Bridge>(session_, *connected);
      spdlog::info("ssh: {} -> VM {} as {}", user_name_, vm, target->guest_user);
      return Ok();
    }
    if (connected.error().code() == ErrorCode::kFailedPrecondition && !reinstalled) {
      // sshd refused the key: the user may have rewritten authorized_keys since it was put there.
      reinstalled = true;
      gw_.vms.ForgetSshKeys(target->vm.id);
      continue;
    }
    bool settling = connected.error().code() == ErrorCode::kUnavailable;
    if (!settling || Clock::now() > deadline || gw_.stopping) return connected.error();
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

bool Connection::Jump(ssh_message message) {
  std::string vm = VmForDestination(ssh_message_channel_request_open_destination(message));
  if (vm.empty() || user_id_.empty() || ++jumps_ > 8) return false;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return false;
  UniqueFd outer(pair[0]);
  ssh_channel channel = ssh_message_channel_request_open_reply_accept(message);
  if (channel == nullptr) {
    ::close(pair[1]);
    return false;
  }
  // The inner connection is a gateway connection like any other, over a socket pair: the
  // client authenticates again and lands in the VM (or hears why not).
  gw_.Arrive(pair[1], source_, vm);
  if (!bridge_) bridge_ = std::make_unique<Bridge>(session_, nullptr);
  bridge_->Attach(channel, std::move(outer));
  return true;
}

// Authenticated, with a session channel that asked for a shell or a command.
bool Connection::WaitForRequest() {
  return ssh_is_connected(session_) && channel_ != nullptr && (shell_ || exec_.has_value());
}

void Connection::Write(std::string_view data, bool stderr_stream) {
  // Output quotes names, emails and the user's own input back: none of it may steer the
  // terminal.
  Echo(EscapeForTerminal(data), stderr_stream);
}

void Connection::Echo(std::string_view data, bool stderr_stream) {
  std::string text(data);
  if (pty_) {
    // A terminal in raw mode needs carriage returns.
    std::string crlf;
    for (char ch : text) {
      if (ch == '\n') crlf += '\r';
      crlf += ch;
    }
    text = std::move(crlf);
  }
  if (stderr_stream && !pty_) {
    ssh_channel_write_stderr(channel_, text.data(), static_cast<uint32_t>(text.size()));
  } else {
    ssh_channel_write(channel_, text.data(), static_cast<uint32_t>(text.size()));
  }
}

int Connection::RunCli(std::vector<std::string> argv) {
  CLI::App app{"", "ssh"};
  app.require_subcommand(1);
  int code = 0;
  cli::CommandOptions options;
  options.io = {[this](std::string_view s) { Write(s); },
                [this](std::string_view s) { Write(s, true); }};
  options.user = user_id_;
  options.socket = gw_.options.api_socket.string();
  options.only = kCliCommands;
  options.only.insert("create");
  options.next_step = [this](const std::string& vm) {
    // "ssh -p 2222 host" becomes "ssh -p 2222 VM@host".
    const std::string& command = gw_.options.ssh_command;
    size_t host = command.rfind(' ') + 1;
    return fmt::format("Connect:  {}{}@{}", command.substr(0, host), vm, command.substr(host));
  };
  cli::AddCommands(app, &code, options);
  std::vector<std::string> reversed(argv.rbegin(), argv.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    code = app.exit(e, out, err);
    Write(out.str());
    Write(err.str(), true);
  }
  return code;
}

int Connection::Register(const std::string& email) {
  PublicKey key{auth_.registration_fingerprint(), auth_.registration_key()};
  auto done = gw_.accounts.Register(email, key, source_);
  if (!done.ok()) {
    Write("vmctl: " + done.error().message() + "\n", true);
    return done.error().ExitCode();
  }
  if (done->pending) {
    std::time_t expires = done->expires_at;
    std::tm tm{};
    char until[32];
    std::strftime(until, sizeof(until), "%Y-%m-%d %H:%M UTC", ::gmtime_r(&expires, &tm));
    Write(
        fmt::format("A verification code is on its way to {}. Confirm it with this key before "
                    "{}:\n  {} verify CODE\n",
                    done->email, until, gw_.options.ssh_command));
    return 0;
  }
  user_id_ = done->user->id;
  user_name_ = done->user->name;
  Write(fmt::format("Welcome, {}! Your key {} is registered.\nCreate a VM:  {} new\n", user_name_,
                    key.fingerprint, gw_.options.ssh_command));
  return 0;
}

int Connection::Verify(const std::string& code) {
  PublicKey key{auth_.registration_fingerprint(), auth_.registration_key()};
  auto user = gw_.accounts.Verify(key, code);
  if (!user.ok()) {
    Write("vmctl: " + user.error().message() + "\n", true);
    return user.error().ExitCode();
  }
  user_id_ = user->id;
  user_name_ = user->name;
  Write(
      fmt::format("Welcome, {}! {} is confirmed and your key {} is registered.\nCreate a VM:  "
                  "{} new\n",
                  user->name, user->email, key.fingerprint, gw_.options.ssh_command));
  return 0;
}

int Connection::SshKey(const std::vector<std::string>& argv) {
  auto fail = [&](const Error& e) {
    Write("vmctl: " + e.message() + "\n", true);
    return e.ExitCode();
  };
  std::string sub = argv.size() > 1 ? argv[1] : "ls";
  if (sub == "ls" && argv.size() <= 2) {
    auto keys = gw_.accounts.Keys(user_id_);
    if (!keys.ok()) return fail(keys.error());
    for (const auto& k : *keys) Write(fmt::format("{}  {}\n", k.fingerprint, k.public_key));
    return 0;
  }
  if (sub == "add" && argv.size() >= 3) {
    std::string line;
    for (size_t i = 2; i < argv.size(); ++i) line += (i > 2 ? " " : "") + argv[i];
    auto key = ParsePublicKey(line);
    if (!key.ok()) return fail(key.error());
    auto added = gw_.accounts.AddKey(user_id_, *key);
    if (!added.ok()) return fail(added.error());
    Write(fmt::format("Added {}.\n", added->fingerprint));
    return 0;
  }
  if (sub == "rm" && argv.size() == 3) {
    auto removed = gw_.accounts.RemoveKey(user_id_, argv[2]);
    if (!removed.ok()) return fail(removed.error());
    Write(fmt::format("Removed {}.\n", argv[2]));
    return 0;
  }
  return fail(
      InvalidArgument("usage: ssh-key ls | ssh-key add 'ssh-ed25519 AAAA...' | ssh-key rm "
                      "SHA256:..."));
}

int Connection::Execute(const std::vector<std::string>& argv) {
  if (argv.empty()) return 0;
  const std::string& command = argv[0];
  if (user_id_.empty()) {
    if (command == "register" && argv.size() == 2) return Register(argv[1]);
    if (command == "verify" && argv.size() == 2) return Verify(argv[1]);
    Write(fmt::format("vmctl: this SSH key ({}) is not registered yet; register it with:  {} "
                      "register you@example.com  (then `verify CODE` if a code is mailed)\n",
                      auth_.registration_fingerprint(), gw_.options.ssh_command),
          true);
    return FailedPrecondition("").ExitCode();
  }
  if (command == "help") {
    Write(
        fmt::format("Commands ({} COMMAND, or interactively):\n"
                    "  new [--name NAME] [--image IMAGE] [--cpus N] [--memory SIZE] [--disk SIZE]\n"
                    "  ls [--json]             your VMs\n"
                    "  show NAME [--json]\n"
                    "  start|stop|restart NAME\n"
                    "  resize NAME --disk SIZE\n"
                    "  rm NAME\n"
                    "  share ls|set-public|set-private|add-link NAME\n"
                    "  share add NAME EMAIL | share rm NAME EMAIL|LINK-ID | share port NAME PORT\n"
                    "  domain ls NAME | domain add|rm NAME DOMAIN\n"
                    "  login | logout          a browser login link | end browser sessions\n"
                    "  token new [--vm VM] [--expires 30d] | token ls | token rm ID\n"
                    "  ssh-key ls|add KEY|rm FINGERPRINT\n"
                    "  known-hosts             the gateway's known_hosts line, for every VM name\n"
                    "  ca                      the local CA's certificate, to trust for HTTPS\n"
                    "  whoami\n"
                    "Into a VM:  ssh VM@host, ssh VM+USER@host, ssh -J host VM.DOMAIN, or\n"
                    "ssh VM.DOMAIN where DNS points it at the VM's ssh address (`show VM`).\n"
                    "Add --help to a command for its options.\n",
                    gw_.options.ssh_command));
    return 0;
  }
  if (command == "whoami") {
    auto user = gw_.accounts.GetUser(user_id_);
    if (!user.ok()) return user.error().ExitCode();
    Write(fmt::format("{} <{}>\n", user->name, user->email));
    return 0;
  }
  if (command == "ssh-key") return SshKey(argv);
  if (command == "known-hosts") {
    Write(fmt::format("{} {}\n", fmt::join(gw_.options.known_hosts_patterns, ","),
                      PublicKeyLine(gw_.host_key)));
    return 0;
  }
  if (command == "register" || command == "verify") {
    Write("vmctl: this key is already registered\n", true);
    return AlreadyExists("").ExitCode();
  }
  if (command == "new") {
    std::vector<std::string> create = {"create"};
    std::string name;
    for (size_t i = 1; i < argv.size(); ++i) {
      if (argv[i] == "--name" && i + 1 < argv.size()) {
        name = argv[++i];
      } else if (argv[i].starts_with("--name=")) {
        name = argv[i].substr(7);
      } else {
        create.push_back(argv[i]);
      }
    }
    if (name.empty()) name = "vm-" + NewVmId().substr(0, 6);
    create.insert(create.begin() + 1, name);
    return RunCli(create);
  }
  if (kCliCommands.count(command)) return RunCli(argv);
  Write(fmt::format("vmctl: unknown command '{}'; try `help`\n", command), true);
  return InvalidArgument("").ExitCode();
}

int Connection::ExecuteGuarded(const std::vector<std::string>& argv) {
  try {
    return Execute(argv);
  } catch (const std::exception& e) {
    spdlog::error("ssh: a command of {} failed: {}", user_name_, e.what());
  }
  Error error = Internal("the command failed unexpectedly (the daemon's log has the details)");
  Write("vmctl: " + error.message() + "\n", true);
  return error.ExitCode();
}

void Connection::Interactive() {
  auto prompt = [&] { Write(user_id_.empty() ? "email: " : fmt::format("{}> ", user_name_)); };
  if (user_id_.empty()) {
    Write("Welcome to vmctl. This SSH key is new here: give your email to register it.\n");
  } else {
    Write(fmt::format("Welcome, {}. Type `help` for commands, `exit` to leave.\n", user_name_));
  }
  prompt();
  std::string line;
  auto last_input = Clock::now();
  ssh_event event = ssh_event_new();
  ssh_event_add_session(event, session_);
  bool leave = false;
  // Input that came with the EOF (a script piped into `ssh -tt`) is still read.
  while (!gw_.stopping && ssh_channel_is_open(channel_) && !leave &&
         !(input_eof_ && input_.empty())) {
    if (input_.empty() && ssh_event_dopoll(event, 200) == SSH_ERROR) break;
    if (input_.empty()) {
      if (Clock::now() - last_input > std::chrono::minutes(30)) break;
      continue;
    }
    last_input = Clock::now();
    std::string chunk = std::move(input_);
    input_.clear();
    for (char ch : chunk) {
      if (ch == '\r' || ch == '\n') {
        Write("\n");
        if (line == "exit" || line == "quit") {
          leave = true;
          break;
        }
        auto argv = SplitCommandLine(line);
        line.clear();
        if (!argv.ok()) {
          Write("vmctl: " + argv.error().message() + "\n", true);
        } else if (user_id_.empty() && argv->size() == 2 && argv->front() == "verify") {
          Verify(argv->back());
        } else if (user_id_.empty() && !argv->empty()) {
          Register(argv->front());
        } else {
          ExecuteGuarded(*argv);
        }
        prompt();
      } else if (ch == 0x7f || ch == 0x08) {
        if (!line.empty()) {
          line.pop_back();
          Echo("\b \b");
        }
      } else if (ch == 0x03) {  // Ctrl-C drops the line
        line.clear();
        Write("^C\n");
        prompt();
      } else if (ch == 0x04 && line.empty()) {  // Ctrl-D on an empty line leaves
        leave = true;
        break;
      } else if (ch >= 0x20 && ch < 0x7f && line.size() < kMaxCommandLine) {
        // Printable ASCII only: echoing a multi-byte character byte by byte could let a
        // terminal read a control sequence into it, and commands, names and emails are ASCII.
        line += ch;
        Echo(std::string_view(&ch, 1));
      }
    }
  }
  ssh_event_remove_session(event, session_);
  ssh_event_free(event);
}

void Connection::Finish(int status) {
  ssh_channel_request_send_exit_status(channel_, status);
  ssh_channel_send_eof(channel_);
  ssh_channel_close(channel_);
}

void Connection::Run() {
  if (!Authenticate()) return;
  if (!gw_.LoggedIn(id_, !auth_.user_id().empty())) {
    spdlog::warn(
        "ssh: ended a connection from {} at login: its handshake ran out of time, or "
        "{} sessions are open already",
        source_, gw_.options.max_sessions);
    return;
  }
  if (!auth_.user_id().empty()) {
    user_id_ = auth_.user_id();
    auto user = gw_.accounts.GetUser(user_id_);
    user_name_ = user.ok() ? user->name : user_id_;
  }
  Route();
  if (bridge_) {
    bridge_->Run(gw_.stopping,
                 fmt::format("\r\nvmctl: the connection to VM '{}' ended (it stopped or "
                             "restarted)\r\n",
                             vm_name_),
                 gw_.options.handshake_timeout);
    return;
  }
  // Until the session channel asks for a shell or a command, or a ProxyJump is relayed.
  if (!PollUntil([this] { return WaitForRequest() || bridge_ != nullptr; })) return;
  if (bridge_) {  // ProxyJump from command mode
    bridge_->Run(gw_.stopping, "", gw_.options.handshake_timeout);
    return;
  }
  if (route_error_) {
    Write("vmctl: " + route_error_->message() + "\n", true);
    Finish(route_error_->ExitCode());
  } else if (exec_) {
    auto argv = SplitCommandLine(*exec_);
    int status = 0;
    if (!argv.ok()) {
      Write("vmctl: " + argv.error().message() + "\n", true);
      status = argv.error().ExitCode();
    } else {
      status = ExecuteGuarded(*argv);
    }
    Finish(status);
  } else {
    Interactive();
    Finish(0);
  }
  Linger();
}

// The client hangs up once it has the exit status and the close; hanging up first would make it
// fail with "Broken pipe" (exit 255) after all.
void Connection::Linger() {
  ssh_event event = ssh_event_new();
  ssh_event_add_session(event, session_);
  for (int i = 0; i < 50 && ssh_is_connected(session_); ++i) {
    if (ssh_event_dopoll(event, 100) == SSH_ERROR) break;
  }
  ssh_event_remove_session(event, session_);
  ssh_event_free(event);
  ssh_channel_free(channel_);
}

Result<void> Gateway::Impl::LoadHostKey() {
  const fs::path& path = options.host_key;
  if (!fs::exists(path)) {
    ssh_key key = nullptr;
    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
      return Internal("cannot generate the gateway's host key");
    }
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    fs::path partial = path.string() + ".partial";
    int rc = ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, partial.c_str());
    ssh_key_free(key);
    if (rc != SSH_OK || ::chmod(partial.c_str(), 0600) != 0) {
      return Internal(fmt::format("cannot write the gateway's host key {}", partial.string()));
    }
    fs::rename(partial, path, ec);
    if (ec) return Internal(fmt::format("cannot install {}: {}", path.string(), ec.message()));
  }
  if (ssh_pki_import_privkey_file(path.c_str(), nullptr, nullptr, nullptr, &host_key) != SSH_OK) {
    return Internal(fmt::format("cannot read the gateway's host key {}", path.string()));
  }
  return Ok();
}

void Gateway::Impl::AcceptLoop() {
  std::vector<pollfd> fds;
  for (const auto& fd : listeners) fds.push_back({fd.get(), POLLIN, 0});
  fds.push_back({stop_event.get(), POLLIN, 0});
  while (!stopping) {
    // Wakes often enough to enforce the handshake deadlines to a fraction of a second.
    if (::poll(fds.data(), fds.size(), 250) < 0 && errno != EINTR) break;
    if (fds.back().revents) break;
    // The thread's boundary: a failure here is logged, and the gateway goes on accepting.
    try {
      for (size_t i = 0; i + 1 < fds.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        sockaddr_in peer{};
        socklen_t len = sizeof(peer);
        int fd = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
        if (fd < 0) continue;
        char source[INET_ADDRSTRLEN] = "";
        ::inet_ntop(AF_INET, &peer.sin_addr, source, sizeof(source));
        Arrive(fd, source, "");
      }
      Admission::Actions actions;
      std::unique_lock lock(mu);
      admission.Expire(Clock::now(), actions);
      Apply(actions, lock);
    } catch (const std::exception& e) {
      spdlog::error("ssh: accepting connections: {}", e.what());
    }
  }
}

void Gateway::Impl::Arrive(int fd, const std::string& source, const std::string& jump_vm) {
  Admission::Actions actions;
  std::unique_lock lock(mu);
  if (stopping) {
    ::close(fd);
    return;
  }
  uint64_t id = next_id++;
  switch (admission.Arrive(id, source, Clock::now(), actions)) {
    case Admission::Arrival::kRefuse:
      ::close(fd);
      // At debug level: a flood would fill the log.
      spdlog::debug("ssh: refused a connection from {}: too many waiting to log in", source);
      return;
    case Admission::Arrival::kStart:
      actions.start.push_back(id);
      [[fallthrough]];
    case Admission::Arrival::kQueue:
      accepted[id] = {fd, source, jump_vm};
      break;
  }
  Apply(actions, lock);
}

bool Gateway::Impl::LoggedIn(uint64_t id, bool registered) {
  Admission::Actions actions;
  std::unique_lock lock(mu);
  bool ok = admission.LoggedIn(id, registered, Clock::now(), actions);
  Apply(actions, lock);
  return ok;
}

void Gateway::Impl::Apply(const Admission::Actions& actions, std::unique_lock<std::mutex>& lock) {
  for (uint64_t id : actions.end) {
    auto it = accepted.find(id);
    // Its thread sees the hangup, ends and calls Finished.
    if (it != accepted.end() && it->second.fd >= 0) ::shutdown(it->second.fd, SHUT_RDWR);
  }
  for (uint64_t id : actions.close) {
    auto it = accepted.find(id);
    if (it == accepted.end()) continue;
    ::close(it->second.fd);
    accepted.erase(it);
  }
  std::vector<uint64_t> start;
  for (uint64_t id : actions.start) {
    auto it = accepted.find(id);
    if (it == accepted.end()) continue;  // closed by Stop
    if (stopping) {
      ::close(it->second.fd);
      accepted.erase(it);
      continue;
    }
    it->second.running = true;
    ++running;
    start.push_back(id);
  }
  lock.unlock();
  for (uint64_t id : start) Start(id);
}

void Gateway::Impl::Start(uint64_t id) {
  int fd;
  std::string source, jump_vm;
  {
    std::lock_guard lock(mu);
    const Accepted& a = accepted.at(id);
    fd = a.fd;
    source = a.source;
    jump_vm = a.jump_vm;
  }
  auto closed = [this, id] {
    std::lock_guard lock(mu);
    accepted.at(id).fd = -1;  // closed next: no one shuts it down any more
  };
  ssh_session session = ssh_new();
  int bound;
  {
    std::lock_guard lock(bind_mu);  // the accept thread and jumping connections share the bind
    bound = session ? ssh_bind_accept_fd(bind, session, fd) : SSH_ERROR;
  }
  if (bound != SSH_OK) {
    if (session) ssh_free(session);
    closed();
    ::close(fd);
    Finished(id);
    return;
  }
  long timeout = static_cast<long>(options.handshake_timeout.count());
  ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout);
  auto serve = [this, id, session, fd, source, jump_vm, closed] {
    {
      SessionPtr owned(session);
      // The thread's boundary: whatever goes wrong ends this connection only.
      try {
        Connection(*this, id, session, source, LocalAddress(fd), jump_vm).Run();
      } catch (const std::exception& e) {
        spdlog::error("ssh: connection from {} failed: {}", source, e.what());
      } catch (...) {
        spdlog::error("ssh: connection from {} failed", source);
      }
      closed();
    }
    Finished(id);
  };
  try {
    std::thread(serve).detach();
  } catch (const std::system_error& e) {
    spdlog::error("ssh: no thread for a connection from {}: {}", source, e.what());
    closed();
    ssh_free(session);
    Finished(id);
  }
}

void Gateway::Impl::Finished(uint64_t id) {
  Admission::Actions actions;
  std::unique_lock lock(mu);
  auto it = accepted.find(id);
  if (it == accepted.end()) return;
  if (it->second.running) --running;
  accepted.erase(it);
  admission.Leave(id, Clock::now(), actions);
  idle.notify_all();
  Apply(actions, lock);
}

Gateway::Gateway(GatewayOptions options, controller::AccountService& accounts,
                 controller::VmService& vms)
    : impl_(std::make_unique<Impl>(std::move(options), accounts, vms)) {}

Gateway::~Gateway() { Stop(); }

Result<void> Gateway::Start() {
  ssh_init();
  VMCTL_TRY(impl_->LoadHostKey());
  impl_->stop_event = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  for (const auto& text : impl_->options.listen) {
    VMCTL_ASSIGN_OR_RETURN(auto address, ParseListen(text));
    VMCTL_ASSIGN_OR_RETURN(UniqueFd fd, Listen(address.first, address.second));
    impl_->ports.push_back(BoundPort(fd.get()));
    impl_->listeners.push_back(std::move(fd));
  }
  impl_->bind = ssh_bind_new();
  ssh_bind_options_set(impl_->bind, SSH_BIND_OPTIONS_IMPORT_KEY, impl_->host_key);
  impl_->accept_thread = std::thread([this] { impl_->AcceptLoop(); });
  return Ok();
}

void Gateway::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->stop_event.valid()) {
    uint64_t one = 1;
    (void)::write(impl_->stop_event.get(), &one, sizeof(one));
  }
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  std::unique_lock lock(impl_->mu);
  for (auto it = impl_->accepted.begin(); it != impl_->accepted.end();) {
    if (it->second.running) {
      if (it->second.fd >= 0) ::shutdown(it->second.fd, SHUT_RDWR);
      ++it;
    } else {
      ::close(it->second.fd);  // waiting for its turn: no thread
      it = impl_->accepted.erase(it);
    }
  }
  impl_->idle.wait(lock, [&] { return impl_->running == 0; });
}

std::vector<uint16_t> Gateway::ports() const { return impl_->ports; }

}  // namespace vmctl::ssh_gateway
