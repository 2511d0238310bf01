#include "daemon/serve.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "api/server.h"
#include "base/process.h"
#include "cli/api_client.h"
#include "controller/accounts.h"
#include "controller/auth.h"
#include "controller/image_service.h"
#include "controller/sharing.h"
#include "controller/vm_locks.h"
#include "controller/vm_service.h"
#include "daemon/serve_flags.h"
#include "daemon/serve_setup.h"
#include "daemon/serve_web.h"
#include "image/builder.h"
#include "model/host_name.h"
#include "network/host_network.h"
#include "proxy/server.h"
#include "ssh_gateway/gateway.h"
#include "ssh_gateway/routing.h"
#include "storage/backends.h"
#include "store/sqlite/sqlite_store.h"
#include "tls/certificates.h"

namespace vmctl::daemon {
namespace {

// The daemon's parts, built phase by phase in the order of the members; destroyed in reverse, so
// front ends go before the services they call and those before the store.
class Daemon {
 public:
  explicit Daemon(const ServeOptions& o) : o_(o) {}

  // Directories, the state lock, the flags that need no host change, the database.
  Result<void> OpenState();
  // VMM backend, storage backend and the image service: enough to build images.
  Result<void> BuildImageService();
  // Builds (or takes from the cache) the default image; returns its directory.
  Result<std::string> PrepareDefaultImage();
  // The host network and the VM service, reconciled with what runs.
  Result<void> BuildVmService();
  // STATE/tls: the HTTPS certificates, and the local CA that issues them.
  Result<void> OpenCertificates();
  Result<void> StartApi();
  Result<void> StartGateway();
  // The HTTPS proxy (unless --https-listen off), with ACME renewal when configured.
  Result<void> StartWeb();
  // Serves until SIGINT/SIGTERM; VMs keep running and are re-adopted at the next start.
  int Run();

 private:
  void PrintReady() const;

