#include "ssh_gateway/gateway.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
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
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"
#include "cli/commands.h"
#include "model/vm.h"
#include "ssh_gateway/accounts.h"
#include "ssh_gateway/command_line.h"
#include "ssh_gateway/key_auth.h"

namespace vmctl::ssh_gateway {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The CLI commands command mode offers, as they are (`new` maps onto `create`).
const std::set<std::string> kCliCommands = {"ls",   "show",    "rm",     "start",
                                            "stop", "restart", "resize", "share"};

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

std::string KeyLine(ssh_key key) {
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) return "";
  std::string line = fmt::format("{} {}", ssh_key_type_to_char(ssh_key_type(key)), b64);
  ssh_string_free_char(b64);
  return line;
}

}  // namespace

struct Gateway::Impl {
  Impl(GatewayOptions o, Store& s) : options(std::move(o)), store(s), accounts(s) {}
  ~Impl() {
    if (host_key) ssh_key_free(host_key);
  }

  GatewayOptions options;
  Store& store;
  Accounts accounts;
  ssh_key host_key = nullptr;
  std::vector<UniqueFd> listeners;
  std::vector<uint16_t> ports;
  UniqueFd stop_event;
  std::atomic<bool> stopping{false};
  std::vector<std::thread> accept_threads;
  std::mutex mu;
  std::condition_variable idle;
  std::set<int> session_fds;  // shut down by Stop() to end their sessions

  Result<void> LoadHostKey();
  void AcceptLoop(int listen_fd);
  void Serve(int fd);
};

// One connection: handshake, authentication, then one session channel in command mode.
class Connection {
 public:
  Connection(Gateway::Impl& gw, ssh_session session)
      : gw_(gw),
        session_(session),
        auth_([&gw](const std::string& fp) { return gw.accounts.Owner(fp); }) {}

  void Run();

 private:
  static int OnPubkey(ssh_session, const char*, ssh_key_struct* key, char state, void* self);
  static int OnMessage(ssh_session, ssh_message message, void* self);
  static ssh_channel OnChannelOpen(ssh_session, void* self);
  static int OnPty(ssh_session, ssh_channel, const char*, int, int, int, int, void* self);
  static int OnShell(ssh_session, ssh_channel, void* self);
  static int OnExec(ssh_session, ssh_channel, const char* command, void* self);
  static int OnData(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* self);
  static void OnEof(ssh_session, ssh_channel, void* self);

  bool Authenticate();
  bool WaitForRequest();
  void Write(std::string_view data, bool stderr_stream = false);
  int Execute(const std::vector<std::string>& argv);
  int RunCli(std::vector<std::string> argv);
  int Register(const std::string& email);
  int SshKey(const std::vector<std::string>& argv);
  void Interactive();
  void Finish(int status);

  Gateway::Impl& gw_;
  ssh_session session_;
  KeyAuth auth_;
  ssh_server_callbacks_struct server_cb_{};
  ssh_channel_callbacks_struct channel_cb_{};
  ssh_channel channel_ = nullptr;
  bool pty_ = false;
  bool shell_ = false;
  std::optional<std::string> exec_;
  std::string input_;
  bool input_eof_ = false;
  std::string user_id_, user_name_;
};

int Connection::OnPubkey(ssh_session, const char*, ssh_key_struct* key, char state, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (state != SSH_PUBLICKEY_STATE_NONE && state != SSH_PUBLICKEY_STATE_VALID) {
    return SSH_AUTH_DENIED;
  }
  switch (
      c->auth_.OnPublicKey(Fingerprint(key), KeyLine(key), state == SSH_PUBLICKEY_STATE_VALID)) {
    case KeyAuth::Reply::kPkOk:
    case KeyAuth::Reply::kSuccess:
      return SSH_AUTH_SUCCESS;
    case KeyAuth::Reply::kPartial:
      ssh_set_auth_methods(c->session_, SSH_AUTH_METHOD_PUBLICKEY | SSH_AUTH_METHOD_INTERACTIVE);
      return SSH_AUTH_PARTIAL;
    case KeyAuth::Reply::kFailure:
      break;
  }
  return SSH_AUTH_DENIED;
}

