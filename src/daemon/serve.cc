#include "daemon/serve.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "api/server.h"
#include "base/process.h"
#include "base/unique_fd.h"
#include "cli/api_client.h"
#include "controller/accounts.h"
#include "controller/image_service.h"
#include "controller/smtp_mailer.h"
#include "controller/vm_service.h"
#include "image/builder.h"
#include "model/email.h"
#include "network/host_network.h"
#include "ssh_gateway/gateway.h"
#include "ssh_gateway/routing.h"
#include "storage/backends.h"
#include "store/sqlite/sqlite_store.h"
#include "vmm/cloud_hypervisor/backend.h"
#include "vmm/firecracker/backend.h"
#include "vmm/qemu/qemu_backend.h"

namespace vmctl::daemon {
namespace {

struct ServeOptions {
  std::string state_dir = "/var/lib/vmctl";
  std::string socket;
  std::string backend = "auto";
  std::string image_cache = "/var/cache/vmctl/images";
  std::string agent_binary;
  bool prepare_image = false;
  bool prepare_only = false;
  int max_vms = 0, max_cpus = 0;
  int64_t max_memory_mib = 0, max_disk_mib = 0;
  int boot_timeout_s = 120;
  std::string bridge = "vmctl0";
  std::string subnet = "10.0.0.1/16";
  std::vector<std::string> dns;
  std::string storage = "auto";
  std::string storage_dir;  // default: <state dir>/disks
  std::string lvm_vg;
  std::string lvm_pool;
  std::vector<std::string> ssh_listen = {"127.0.0.1:2222"};
  std::string ssh_host_key;
  std::string ssh_address_pool;
  std::string domain;
  int ssh_max_unauthenticated = 256;
  int ssh_max_unauthenticated_per_source = 32;
  std::string registration = "closed";
  std::string allow_email;
  int registrations_per_hour = 5;
  std::string smtp;
  std::string smtp_from;
  std::string verify_url;
  int64_t max_host_memory_bytes = 0;  // default: the host's memory
  int max_host_cpus = 0;              // default: the host's CPUs
  double cpu_overcommit = 4;
  double memory_overcommit = 1;
};

// The registration policy from the flags, and the mailer `verify` needs.
Result<controller::AccountsOptions> AccountOptions(const ServeOptions& o,
                                                   std::unique_ptr<controller::Mailer>* mailer) {
  controller::AccountsOptions options;
  VMCTL_ASSIGN_OR_RETURN(options.mode, controller::ParseRegistrationMode(o.registration));
  if (!o.allow_email.empty()) {
    auto allow = EmailAllowList::Parse(o.allow_email);
    if (!allow.ok()) return allow.error().WithContext("--allow-email");
    options.allow = *std::move(allow);
  }
  if (options.mode == controller::RegistrationMode::kAllowlist && options.allow.empty()) {
    return InvalidArgument("--registration allowlist needs --allow-email LIST");
  }
  if (o.registrations_per_hour < 1) {
    return InvalidArgument(fmt::format("--registrations-per-hour {} is not a positive number",
                                       o.registrations_per_hour));
  }
  options.max_registrations_per_source = o.registrations_per_hour;
  options.verify_url = o.verify_url;
  if (options.mode != controller::RegistrationMode::kVerify) return options;
  if (o.smtp.empty() || o.smtp_from.empty()) {
    return InvalidArgument("--registration verify needs --smtp HOST:PORT and --smtp-from ADDRESS");
  }
  auto server = controller::ParseHostPort(o.smtp);
  if (!server.ok()) return server.error().WithContext("--smtp");
  auto from = NormalizeEmail(o.smtp_from);
  if (!from.ok()) return from.error().WithContext("--smtp-from");
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  *mailer = controller::NewSmtpMailer(
      controller::SmtpOptions{server->first, server->second, *from, host});
  return options;
}

// The host-wide limits from the flags: the host's CPUs and memory unless given, times the
// overcommit factors.
Result<void> SetHostCapacity(const ServeOptions& o, controller::VmServiceOptions& vm_options) {
  if (o.cpu_overcommit <= 0 || o.memory_overcommit <= 0) {
    return InvalidArgument(fmt::format("overcommit factors must be positive (got {} and {})",
                                       o.cpu_overcommit, o.memory_overcommit));
  }
  if (o.max_host_cpus < 0 || o.max_host_memory_bytes < 0) {
    return InvalidArgument("--max-host-cpus and --max-host-memory cannot be negative");
  }
  if (o.max_host_memory_bytes > 0 && o.max_host_memory_bytes < (int64_t{1} << 20)) {
    return InvalidArgument(fmt::format("--max-host-memory {} is {} bytes; give a unit, e.g. 16G",
                                       o.max_host_memory_bytes, o.max_host_memory_bytes));
  }
  int64_t cpus = o.max_host_cpus ? o.max_host_cpus : ::sysconf(_SC_NPROCESSORS_ONLN);
  int64_t memory_mib =
      o.max_host_memory_bytes
          ? o.max_host_memory_bytes >> 20
          : (static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE)) >> 20;
  vm_options.host_cpus = std::max<int>(1, static_cast<int>(cpus * o.cpu_overcommit));
  vm_options.host_memory_mib = std::max<int64_t>(
      1, static_cast<int64_t>(static_cast<double>(memory_mib) * o.memory_overcommit));
  spdlog::info("host capacity for VMs: {} CPUs, {} MiB memory", vm_options.host_cpus,
               vm_options.host_memory_mib);
  return Ok();
}

network::HostNetworkOptions NetworkOptions(const std::filesystem::path& state_dir,
                                           const std::string& bridge, const std::string& subnet,
                                           const std::vector<std::string>& dns) {
  network::HostNetworkOptions options;
  options.bridge = bridge;
  options.gateway = subnet;
  if (!dns.empty()) options.dns = dns;
  options.state_file = state_dir / "network.json";
  return options;
}

std::filesystem::path SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::current_path() : exe.parent_path();
}