  const ServeOptions& o_;
  std::filesystem::path state_dir_;
  std::filesystem::path socket_;
  UniqueFd lock_;
  std::unique_ptr<controller::Mailer> mailer_;
  controller::AccountsOptions account_options_;
  controller::AuthOptions auth_options_;
  std::optional<acme::AcmeOptions> acme_options_;  // nullopt: certificates from the local CA
  controller::VmServiceOptions vm_options_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<vmm::Backend> backend_;
  std::unique_ptr<storage::VolumeBackend> volumes_;
  std::string storage_why_;
  std::filesystem::path agent_binary_;
  std::unique_ptr<controller::ImageService> images_;
  std::unique_ptr<network::Network> network_;
  std::string network_line_;
  std::vector<std::string> ssh_pool_;
  controller::VmLocks vm_locks_;
  std::unique_ptr<controller::VmService> vms_;
  std::unique_ptr<controller::VmSharing> sharing_;
  std::unique_ptr<controller::Auth> auth_;
  tls::Certificates certificates_;
  std::unique_ptr<tls::LocalRenewal> local_renewal_;
  std::unique_ptr<api::Server> server_;
  std::unique_ptr<controller::Accounts> accounts_;
  std::unique_ptr<ssh_gateway::Gateway> gateway_;
  std::string gateway_line_ = "SSH gateway off (--ssh-listen off)";
  // How users reach the gateway, for the web pages' hints.
  std::string ssh_command_ = "ssh localhost";
  std::unique_ptr<WebFrontEnd> web_;
  std::string web_line_ = "HTTPS proxy off (--https-listen off)";
  // What proxy::Server is built from once its CertificateSource and Access exist (the lead's
  // wiring of issue 12).
  proxy::ProxyOptions proxy_options_;
};

Result<void> Daemon::OpenState() {
  state_dir_ = std::filesystem::absolute(o_.core.state_dir);
  socket_ =
      o_.core.socket.empty() ? cli::DefaultSocketPath() : std::filesystem::path(o_.core.socket);
  std::error_code ec;
  std::filesystem::create_directories(state_dir_ / "vms", ec);
  if (ec) return Internal(fmt::format("cannot create {}: {}", state_dir_.string(), ec.message()));
  ::chmod(state_dir_.c_str(), 0700);
  std::filesystem::create_directories(socket_.parent_path(), ec);
  VMCTL_ASSIGN_OR_RETURN(lock_, LockStateDir(state_dir_));
  // Bad flags are refused before anything is set up.
  VMCTL_ASSIGN_OR_RETURN(account_options_, AccountOptions(o_.registration, &mailer_));
  VMCTL_ASSIGN_OR_RETURN(auth_options_, AuthOptions(o_.core, o_.proxy, o_.web_auth));
  VMCTL_TRY(SetHostCapacity(o_.capacity, vm_options_));
  VMCTL_ASSIGN_OR_RETURN(acme_options_, acme::ParseAcmeFlags(o_.acme));
  VMCTL_ASSIGN_OR_RETURN(proxy_options_, ProxyOptionsFromFlags(o_.proxy, o_.core.domain, socket_));
  auto store = OpenSqliteStore(state_dir_ / "vmctl.db");
  if (!store.ok()) return store.error().WithContext("opening the state database");
  store_ = *std::move(store);
  return EnsureAdmin(*store_, o_.capacity);
}

Result<void> Daemon::BuildImageService() {
  std::string why;
  VMCTL_ASSIGN_OR_RETURN(backend_, ChooseBackend(o_.core.backend, &why));
  spdlog::info("backend: {} ({})", backend_->name(), why);

  storage::BackendChoice choice;
  choice.requested = o_.storage.storage;
  choice.dir = o_.storage.storage_dir.empty() ? state_dir_ / "disks"
                                              : std::filesystem::absolute(o_.storage.storage_dir);
  choice.lvm = {o_.storage.lvm_vg, o_.storage.lvm_pool};
  choice.vmm_takes_qcow2 = backend_->capabilities().qcow2_disks;
  auto volumes = storage::ChooseBackend(choice, &storage_why_);
  if (!volumes.ok()) return volumes.error().WithContext("choosing the storage backend");
  volumes_ = *std::move(volumes);
  spdlog::info("{}", storage_why_);

  agent_binary_ = o_.core.agent_binary.empty() ? SelfDir() / "vmctl-agent"
                                               : std::filesystem::path(o_.core.agent_binary);
  images_ = std::make_unique<controller::ImageService>(
      *store_, *volumes_,
      [this](const controller::ImageBuildRequest& request,
             const controller::Progress& progress) -> Result<ImageRecord> {
        if (!std::filesystem::exists(agent_binary_)) {
          return FailedPrecondition(
              fmt::format("guest agent binary not found at {} (build it, or pass --agent-binary)",
                          agent_binary_.string()));
        }
        image::BuildOptions build;
        build.cache_dir = o_.core.image_cache;
        build.agent_binary = agent_binary_;
        build.progress = progress;
        return image::BuildImage(*request.source, build);
      },
      state_dir_ / "images");
  return Ok();
}

Result<std::string> Daemon::PrepareDefaultImage() {
  auto built = images_->Build({kDefaultImageName, ImageSource{}}, [](const std::string& line) {
    std::cerr << "==> " << line << std::endl;
  });
  if (!built.ok()) return built.error().WithContext("building the default image");
  return built->dir;
}

Result<void> Daemon::BuildVmService() {
  auto network = network::SetUpHostNetwork(NetworkOptions(state_dir_, o_.network));
  if (!network.ok()) return network.error().WithContext("setting up the VM network");
  network_ = *std::move(network);
  VMCTL_TRY(CheckAddressesInSubnet(*store_, network_->info()));
  network_line_ = network::Describe(network_->info());
  spdlog::info("{}", network_line_);

  if (!o_.core.domain.empty()) VMCTL_TRY(ValidateDomain(o_.core.domain));
  if (!o_.gateway.ssh_address_pool.empty() && o_.gateway.on()) {
    auto pool = ssh_gateway::ParseAddressRange(o_.gateway.ssh_address_pool);
    if (!pool.ok()) return pool.error().WithContext("--ssh-address-pool");
    ssh_pool_ = *pool;
  }

  vm_options_.state_dir = state_dir_;
  vm_options_.boot_timeout = std::chrono::seconds(o_.core.boot_timeout_s);
  vm_options_.ssh_address_pool = ssh_pool_;
  vms_ = std::make_unique<controller::VmService>(*store_, *backend_, *volumes_, *network_,
                                                 vm_locks_, vm_options_);
  VMCTL_ASSIGN_OR_RETURN(sharing_,
                         controller::VmSharing::Create(*store_, vm_locks_,
                                                       SharingOptions(o_.core, o_.proxy, o_.acme)));
  auto actions = vms_->Reconcile();
  if (!actions.ok()) return actions.error().WithContext("reconciling");
  for (const auto& a : *actions) spdlog::info("reconcile: {}", a);
  return Ok();
}

Result<void> Daemon::OpenCertificates() {
  // The default HTTPS domain when --domain is not given.
  const std::string domain = WebDomain(o_.core);
  // With ACME the local CA stays out of it: DOMAIN is served once ACME has issued.
  auto certificates =
      tls::OpenCertificates(state_dir_, domain, /*use_local_ca=*/!acme_options_.has_value());
  if (!certificates.ok()) return certificates.error().WithContext("opening the TLS certificates");
  certificates_ = *std::move(certificates);
  for (const auto& problem : certificates_.store->problems()) spdlog::warn("tls: {}", problem);
  if (certificates_.local_ca) {
    local_renewal_ =
        std::make_unique<tls::LocalRenewal>(*certificates_.local_ca, *certificates_.store, domain);
  }
  return Ok();
}

Result<void> Daemon::StartApi() {
  auth_ = std::make_unique<controller::Auth>(*store_, auth_options_);
  api::ServerOptions options;
  options.socket_path = socket_;
  options.backend_name = backend_->name();
  options.max_connections = o_.api.max_connections;
  if (certificates_.local_ca) options.local_ca_pem = certificates_.local_ca->certificate_pem();
  server_ = std::make_unique<api::Server>(*vms_, *images_, *sharing_, *auth_, options);
  VMCTL_TRY(server_->Listen());
  vms_->StartMonitor();
  return Ok();
}

Result<void> Daemon::StartGateway() {
  const GatewayFlags& f = o_.gateway;
  ssh_gateway::GatewayOptions options;
  options.listen = f.ssh_listen;
  options.host_key = f.ssh_host_key.empty() ? state_dir_ / "ssh_host_ed25519_key"
                                            : std::filesystem::path(f.ssh_host_key);
  options.api_socket = socket_;
  options.address_pool = ssh_pool_;
  options.max_unauthenticated = f.ssh_max_unauthenticated;
  options.max_unauthenticated_per_source = f.ssh_max_unauthenticated_per_source;
  if (f.on()) {
    // How users reach it, for the hints it prints: the first address as configured.
    const std::string& first = f.ssh_listen.front();
    std::string host = first.substr(0, first.rfind(':'));
    if (host == "0.0.0.0") host = "localhost";
    std::string port = first.substr(first.rfind(':') + 1);
    options.ssh_command = fmt::format("ssh -p {} {}", port, host);
    auto pattern = [&](const std::string& name) {
      return port == "22" ? name : fmt::format("[{}]:{}", name, port);
    };
    options.known_hosts_patterns = {pattern(host)};
    if (!o_.core.domain.empty())
      options.known_hosts_patterns.push_back(pattern("*." + o_.core.domain));
    // A wildcard listener on that port takes the pool's connections already.
    if (std::find(f.ssh_listen.begin(), f.ssh_listen.end(), "0.0.0.0:" + port) ==
        f.ssh_listen.end()) {
      for (const auto& address : ssh_pool_) options.listen.push_back(address + ":" + port);
    }
  }
  account_options_.ssh_command = options.ssh_command;
  ssh_command_ = options.ssh_command;
  accounts_ = std::make_unique<controller::Accounts>(*store_, mailer_.get(), account_options_);
  const std::string& registration = o_.registration.registration;
  spdlog::info("registration: {}{}", registration,
               registration == "closed" ? " (--registration open|allowlist|verify lets new SSH "
                                          "keys register)"
                                        : "");
  gateway_ = std::make_unique<ssh_gateway::Gateway>(options, *accounts_, *vms_);
  if (!f.on()) return Ok();
  if (auto started = gateway_->Start(); !started.ok()) {
    return started.error().WithContext("starting the SSH gateway");
  }
  gateway_line_ = fmt::format("SSH gateway on {}: try  {} help", fmt::join(f.ssh_listen, ", "),
                              options.ssh_command);
  return Ok();
}

Result<void> Daemon::StartWeb() {
  if (proxy_options_.https_listen.empty()) return Ok();
  WebFrontEndOptions options{
      .state_dir = state_dir_,
      .domain = WebDomain(o_.core),
      .web_url = WebUrl(o_.core, o_.proxy),
      .ssh_command = ssh_command_,
      .proxy = proxy_options_,
      .acme = acme_options_,
      .domain_vm =
          [store = store_.get()](const std::string& domain) -> Result<std::optional<std::string>> {
        auto found = store->GetCustomDomain(domain);
        if (found.ok()) return std::optional<std::string>(found->vm_id);
        if (found.error().code() == ErrorCode::kNotFound) {
          return std::optional<std::string>();
        }
        return found.error();
      }};
  VMCTL_ASSIGN_OR_RETURN(
      web_, WebFrontEnd::Start(std::move(options), *certificates_.store, *auth_, *sharing_));
  web_line_ = web_->Describe();
  return Ok();
}

void Daemon::PrintReady() const {
  bool default_socket = o_.core.socket.empty() && !std::getenv("VMCTL_SOCKET");
  std::string env = default_socket ? "" : fmt::format("VMCTL_SOCKET={} ", socket_.string());
  // Show the command as the user can type it: the full path unless vmctl is on PATH.
  std::string self = FindProgram("vmctl") ? "vmctl" : (SelfDir() / "vmctl").string();
  env += self;
  if (certificates_.local_ca) {
    std::cerr << fmt::format("Local CA: {} (trust it: {} ca > vmctl-ca.crt, or see docs/tls.md)\n",
                             certificates_.local_ca->certificate_path().string(), env);
  }
  std::cerr << fmt::format(
      "vmctl daemon ready: backend {}, state in {}, API on {}\n"
      "{}\n"
      "{}\n"
      "{}\n"
      "Next, in another terminal:\n"
      "  {} create demo\n"
      "  {} exec demo -- uname -a\n"
      "  {} ls\n",
      backend_->name(), state_dir_.string(), socket_.string(), network_line_, storage_why_,
      gateway_line_, env, env, env);
  std::cerr << web_line_ << "\n";
}

int Daemon::Run() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: shutting down (VMs keep running)", sig);
    // The proxy first: it forwards to the API.
    if (web_) web_->Stop();
    server_->Stop();
  });
  PrintReady();
  server_->Serve();
  ::kill(::getpid(), SIGTERM);  // wakes the waiter when Serve ended for another reason
  waiter.join();
  std::error_code ec;
  std::filesystem::remove(socket_, ec);
  return 0;
}

