#include "daemon/serve_setup.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "base/process.h"
#include "controller/smtp_mailer.h"
#include "model/email.h"
#include "model/web_auth.h"
#include "vmm/cloud_hypervisor/backend.h"
#include "vmm/firecracker/backend.h"
#include "vmm/qemu/qemu_backend.h"

namespace vmctl::daemon {
namespace {

bool KvmUsable() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

}  // namespace

Result<controller::AccountsOptions> AccountOptions(const RegistrationFlags& o,
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

std::string WebDomain(const CoreFlags& core) {
  return core.domain.empty() ? "vmctl.localhost" : core.domain;
}

std::string WebUrl(const CoreFlags& core, const ProxyFlags& proxy) {
  std::string port = "8443";
  if (!proxy.https_listen.empty() && proxy.https_listen[0] != "off") {
    port = proxy.https_listen[0].substr(proxy.https_listen[0].rfind(':') + 1);
  }
  if (port == "443") return "https://" + WebDomain(core);
  return fmt::format("https://{}:{}", WebDomain(core), port);
}

Result<controller::AuthOptions> AuthOptions(const CoreFlags& core, const ProxyFlags& proxy,
                                            const WebAuthFlags& o) {
  controller::AuthOptions options;
  if (!core.domain.empty()) options.domain = core.domain;
  options.web_url = WebUrl(core, proxy);
  auto link = ParseDuration(o.login_link_lifetime);
  if (!link.ok()) return link.error().WithContext("--login-link-lifetime");
  options.login_link_lifetime = *link;
  auto session = ParseDuration(o.session_lifetime);
  if (!session.ok()) return session.error().WithContext("--session-lifetime");
  options.session_lifetime = *session;
  return options;
}

Result<void> SetHostCapacity(const CapacityFlags& o, controller::VmServiceOptions& vm_options) {
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
                                           const NetworkFlags& o) {
  network::HostNetworkOptions options;
  options.bridge = o.bridge;
  options.gateway = o.subnet;
  if (!o.dns.empty()) options.dns = o.dns;
  options.state_file = state_dir / "network.json";
  return options;
}

controller::SharingOptions SharingOptions(const CoreFlags& o, const ProxyFlags& proxy,
                                          const acme::AcmeFlags& acme) {
  controller::SharingOptions options;
  options.web_url = WebUrl(o, proxy);
  // HTTP-01 is how custom domains get theirs, so plain HTTP must be served too.
  bool https = !(proxy.https_listen.size() == 1 && proxy.https_listen[0] == "off");
  bool http = !proxy.http_listen.empty() && proxy.http_listen != "off";
  options.custom_domain_certificates = https && http && !acme.directory_url.empty();
  return options;
}

std::filesystem::path SelfDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::current_path() : exe.parent_path();
}

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

Result<void> EnsureAdmin(Store& store, const CapacityFlags& o) {
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

Result<proxy::ProxyOptions> ProxyOptionsFromFlags(const ProxyFlags& o, const std::string& domain,
                                                  const std::filesystem::path& api_socket) {
  proxy::ProxyOptions options;
  options.https_listen.clear();
  if (!(o.https_listen.size() == 1 && o.https_listen[0] == "off")) {
    for (const std::string& address : o.https_listen) {
      auto parsed = proxy::ParseListenAddress(address);
      if (!parsed.ok()) return parsed.error().WithContext("--https-listen");
      options.https_listen.push_back(address);
    }
  }
  options.http_listen = o.http_listen == "off" ? "" : o.http_listen;
  if (!options.http_listen.empty()) {
    auto parsed = proxy::ParseListenAddress(options.http_listen);
    if (!parsed.ok()) return parsed.error().WithContext("--http-listen");
  }
  if (!domain.empty()) options.domain = domain;
  options.api_socket = api_socket.string();
  return options;
}

}  // namespace vmctl::daemon