bool KvmUsable() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

// Picks the VMM per --backend. auto: Cloud Hypervisor when /dev/kvm and its binary exist, else
// Firecracker likewise, else QEMU (KVM when usable, else TCG).
Result<std::unique_ptr<vmm::Backend>> ChooseBackend(const std::string& choice, std::string* why) {
  bool kvm = KvmUsable();
  bool ch = FindProgram("cloud-hypervisor").has_value();
  bool fc = FindProgram("firecracker").has_value();
  auto qemu = [&]() -> Result<std::unique_ptr<vmm::Backend>> {
    if (!FindProgram("qemu-system-x86_64")) {
      return NotFound("qemu-system-x86_64 is not installed (run scripts/setup.sh)");
    }
    vmm::qemu::QemuOptions options;
    spdlog::info("qemu accelerator: {}", vmm::qemu::ResolveAccel(options.accel, "/dev/kvm", [&] {
                                           return vmm::qemu::ProbeKvm(options.binary);
                                         }).reason);
    return vmm::qemu::NewQemuBackend(options);
  };
  if (choice == "qemu") {
    *why = "chosen with --backend qemu";
    return qemu();
  }
  if (choice == "cloud-hypervisor" || choice == "firecracker") {
    if (!kvm) return FailedPrecondition(choice + " needs /dev/kvm, which this host lacks");
    *why = "chosen with --backend " + choice;
    if (choice == "cloud-hypervisor") {
      return vmm::cloud_hypervisor::NewCloudHypervisorBackend({});
    }
    return vmm::firecracker::NewFirecrackerBackend({});
  }
  if (choice != "auto") {
    return InvalidArgument(fmt::format(
        "unknown backend '{}' (use auto, cloud-hypervisor, firecracker or qemu)", choice));
  }
  if (kvm && ch) {
    *why = "auto: /dev/kvm and cloud-hypervisor are present";
    return vmm::cloud_hypervisor::NewCloudHypervisorBackend({});
  }
  if (kvm && fc) {
    *why = "auto: /dev/kvm and firecracker are present, cloud-hypervisor is not";
    return vmm::firecracker::NewFirecrackerBackend({});
  }
  *why = kvm ? "auto: /dev/kvm present but neither cloud-hypervisor nor firecracker is "
               "installed; QEMU (with KVM if a vCPU runs on it, see the accelerator line)"
             : "auto: no /dev/kvm, so QEMU with TCG software emulation (slower boots)";
  return qemu();
}

