#include "cli/commands.h"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "base/frame.h"
#include "base/io.h"
#include "cli/api_client.h"

namespace vmctl::cli {
namespace {

using nlohmann::json;

struct Globals {
  std::string socket;
  std::string user;
  Io io;
  std::function<std::string(const std::string& vm)> next_step;
};

template <typename... Args>
void Print(const Globals& g, fmt::format_string<Args...> format, Args&&... args) {
  g.io.out(fmt::format(format, std::forward<Args>(args)...));
}

int Fail(const Globals& g, const Error& error) {
  g.io.err("vmctl: " + error.message() + "\n");
  return error.ExitCode();
}

ApiClient Client(const Globals& g) {
  return ApiClient(g.socket.empty() ? DefaultSocketPath() : std::filesystem::path(g.socket),
                   g.user);
}

std::function<void(const std::string&)> Progress(const Globals& g) {
  return [&g](const std::string& line) { g.io.err("==> " + line + "\n"); };
}

std::string Mib(int64_t mib) {
  if (mib >= 1024 && mib % 1024 == 0) return fmt::format("{}G", mib / 1024);
  return fmt::format("{}M", mib);
}

std::string Age(int64_t created) {
  int64_t s = std::time(nullptr) - created;
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  if (s < 172800) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

// Parses sizes like 512, 512M, 2G into MiB.
Result<int64_t> ParseMib(const std::string& text) {
  if (text.empty()) return InvalidArgument("empty size");
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    return InvalidArgument(fmt::format("bad size '{}' (examples: 512M, 2G)", text));
  }
  std::string unit = text.substr(used);
  if (unit.empty() || unit == "M" || unit == "m" || unit == "MiB") return value;
  if (unit == "G" || unit == "g" || unit == "GiB") return value * 1024;
  return InvalidArgument(fmt::format("bad size '{}' (examples: 512M, 2G)", text));
}

void PrintVm(const Globals& g, const json& vm) {
  Print(g, "name:     {}\n", vm.value("name", ""));
  Print(g, "id:       {}\n", vm.value("id", ""));
  Print(g, "state:    {}\n", vm.value("state", ""));
  Print(g, "image:    {}\n", vm.value("image", ""));
  Print(g, "cpus:     {}\n", vm.value("cpus", 0));
  Print(g, "memory:   {}\n", Mib(vm.value("memory_mib", int64_t{0})));
  Print(g, "backend:  {}\n", vm.value("backend", ""));
  Print(g, "storage:  {}\n", vm.value("storage", ""));
  for (const auto& d : vm.value("disks", json::array())) {
    Print(g, "{:<9} {} ({}), {:.1f} MiB allocated, {} {}\n",
          d.value("role", "") + " disk:", Mib(d.value("size_bytes", int64_t{0}) >> 20),
          d.value("format", ""),
          static_cast<double>(d.value("allocated_bytes", int64_t{0})) / (1 << 20),
          d.value("path", ""), d.value("role", "") == "data" ? "-> /data" : "-> /");
  }
  if (vm.contains("disks_error")) Print(g, "disks:    {}\n", vm.value("disks_error", ""));
  Print(g, "address:  {}\n", vm.value("address", "").empty() ? "-" : vm.value("address", ""));
  if (!vm.value("ssh_address", "").empty()) {
    Print(g, "ssh address: {} (the SSH gateway routes connections to it here)\n",
          vm.value("ssh_address", ""));
  }
  Print(g, "mac:      {}\n", vm.value("mac", ""));
  Print(g, "tap:      {}\n", vm.value("tap", ""));
  int64_t kbit = vm.value("bandwidth_kbit", int64_t{0});
  Print(g, "bandwidth: {}\n",
        kbit == 0 ? std::string("unlimited")
                  : (kbit % 1000 == 0 ? fmt::format("{} mbit", kbit / 1000)
                                      : fmt::format("{} kbit", kbit)) +
                        " each way");
  if (vm.value("pid", 0) != 0) Print(g, "pid:      {}\n", vm.value("pid", 0));
  Print(g, "created:  {} ago\n", Age(vm.value("created_at", int64_t{0})));
  if (!vm.value("error", "").empty()) Print(g, "error:    {}\n", vm.value("error", ""));
}

// Raw terminal mode for `exec -t`, restored on destruction.
class RawTerminal {
 public:
  RawTerminal() {
    if (::tcgetattr(0, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

std::atomic<bool> g_winch{false};

int RunExec(const Globals& g, const std::string& name, const std::vector<std::string>& argv,
            bool tty, const std::vector<std::string>& env, const std::string& cwd) {
  agent::ExecRequest request;
  request.argv = argv;
  request.cwd = cwd;
  request.tty = tty;
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Fail(g, InvalidArgument(fmt::format("bad --env '{}': expected NAME=VALUE", e)));
    }
    request.env[e.substr(0, eq)] = e.substr(eq + 1);
  }
  if (tty) {
    winsize ws{};
    if (::ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
      request.rows = ws.ws_row;
      request.cols = ws.ws_col;
    }
  }
  std::string early;
  auto conn = Client(g).StartExec(name, request, &early);
  if (!conn.ok()) return Fail(g, conn.error());
  const int fd = conn->get();
  std::optional<RawTerminal> raw;
  if (tty && ::isatty(0)) {
    raw.emplace();
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_winch = true; };
    ::sigaction(SIGWINCH, &sa, nullptr);
  }
  // stdin is forwarded until EOF, then closed remotely (so `echo hi | vmctl exec v -- cat` ends).
  std::thread([fd] {
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(0, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        (void)WriteFrame(fd, {{"type", "stdin_close"}});
        return;
      }
      if (!WriteFrame(fd, {{"type", "stdin"},
                           {"data", Base64Encode(std::string_view(buf, static_cast<size_t>(n)))}})
               .ok()) {
        return;
      }
    }
  }).detach();
  FrameDecoder decoder;
  decoder.Feed(early);
  for (;;) {
    for (;;) {
      auto frame = decoder.Next();
      if (!frame.ok()) return Fail(g, frame.error());
      if (!frame->has_value()) break;
      const json& f = **frame;
      std::string type = f.value("type", "");
      if (type == "stdout" || type == "stderr") {
        auto data = Base64Decode(f.value("data", ""));
        if (!data.ok()) return Fail(g, data.error());
        (void)WriteAll(type == "stdout" ? 1 : 2, *data);
      } else if (type == "exit") {
        raw.reset();
        return f.value("code", 1);
      } else if (type == "error") {
        raw.reset();
        return Fail(g, Error(ErrorCodeFromName(f.value("code", "internal")),
                             f.value("message", "exec failed")));
      }
    }
    if (g_winch.exchange(false)) {
      winsize ws{};
      if (::ioctl(1, TIOCGWINSZ, &ws) == 0) {
        (void)WriteFrame(fd, {{"type", "resize"}, {"rows", ws.ws_row}, {"cols", ws.ws_col}});
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    auto data = ReadSome(fd, 65536);
    if (!data.ok() || data->empty()) {
      raw.reset();
      return Fail(g, Unavailable("the connection to the daemon closed before the command ended"));
    }
    decoder.Feed(*data);
  }
}

}  // namespace

Io TerminalIo() {
  return {[](std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); },
          [](std::string_view s) {
            std::fflush(stdout);
            std::fwrite(s.data(), 1, s.size(), stderr);
          }};
}

void AddCommands(CLI::App& app, int* exit_code, const CommandOptions& options) {
  auto g = std::make_shared<Globals>();
  g->socket = options.socket;
  g->user = options.user;
  g->io = options.io;
  g->next_step = options.next_step;
  if (options.socket.empty()) {
    app.add_option("--socket", g->socket,
                   "daemon API socket (default $VMCTL_SOCKET or "
                   "/run/vmctl/vmctl.sock)");
  }
  auto done = [exit_code](int code) { *exit_code = code; };

  // create
  {
    struct Opts {
      std::string name, image = "default", memory = "512M", root_disk = "2G", disk = "1G",
                        bandwidth;
      int cpus = 1;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("create", "create and boot a VM");
    cmd->add_option("name", o->name, "VM name (lowercase letters, digits, '-')")->required();
    cmd->add_option("--image", o->image, "image name")->capture_default_str();
    cmd->add_option("--cpus", o->cpus, "virtual CPUs")->capture_default_str();
    cmd->add_option("--memory", o->memory, "memory, e.g. 512M or 2G")->capture_default_str();
    cmd->add_option("--root-disk", o->root_disk, "root disk size, e.g. 4G")->capture_default_str();
    cmd->add_option("--disk", o->disk, "persistent data disk mounted at /data, e.g. 10G (0: none)")
        ->capture_default_str();
    cmd->add_option("--bandwidth", o->bandwidth,
                    "network limit in each direction, e.g. 100mbit (default: unlimited)");
    cmd->add_flag("--json", o->json, "print the VM as JSON");
    cmd->callback([g, o, done] {
      auto memory = ParseMib(o->memory);
      if (!memory.ok()) return done(Fail(*g, memory.error().WithContext("--memory")));
      auto root_disk = ParseMib(o->root_disk);
      if (!root_disk.ok()) return done(Fail(*g, root_disk.error().WithContext("--root-disk")));
      auto disk = ParseMib(o->disk);
      if (!disk.ok()) return done(Fail(*g, disk.error().WithContext("--disk")));
      json body = {{"name", o->name},       {"image", o->image},           {"cpus", o->cpus},
                   {"memory_mib", *memory}, {"root_disk_mib", *root_disk}, {"disk_mib", *disk}};
      if (!o->bandwidth.empty()) body["bandwidth"] = o->bandwidth;
      auto vm = Client(*g).CallWithProgress("POST", "/v1/vms", body, Progress(*g));
      if (!vm.ok()) return done(Fail(*g, vm.error()));
      if (o->json) {
        Print(*g, "{}\n", vm->dump(2));
      } else {
        std::string name = vm->value("name", "");
        Print(*g, "VM '{}' is {}.\n{}\n", name, vm->value("state", ""), g->next_step(name));
      }
      done(0);
    });
  }
  // ls
  {
    auto as_json = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand("ls", "list VMs");
    cmd->add_flag("--json", *as_json, "print JSON");
    cmd->callback([g, as_json, done] {
      auto list = Client(*g).Call("GET", "/v1/vms");
      if (!list.ok()) return done(Fail(*g, list.error()));
      if (*as_json) {
        Print(*g, "{}\n", (*list)["vms"].dump(2));
        return done(0);
      }
      Print(*g, "{:<20} {:<9} {:<15} {:>4} {:>7} {:>6} {:>6}  {:<10} {}\n", "NAME", "STATE",
            "ADDRESS", "CPUS", "MEMORY", "ROOT", "DATA", "IMAGE", "AGE");
      for (const auto& vm : (*list)["vms"]) {
        int64_t data = vm.value("disk_mib", int64_t{0});
        Print(*g, "{:<20} {:<9} {:<15} {:>4} {:>7} {:>6} {:>6}  {:<10} {}\n", vm.value("name", ""),
              vm.value("state", ""),
              vm.value("address", "").empty() ? "-" : vm.value("address", ""), vm.value("cpus", 0),
              Mib(vm.value("memory_mib", int64_t{0})), Mib(vm.value("root_disk_mib", int64_t{0})),
              data ? Mib(data) : "-", vm.value("image", ""),
              Age(vm.value("created_at", int64_t{0})));
      }
      done(0);
    });
  }
  // show
  {
    struct Opts {
      std::string name;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("show", "show one VM");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_flag("--json", o->json, "print JSON");
    cmd->callback([g, o, done] {
      auto vm = Client(*g).Call("GET", "/v1/vms/" + PathSegment(o->name));
      if (!vm.ok()) return done(Fail(*g, vm.error()));
      if (o->json) {
        Print(*g, "{}\n", vm->dump(2));
      } else {
        PrintVm(*g, *vm);
      }
      done(0);
    });
  }
  // start / restart / stop
  for (const char* action : {"start", "restart", "stop"}) {
    struct Opts {
      std::string name;
      bool force = false;
    };
    auto o = std::make_shared<Opts>();
    std::string what = action;
    auto* cmd = app.add_subcommand(action, what + " a VM");
    cmd->add_option("name", o->name, "VM name")->required();
    if (what == "stop") cmd->add_flag("--force", o->force, "kill the VMM without a clean shutdown");
    cmd->callback([g, o, what, done] {
      std::string target =
          "/v1/vms/" + PathSegment(o->name) + "/" + what + (o->force ? "?force=1" : "");
      auto vm = what == "stop"
                    ? Client(*g).Call("POST", target, json::object())
                    : Client(*g).CallWithProgress("POST", target, json::object(), Progress(*g));
      if (!vm.ok()) return done(Fail(*g, vm.error()));
      Print(*g, "VM '{}' is {}.\n", vm->value("name", ""), vm->value("state", ""));
      done(0);
    });
  }
  // resize
  {
    struct Opts {
      std::string name, disk, root_disk;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "resize", "grow a VM's disks (online when the storage and VMM allow, else at next start)");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("--disk", o->disk, "new size of the data disk, e.g. 20G");
    cmd->add_option("--root-disk", o->root_disk, "new size of the root disk, e.g. 8G");
    cmd->callback([g, o, done] {
      json body = json::object();
      for (const auto& [flag, text, field] :
           {std::tuple{"--disk", o->disk, "disk_mib"},
            std::tuple{"--root-disk", o->root_disk, "root_disk_mib"}}) {
        if (text.empty()) continue;
        auto mib = ParseMib(text);
        if (!mib.ok()) return done(Fail(*g, mib.error().WithContext(flag)));
        body[field] = *mib;
      }
      if (body.empty()) {
        return done(Fail(*g, InvalidArgument("give --disk SIZE and/or --root-disk SIZE")));
      }
      auto vm = Client(*g).CallWithProgress("POST", "/v1/vms/" + PathSegment(o->name) + "/resize",
                                            body, Progress(*g));
      if (!vm.ok()) return done(Fail(*g, vm.error()));
      Print(*g, "VM '{}': root disk {}, data disk {}.\n", vm->value("name", ""),
            Mib(vm->value("root_disk_mib", int64_t{0})), Mib(vm->value("disk_mib", int64_t{0})));
      done(0);
    });
  }
  // share ls|add|rm
  {
    struct Opts {
      std::string name, email;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* share = app.add_subcommand("share", "share a VM with other users, by their email");
    share->require_subcommand(1);
    auto path = [o] { return "/v1/vms/" + PathSegment(o->name) + "/shares"; };
    auto* ls = share->add_subcommand("ls", "who a VM is shared with");
    ls->add_option("name", o->name, "VM name")->required();
    ls->add_flag("--json", o->json, "print JSON");
    ls->callback([g, o, path, done] {
      auto r = Client(*g).Call("GET", path());
      if (!r.ok()) return done(Fail(*g, r.error()));
      if (o->json) {
        Print(*g, "{}\n", (*r)["shares"].dump(2));
        return done(0);
      }
      for (const auto& s : (*r)["shares"]) {
        Print(*g, "{} ({})\n", s.value("email", ""), s.value("name", ""));
      }
      done(0);
    });
    for (const char* verb : {"add", "rm"}) {
      bool add = std::string(verb) == "add";
      auto* cmd = share->add_subcommand(
          verb, add ? "share a VM with a registered user" : "stop sharing a VM with a user");
      cmd->add_option("name", o->name, "VM name")->required();
      cmd->add_option("email", o->email, "the user's email")->required();
      cmd->callback([g, o, path, done, add] {
        auto r = add ? Client(*g).Call("POST", path(), json{{"email", o->email}})
                     : Client(*g).Call("DELETE", path() + "?email=" + PathSegment(o->email));
        if (!r.ok()) return done(Fail(*g, r.error()));
        if (add) {
          Print(*g, "VM '{}' is shared with {}.\n", o->name, o->email);
        } else {
          Print(*g, "VM '{}' is no longer shared with {}.\n", o->name, o->email);
        }
        done(0);
      });
    }
  }
  // rm
  {
    auto name = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("rm", "remove a VM and everything it owns");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->callback([g, name, done] {
      auto r = Client(*g).Call("DELETE", "/v1/vms/" + PathSegment(*name));
      if (!r.ok()) return done(Fail(*g, r.error()));
      Print(*g, "VM '{}' removed.\n", *name);
      done(0);
    });
  }
  // exec
  {
    struct Opts {
      std::string name, cwd;
      std::vector<std::string> argv, env;
      bool tty = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand(
        "exec", "run a command in a VM: vmctl exec NAME -- CMD [ARGS...]; exits with its status");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_option("command", o->argv, "command and arguments (after --)")->required();
    cmd->add_flag("-t,--tty", o->tty, "allocate a terminal (interactive shells)");
    cmd->add_option("-e,--env", o->env, "NAME=VALUE environment entries");
    cmd->add_option("-w,--workdir", o->cwd, "working directory in the VM");
    cmd->callback([g, o, done] { done(RunExec(*g, o->name, o->argv, o->tty, o->env, o->cwd)); });
  }
  // logs
  {
    struct Opts {
      std::string name;
      bool follow = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("logs", "print a VM's serial console log");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_flag("-f,--follow", o->follow, "keep printing new output");
    cmd->callback([g, o, done] {
      auto r = Client(*g).Logs(o->name, o->follow, std::cout);
      done(r.ok() ? 0 : Fail(*g, r.error()));
    });
  }
  // image ls / build
  {
    auto* image = app.add_subcommand("image", "guest images");
    image->require_subcommand(1);
    auto as_json = std::make_shared<bool>(false);
    auto* ls = image->add_subcommand("ls", "list images");
    ls->add_flag("--json", *as_json, "print JSON");
    ls->callback([g, as_json, done] {
      auto list = Client(*g).Call("GET", "/v1/images");
      if (!list.ok()) return done(Fail(*g, list.error()));
      if (*as_json) {
        Print(*g, "{}\n", (*list)["images"].dump(2));
        return done(0);
      }
      Print(*g, "{:<16} {:>8}  {:<8} {:<40}\n", "NAME", "SIZE", "CREATED", "SOURCE");
      for (const auto& i : (*list)["images"]) {
        Print(*g, "{:<16} {:>8}  {:<8} {:<40}\n", i.value("name", ""),
              Mib(i.value("size_bytes", int64_t{0}) >> 20),
              Age(i.value("created_at", int64_t{0})) + " ago", i.value("source", ""));
      }
      done(0);
    });
    struct BuildOpts {
      std::string name = "default", debian, from_oci, dockerfile, context;
      std::vector<std::string> packages;
    };
    auto b = std::make_shared<BuildOpts>();
    auto* build = image->add_subcommand(
        "build",
        "build an image (cached by its inputs) from a Debian recipe, an OCI image or a Dockerfile");
    build->add_option("name", b->name, "image name")->capture_default_str();
    build->add_option("--debian", b->debian, "Debian suite, e.g. bookworm (the default recipe)");
    build->add_option("--packages", b->packages, "extra Debian packages, comma-separated")
        ->delimiter(',');
    build->add_option("--from-oci", b->from_oci,
                      "an OCI image layout directory, or an OCI or `docker save` archive");
    build->add_option("--dockerfile", b->dockerfile,
                      "a Dockerfile, built with buildah or docker when available");
    build->add_option("--context", b->context, "build context of --dockerfile (default: its dir)");
    build->callback([g, b, done] {
      int sources = !b->debian.empty() + !b->from_oci.empty() + !b->dockerfile.empty();
      if (sources > 1) {
        return done(Fail(*g, InvalidArgument("give one of --debian, --from-oci, --dockerfile")));
      }
      if (!b->packages.empty() && (!b->from_oci.empty() || !b->dockerfile.empty())) {
        return done(Fail(*g, InvalidArgument("--packages goes with the Debian recipe")));
      }
      if (!b->context.empty() && b->dockerfile.empty()) {
        return done(Fail(*g, InvalidArgument("--context goes with --dockerfile")));
      }
      // Paths are resolved here: the daemon does not share our working directory.
      auto absolute = [](const std::string& p) { return std::filesystem::absolute(p).string(); };
      json body = json::object();
      if (!b->from_oci.empty()) {
        body["oci"] = absolute(b->from_oci);
      } else if (!b->dockerfile.empty()) {
        body["dockerfile"] = absolute(b->dockerfile);
        if (!b->context.empty()) body["context"] = absolute(b->context);
      } else if (!b->debian.empty() || !b->packages.empty()) {
        json debian = {{"packages", b->packages}};
        if (!b->debian.empty()) debian["suite"] = b->debian;
        body["debian"] = debian;
      }
      auto r = Client(*g).CallWithProgress("POST", "/v1/images/" + PathSegment(b->name) + "/build",
                                           body, Progress(*g));
      if (!r.ok()) return done(Fail(*g, r.error()));
      Print(*g, "Image '{}' ready ({} MiB, {}).\n", r->value("name", ""),
            r->value("size_bytes", int64_t{0}) >> 20, r->value("source", ""));
      done(0);
    });
    auto rm_name = std::make_shared<std::string>();
    auto* rm = image->add_subcommand("rm", "remove an image (refused while VMs use it)");
    rm->add_option("name", *rm_name, "image name")->required();
    rm->callback([g, rm_name, done] {
      auto r = Client(*g).Call("DELETE", "/v1/images/" + PathSegment(*rm_name));
      if (!r.ok()) return done(Fail(*g, r.error()));
      for (const auto& line : r->value("notes", json::array())) {
        Progress (*g)(line.get<std::string>());
      }
      Print(*g, "Image '{}' removed.\n", *rm_name);
      done(0);
    });
  }
  if (!options.only.empty()) {
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      if (!options.only.count(sub->get_name())) app.remove_subcommand(sub);
    }
  }
}

}  // namespace vmctl::cli