int Fail(const Error& e) {
  std::cerr << "vmctl serve: " << e.message() << "\n";
  return e.ExitCode();
}

int Serve(const ServeOptions& o) {
  ::signal(SIGPIPE, SIG_IGN);
  Daemon daemon(o);
  if (auto r = daemon.OpenState(); !r.ok()) return Fail(r.error());
  if (auto r = daemon.BuildImageService(); !r.ok()) return Fail(r.error());
  // Before the network: building an image (make test runs --prepare-only on the bare host)
  // must not create the bridge or touch the firewall.
  if (o.core.prepare_image || o.core.prepare_only) {
    auto dir = daemon.PrepareDefaultImage();
    if (!dir.ok()) return Fail(dir.error());
    if (o.core.prepare_only) {
      std::cerr << fmt::format("Image 'default' ready in {}\n", *dir);
      return 0;
    }
  }
  if (auto r = daemon.BuildVmService(); !r.ok()) return Fail(r.error());
  if (auto r = daemon.OpenCertificates(); !r.ok()) return Fail(r.error());
  if (auto r = daemon.StartApi(); !r.ok()) return Fail(r.error());
  if (auto r = daemon.StartGateway(); !r.ok()) return Fail(r.error());
  if (auto r = daemon.StartWeb(); !r.ok()) return Fail(r.error());
  return daemon.Run();
}