// One daemon per state directory: a second one would fight over the same VMs.
Result<UniqueFd> LockStateDir(const std::filesystem::path& dir) {
  UniqueFd fd(::open((dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("open " + (dir / "lock").string(), errno);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    return AlreadyExists(
        fmt::format("another vmctl daemon is using the state directory {}", dir.string()));
  }
  return fd;
}

Result<void> EnsureAdmin(Store& store, const ServeOptions& o) {
  auto admin = store.GetUser("admin");
  if (!admin.ok()) {
    if (admin.error().code() != ErrorCode::kNotFound) return admin.error();
    auto created = store.CreateUser(User{"admin", "admin", "", std::time(nullptr)});
    if (!created.ok()) return created.error();
  }
  VMCTL_ASSIGN_OR_RETURN(Quota quota, store.GetQuota("admin"));
  quota.user_id = "admin";
  if (o.max_vms) quota.max_vms = o.max_vms;
  if (o.max_cpus) quota.max_cpus = o.max_cpus;
  if (o.max_memory_mib) quota.max_memory_mib = o.max_memory_mib;
  if (o.max_disk_mib) quota.max_disk_mib = o.max_disk_mib;
  return store.SetQuota(quota);
}

// Addresses are kept for a VM's lifetime, so a changed --subnet would strand existing VMs.
Result<void> CheckAddressesInSubnet(Store& store, const network::NetworkInfo& info) {
  VMCTL_ASSIGN_OR_RETURN(auto vms, store.ListVms(std::nullopt));
  for (const auto& vm : vms) {
    if (vm.address.empty()) continue;
    auto address = network::ParseIpv4(vm.address);
    if (!address.ok() || !info.gateway.Contains(*address)) {
      return FailedPrecondition(fmt::format(
          "VM '{}' (owner {}) has the address {}, outside --subnet {}; use the subnet its "
          "VMs were created in, or remove them first",
          vm.name, vm.owner, vm.address, info.gateway.ToString()));
    }
  }
  return Ok();
}

int Serve(const ServeOptions& o) {
  ::signal(SIGPIPE, SIG_IGN);
  auto fail = [](const Error& e) {
    std::cerr << "vmctl serve: " << e.message() << "\n";
    return e.ExitCode();
  };
  std::filesystem::path state_dir = std::filesystem::absolute(o.state_dir);
  std::filesystem::path socket =
      o.socket.empty() ? cli::DefaultSocketPath() : std::filesystem::path(o.socket);
  std::error_code ec;
  std::filesystem::create_directories(state_dir / "vms", ec);
  if (ec)
    return fail(Internal(fmt::format("cannot create {}: {}", state_dir.string(), ec.message())));
  ::chmod(state_dir.c_str(), 0700);
  std::filesystem::create_directories(socket.parent_path(), ec);
  auto lock = LockStateDir(state_dir);
  if (!lock.ok()) return fail(lock.error());
  // Bad flags are refused before anything is set up.
  std::unique_ptr<controller::Mailer> mailer;
  auto account_options = AccountOptions(o, &mailer);
  if (!account_options.ok()) return fail(account_options.error());
  controller::VmServiceOptions vm_options;
  if (auto r = SetHostCapacity(o, vm_options); !r.ok()) return fail(r.error());

  auto store = OpenSqliteStore(state_dir / "vmctl.db");
  if (!store.ok()) return fail(store.error().WithContext("opening the state database"));
  if (auto r = EnsureAdmin(**store, o); !r.ok()) return fail(r.error());

  std::string why;
  auto backend = ChooseBackend(o.backend, &why);
  if (!backend.ok()) return fail(backend.error());
  spdlog::info("backend: {} ({})", (*backend)->name(), why);

  storage::BackendChoice choice;
  choice.requested = o.storage;
  choice.dir =
      o.storage_dir.empty() ? state_dir / "disks" : std::filesystem::absolute(o.storage_dir);
  choice.lvm = {o.lvm_vg, o.lvm_pool};
  choice.vmm_takes_qcow2 = (*backend)->capabilities().qcow2_disks;
  std::string storage_why;
  auto volumes = storage::ChooseBackend(choice, &storage_why);
  if (!volumes.ok()) return fail(volumes.error().WithContext("choosing the storage backend"));
  spdlog::info("{}", storage_why);

  std::filesystem::path agent_binary =
      o.agent_binary.empty() ? SelfDir() / "vmctl-agent" : std::filesystem::path(o.agent_binary);
  controller::ImageService images(
      **store, **volumes,
      [&](const controller::ImageBuildRequest& request,
          const controller::Progress& progress) -> Result<ImageRecord> {
        if (!std::filesystem::exists(agent_binary)) {
          return FailedPrecondition(
              fmt::format("guest agent binary not found at {} (build it, or pass --agent-binary)",
                          agent_binary.string()));
        }
        image::BuildOptions build;
        build.cache_dir = o.image_cache;
        build.agent_binary = agent_binary;
        build.progress = progress;
        return image::BuildImage(*request.source, build);
      },
      state_dir / "images");

  // Before the network: building an image (make test runs --prepare-only on the bare host)
  // must not create the bridge or touch the firewall.
  if (o.prepare_image || o.prepare_only) {
    auto built = images.Build({kDefaultImageName, ImageSource{}}, [](const std::string& line) {
      std::cerr << "==> " << line << std::endl;
    });
    if (!built.ok()) return fail(built.error().WithContext("building the default image"));
    if (o.prepare_only) {
      std::cerr << fmt::format("Image 'default' ready in {}\n", built->dir);
      return 0;
    }
  }

  auto network = network::SetUpHostNetwork(NetworkOptions(state_dir, o.bridge, o.subnet, o.dns));
  if (!network.ok()) return fail(network.error().WithContext("setting up the VM network"));
  if (auto r = CheckAddressesInSubnet(**store, (*network)->info()); !r.ok()) return fail(r.error());
  std::string network_line = network::Describe((*network)->info());
  spdlog::info("{}", network_line);

  bool gateway_on = !(o.ssh_listen.size() == 1 && o.ssh_listen[0] == "off");
  if (!o.domain.empty()) {
    if (auto valid = ssh_gateway::ValidateDomain(o.domain); !valid.ok()) return fail(valid.error());
  }
  std::vector<std::string> ssh_pool;
  if (!o.ssh_address_pool.empty() && gateway_on) {
    auto pool = ssh_gateway::ParseAddressRange(o.ssh_address_pool);
    if (!pool.ok()) return fail(pool.error().WithContext("--ssh-address-pool"));
    ssh_pool = *pool;
  }

  vm_options.state_dir = state_dir;
  vm_options.boot_timeout = std::chrono::seconds(o.boot_timeout_s);
  vm_options.ssh_address_pool = ssh_pool;
  controller::VmService vms(**store, **backend, **volumes, **network, vm_options);

  auto actions = vms.Reconcile();
  if (!actions.ok()) return fail(actions.error().WithContext("reconciling"));
  for (const auto& a : *actions) spdlog::info("reconcile: {}", a);

  api::Server server(vms, images, api::ServerOptions{socket, 0660, "admin", (*backend)->name()});
  if (auto r = server.Listen(); !r.ok()) return fail(r.error());
  vms.StartMonitor();

  ssh_gateway::GatewayOptions gateway_options;
  gateway_options.listen = o.ssh_listen;
  gateway_options.host_key = o.ssh_host_key.empty() ? state_dir / "ssh_host_ed25519_key"
                                                    : std::filesystem::path(o.ssh_host_key);
  gateway_options.api_socket = socket;
  gateway_options.address_pool = ssh_pool;
  gateway_options.max_unauthenticated = o.ssh_max_unauthenticated;
  gateway_options.max_unauthenticated_per_source = o.ssh_max_unauthenticated_per_source;
  if (gateway_on) {
    // How users reach it, for the hints it prints: the first address as configured.
    const std::string& first = o.ssh_listen.front();
    std::string host = first.substr(0, first.rfind(':'));
    if (host == "0.0.0.0") host = "localhost";
    std::string port = first.substr(first.rfind(':') + 1);
    gateway_options.ssh_command = fmt::format("ssh -p {} {}", port, host);
    auto pattern = [&](const std::string& name) {
      return port == "22" ? name : fmt::format("[{}]:{}", name, port);
    };
    gateway_options.known_hosts_patterns = {pattern(host)};
    if (!o.domain.empty()) gateway_options.known_hosts_patterns.push_back(pattern("*." + o.domain));
    // A wildcard listener on that port takes the pool's connections already.
    if (std::find(o.ssh_listen.begin(), o.ssh_listen.end(), "0.0.0.0:" + port) ==
        o.ssh_listen.end()) {
      for (const auto& address : ssh_pool) gateway_options.listen.push_back(address + ":" + port);
    }
  }
  account_options->ssh_command = gateway_options.ssh_command;
  controller::Accounts accounts(**store, mailer.get(), *account_options);
  spdlog::info("registration: {}{}", o.registration,
               o.registration == "closed" ? " (--registration open|allowlist|verify lets new SSH "
                                            "keys register)"
                                          : "");
  ssh_gateway::Gateway gateway(gateway_options, accounts, vms);
  std::string gateway_line = "SSH gateway off (--ssh-listen off)";
  if (gateway_on) {
    if (auto started = gateway.Start(); !started.ok()) {
      return fail(started.error().WithContext("starting the SSH gateway"));
    }
    gateway_line = fmt::format("SSH gateway on {}: try  {} help", fmt::join(o.ssh_listen, ", "),
                               gateway_options.ssh_command);
  }

  // SIGINT/SIGTERM end the daemon; VMs keep running and are re-adopted at the next start.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: shutting down (VMs keep running)", sig);
    server.Stop();
  });

  bool default_socket = o.socket.empty() && !std::getenv("VMCTL_SOCKET");
  std::string env = default_socket ? "" : fmt::format("VMCTL_SOCKET={} ", socket.string());
  // Show the command as the user can type it: the full path unless vmctl is on PATH.
  std::string self = FindProgram("vmctl") ? "vmctl" : (SelfDir() / "vmctl").string();
  env += self;
  std::cerr << fmt::format(
      "vmctl daemon ready: backend {}, state in {}, API on {}\n"
      "{}\n"
      "{}\n"
      "{}\n"
      "Next, in another terminal:\n"
      "  {} create demo\n"
      "  {} exec demo -- uname -a\n"
      "  {} ls\n",
      (*backend)->name(), state_dir.string(), socket.string(), network_line, storage_why,
      gateway_line, env, env, env);
  server.Serve();
  ::kill(::getpid(), SIGTERM);  // wakes the waiter when Serve ended for another reason
  waiter.join();
  std::filesystem::remove(socket, ec);
  return 0;
}