// Keyboard-interactive has no callback of its own: it arrives as a message.
int Connection::OnMessage(ssh_session, ssh_message message, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (ssh_message_type(message) != SSH_REQUEST_AUTH ||
      ssh_message_subtype(message) != SSH_AUTH_METHOD_INTERACTIVE) {
    return 1;
  }
  if (c->auth_.OnKeyboardInteractive() != KeyAuth::Reply::kSuccess) return 1;
  if (!ssh_message_auth_kbdint_is_response(message)) {
    ssh_message_auth_interactive_request(message, "", "", 0, nullptr, nullptr);
  } else {
    ssh_message_auth_reply_success(message, 0);
  }
  return 0;
}

ssh_channel Connection::OnChannelOpen(ssh_session session, void* self) {
  auto* c = static_cast<Connection*>(self);
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
  auto* c = static_cast<Connection*>(self);
  if (c->shell_ || c->exec_) return 1;
  c->exec_ = command;
  return 0;
}

int Connection::OnData(ssh_session, ssh_channel, void* data, uint32_t len, int, void* self) {
  auto* c = static_cast<Connection*>(self);
  // A line editor needs little; a client pasting megabytes is cut off, not buffered.
  if (c->input_.size() + len > 4 * kMaxCommandLine) return static_cast<int>(len);
  c->input_.append(static_cast<const char*>(data), len);
  return static_cast<int>(len);
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
  ssh_event event = ssh_event_new();
  ssh_event_add_session(event, session_);
  auto deadline = Clock::now() + gw_.options.handshake_timeout;
  while (!gw_.stopping && Clock::now() < deadline &&
         !(ssh_get_status(session_) & (SSH_CLOSED | SSH_CLOSED_ERROR)) && !WaitForRequest()) {
    if (ssh_event_dopoll(event, 200) == SSH_ERROR) break;
  }
  ssh_event_remove_session(event, session_);
  ssh_event_free(event);
  return WaitForRequest();
}

// Authenticated, with a session channel that asked for a shell or a command.
bool Connection::WaitForRequest() {
  return ssh_is_connected(session_) && channel_ != nullptr && (shell_ || exec_.has_value());
}