int CleanUpNetwork(const ServeOptions& o) {
  std::filesystem::path state_dir = std::filesystem::absolute(o.core.state_dir);
  // A running daemon would have VMs on the bridge; removing it under them is never wanted.
  if (std::filesystem::exists(state_dir)) {
    auto lock = LockStateDir(state_dir);
    if (!lock.ok()) {
      std::cerr << "vmctl network cleanup: " << lock.error().message()
                << "; stop it first (VMs keep running without their network otherwise)\n";
      return lock.error().ExitCode();
    }
  }
  auto removed = network::CleanUpHostNetwork(NetworkOptions(state_dir, o.network));
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
  AddCoreFlags(cmd, o->core);
  AddCapacityFlags(cmd, o->capacity);
  AddNetworkFlags(cmd, o->network);
  AddStorageFlags(cmd, o->storage);
  AddApiFlags(cmd, o->api);
  AddGatewayFlags(cmd, o->gateway);
  AddRegistrationFlags(cmd, o->registration);
  AddWebAuthFlags(cmd, o->web_auth);
  AddAcmeFlags(cmd, o->acme);
  AddProxyFlags(cmd, o->proxy);
  cmd->callback([o, exit_code] { *exit_code = Serve(*o); });

  auto* net = app.add_subcommand("network", "manage the host network vmctl owns");
  net->require_subcommand(1);
  auto* cleanup = net->add_subcommand(
      "cleanup",
      "remove vmctl's bridge, TAP devices and nftables tables (the daemon must be stopped)");
  cleanup->add_option("--state-dir", o->core.state_dir, "the daemon's state directory")
      ->capture_default_str();
  cleanup->add_option("--bridge", o->network.bridge, "the bridge the daemon used")
      ->capture_default_str();
  cleanup->callback([o, exit_code] { *exit_code = CleanUpNetwork(*o); });
}

}  // namespace vmctl::daemon