int CleanUpNetwork(const ServeOptions& o) {
  std::filesystem::path state_dir = std::filesystem::absolute(o.state_dir);
  // A running daemon would have VMs on the bridge; removing it under them is never wanted.
  if (std::filesystem::exists(state_dir)) {
    auto lock = LockStateDir(state_dir);
    if (!lock.ok()) {
      std::cerr << "vmctl network cleanup: " << lock.error().message()
                << "; stop it first (VMs keep running without their network otherwise)\n";
      return lock.error().ExitCode();
    }
  }
  auto removed = network::CleanUpHostNetwork(NetworkOptions(state_dir, o.bridge, o.subnet, o.dns));
  if (!removed.ok()) {
    std::cerr << "vmctl network cleanup: " << removed.error().message() << "\n";
    return removed.error().ExitCode();
  }
  if (removed->empty()) std::cout << "Nothing to remove: no vmctl network on this host.\n";
  for (const auto& line : *removed) std::cout << "removed " << line << "\n";
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "run the control-plane daemon in the foreground");
  cmd->add_option("--state-dir", o->state_dir, "database and per-VM files")->capture_default_str();
  cmd->add_option("--socket", o->socket,
                  "API socket (default $VMCTL_SOCKET or /run/vmctl/vmctl.sock)");
  cmd->add_option("--backend", o->backend, "auto|cloud-hypervisor|firecracker|qemu")
      ->capture_default_str();
  cmd->add_option("--image-cache", o->image_cache, "shared cache of built images")
      ->capture_default_str();
  cmd->add_option("--agent-binary", o->agent_binary,
                  "static guest agent to put in images (default: next to vmctl)");
  cmd->add_flag("--prepare-image", o->prepare_image,
                "build (or take from cache) the default image before serving");
  cmd->add_flag("--prepare-only", o->prepare_only,
                "build (or take from cache) the default image, then exit");
  cmd->add_option("--max-vms", o->max_vms, "quota: VMs per user");
  cmd->add_option("--max-cpus", o->max_cpus, "quota: CPUs per user");
  cmd->add_option("--max-memory-mib", o->max_memory_mib, "quota: memory per user (MiB)");
  cmd->add_option("--max-disk-mib", o->max_disk_mib, "quota: disk per user (MiB)");
  cmd->add_option("--boot-timeout", o->boot_timeout_s, "seconds to wait for the guest agent")
      ->capture_default_str();
  cmd->add_option("--bridge", o->bridge, "bridge the VMs' TAP devices join")->capture_default_str();
  cmd->add_option("--subnet", o->subnet,
                  "the bridge's address and prefix; VMs get the other addresses")
      ->capture_default_str();
  cmd->add_option("--dns", o->dns,
                  "resolver given to guests, repeatable (default: the host's non-loopback ones)");
  cmd->add_option("--storage", o->storage, "auto|lvm-thin|reflink|qcow2|copy")
      ->capture_default_str();
  cmd->add_option("--storage-dir", o->storage_dir,
                  "where file-based backends keep VM disks (default: <state dir>/disks); must be "
                  "on XFS or btrfs for reflink");
  cmd->add_option("--lvm-vg", o->lvm_vg, "volume group of the lvm-thin backend");
  cmd->add_option("--lvm-pool", o->lvm_pool, "thin pool (in --lvm-vg) of the lvm-thin backend");
  cmd->add_option("--ssh-listen", o->ssh_listen,
                  "SSH gateway address(es), ADDRESS:PORT (repeat for several), or off")
      ->capture_default_str();
  cmd->add_option("--domain", o->domain,
                  "VMs are reachable as VM.DOMAIN (DNS: a wildcard record to the gateway, or one "
                  "per VM to its ssh address)");
  cmd->add_option("--ssh-address-pool", o->ssh_address_pool,
                  "FIRST-LAST: addresses the gateway also listens on (at the port of the first "
                  "--ssh-listen), one per VM of each user, so `ssh VM.DOMAIN` works when DNS "
                  "maps VM.DOMAIN to the VM's address");
  cmd->add_option("--ssh-host-key", o->ssh_host_key,
                  "the SSH gateway's host key (default: STATE_DIR/ssh_host_ed25519_key, created)");
  cmd->add_option("--ssh-max-unauthenticated", o->ssh_max_unauthenticated,
                  "SSH connections in their handshake at once (a flood pushes out its own oldest)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--ssh-max-unauthenticated-per-source", o->ssh_max_unauthenticated_per_source,
                  "SSH connections of one address not logged in yet (more wait their turn)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--registration", o->registration,
                  "who may register through the SSH gateway: open (anyone), allowlist "
                  "(--allow-email), verify (a code mailed through --smtp), closed")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--allow-email", o->allow_email,
                  "comma-separated addresses and @domain entries that may register (allowlist; "
                  "with verify, restricts it too)");
  cmd->add_option("--registrations-per-hour", o->registrations_per_hour,
                  "registrations per source address and hour")
      ->capture_default_str();
  cmd->add_option("--smtp", o->smtp, "HOST:PORT of the mail relay verification mails go through");
  cmd->add_option("--smtp-from", o->smtp_from, "sender address of verification mails");
  cmd->add_option("--verify-url", o->verify_url,
                  "where the HTTPS proxy confirms registrations (https://HOST/verify); put in "
                  "the mail as a link next to the code");
  cmd->add_option("--max-host-memory", o->max_host_memory_bytes,
                  "memory all VMs together may have, e.g. 16G (default: the host's)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--max-host-cpus", o->max_host_cpus,
                  "CPUs all VMs together may have (default: the host's)");
  cmd->add_option("--cpu-overcommit", o->cpu_overcommit,
                  "factor on --max-host-cpus: vCPUs handed out per host CPU")
      ->capture_default_str();
  cmd->add_option("--memory-overcommit", o->memory_overcommit, "factor on --max-host-memory")
      ->capture_default_str();
  cmd->callback([o, exit_code] { *exit_code = Serve(*o); });

  auto* net = app.add_subcommand("network", "manage the host network vmctl owns");
  net->require_subcommand(1);
  auto* cleanup = net->add_subcommand(
      "cleanup",
      "remove vmctl's bridge, TAP devices and nftables tables (the daemon must be stopped)");
  cleanup->add_option("--state-dir", o->state_dir, "the daemon's state directory")
      ->capture_default_str();
  cleanup->add_option("--bridge", o->bridge, "the bridge the daemon used")->capture_default_str();
  cleanup->callback([o, exit_code] { *exit_code = CleanUpNetwork(*o); });
}

}  // namespace vmctl::daemon