void Connection::Write(std::string_view data, bool stderr_stream) {
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
    return fmt::format("See it:  {} show {}", gw_.options.ssh_command, vm);
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
  auto user = gw_.accounts.Register(email, key);
  if (!user.ok()) {
    Write("vmctl: " + user.error().message() + "\n", true);
    return user.error().ExitCode();
  }
  user_id_ = user->id;
  user_name_ = user->name;
  Write(fmt::format("Welcome, {}! Your key {} is registered.\nCreate a VM:  {} new\n", user->name,
                    key.fingerprint, gw_.options.ssh_command));
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
    auto added = gw_.accounts.AddKey(user_id_, line);
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
    Write(fmt::format("vmctl: this SSH key ({}) is not registered yet; register it with:  {} "
                      "register you@example.com\n",
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
                    "  share ls NAME | share add NAME EMAIL | share rm NAME EMAIL\n"
                    "  ssh-key ls|add KEY|rm FINGERPRINT\n"
                    "  whoami\n"
                    "Add --help to a command for its options.\n",
                    gw_.options.ssh_command));
    return 0;
  }
  if (command == "whoami") {
    auto user = gw_.store.GetUser(user_id_);
    if (!user.ok()) return user.error().ExitCode();
    Write(fmt::format("{} <{}>\n", user->name, user->email));
    return 0;
  }
  if (command == "ssh-key") return SshKey(argv);
  if (command == "register") {
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
  while (!gw_.stopping && ssh_channel_is_open(channel_) && !input_eof_) {
    if (ssh_event_dopoll(event, 200) == SSH_ERROR) break;
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
          input_eof_ = true;
          break;
        }
        auto argv = SplitCommandLine(line);
        line.clear();
        if (!argv.ok()) {
          Write("vmctl: " + argv.error().message() + "\n", true);
        } else if (user_id_.empty() && !argv->empty()) {
          Register(argv->front());
        } else {
          Execute(*argv);
        }
        prompt();
      } else if (ch == 0x7f || ch == 0x08) {
        if (!line.empty()) {
          line.pop_back();
          Write("\b \b");
        }
      } else if (ch == 0x03) {  // Ctrl-C drops the line
        line.clear();
        Write("^C\n");
        prompt();
      } else if (ch == 0x04 && line.empty()) {  // Ctrl-D on an empty line leaves
        input_eof_ = true;
        break;
      } else if (static_cast<unsigned char>(ch) >= 0x20 && line.size() < kMaxCommandLine) {
        line += ch;
        Write(std::string_view(&ch, 1));
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
  if (auth_.user_id().empty()) {
    user_id_.clear();
  } else {
    user_id_ = auth_.user_id();
    auto user = gw_.store.GetUser(user_id_);
    user_name_ = user.ok() ? user->name : user_id_;
  }
  if (exec_) {
    auto argv = SplitCommandLine(*exec_);
    int status = 0;
    if (!argv.ok()) {
      Write("vmctl: " + argv.error().message() + "\n", true);
      status = argv.error().ExitCode();
    } else {
      status = Execute(*argv);
    }
    Finish(status);
  } else {
    Interactive();
    Finish(0);
  }
  // The client hangs up once it has the exit status and the close; hanging up first would make
  // it fail with "Broken pipe" (exit 255) after all.
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

void Gateway::Impl::AcceptLoop(int listen_fd) {
  ssh_bind bind = ssh_bind_new();
  ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, host_key);
  while (!stopping) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {stop_event.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    {
      std::lock_guard lock(mu);
      if (static_cast<int>(session_fds.size()) >= options.max_sessions) {
        ::close(fd);
        continue;
      }
      session_fds.insert(fd);
    }
    ssh_session session = ssh_new();
    if (ssh_bind_accept_fd(bind, session, fd) != SSH_OK) {
      ssh_free(session);
      std::lock_guard lock(mu);
      session_fds.erase(fd);
      ::close(fd);
      continue;
    }
    long timeout = static_cast<long>(options.handshake_timeout.count());
    ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout);
    std::thread([this, session, fd] {
      {
        SessionPtr owned(session);
        Connection(*this, session).Run();
      }
      std::lock_guard lock(mu);
      session_fds.erase(fd);
      idle.notify_all();
    }).detach();
  }
  ssh_bind_free(bind);
}

Gateway::Gateway(GatewayOptions options, Store& store)
    : impl_(std::make_unique<Impl>(std::move(options), store)) {}

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
  for (const auto& fd : impl_->listeners) {
    impl_->accept_threads.emplace_back([this, raw = fd.get()] { impl_->AcceptLoop(raw); });
  }
  return Ok();
}

void Gateway::Stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->stop_event.valid()) {
    uint64_t one = 1;
    (void)::write(impl_->stop_event.get(), &one, sizeof(one));
  }
  for (auto& t : impl_->accept_threads) t.join();
  std::unique_lock lock(impl_->mu);
  for (int fd : impl_->session_fds) ::shutdown(fd, SHUT_RDWR);
  impl_->idle.wait(lock, [&] { return impl_->session_fds.empty(); });
}

std::vector<uint16_t> Gateway::ports() const { return impl_->ports; }

std::string Gateway::KnownHostsLine(const std::string& pattern) const {
  return fmt::format("{} {}", pattern, impl_->host_key ? KeyLine(impl_->host_key) : "");
}

}  // namespace vmctl::ssh_gateway
