#include "daemon/serve_flags.h"

namespace vmctl::daemon {

void AddCoreFlags(CLI::App* cmd, CoreFlags& f) {
  cmd->add_option("--state-dir", f.state_dir, "database and per-VM files")->capture_default_str();
  cmd->add_option("--socket", f.socket,
                  "API socket (default $VMCTL_SOCKET or /run/vmctl/vmctl.sock)");
  cmd->add_option("--backend", f.backend, "auto|cloud-hypervisor|firecracker|qemu")
      ->capture_default_str();
  cmd->add_option("--image-cache", f.image_cache, "shared cache of built images")
      ->capture_default_str();
  cmd->add_option("--agent-binary", f.agent_binary,
                  "static guest agent to put in images (default: next to vmctl)");
  cmd->add_flag("--prepare-image", f.prepare_image,
                "build (or take from cache) the default image before serving");
  cmd->add_flag("--prepare-only", f.prepare_only,
                "build (or take from cache) the default image, then exit");
  cmd->add_option("--boot-timeout", f.boot_timeout_s, "seconds to wait for the guest agent")
      ->capture_default_str();
  cmd->add_option("--domain", f.domain,
                  "VMs are reachable as VM.DOMAIN (DNS: a wildcard record to the gateway, or one "
                  "per VM to its ssh address)");
}

void AddCapacityFlags(CLI::App* cmd, CapacityFlags& f) {
  cmd->add_option("--max-vms", f.max_vms, "quota: VMs per user");
  cmd->add_option("--max-cpus", f.max_cpus, "quota: CPUs per user");
  cmd->add_option("--max-memory-mib", f.max_memory_mib, "quota: memory per user (MiB)");
  cmd->add_option("--max-disk-mib", f.max_disk_mib, "quota: disk per user (MiB)");
  cmd->add_option("--max-host-memory", f.max_host_memory_bytes,
                  "memory all VMs together may have, e.g. 16G (default: the host's)")
      ->transform(CLI::AsSizeValue(false));
  cmd->add_option("--max-host-cpus", f.max_host_cpus,
                  "CPUs all VMs together may have (default: the host's)");
  cmd->add_option("--cpu-overcommit", f.cpu_overcommit,
                  "factor on --max-host-cpus: vCPUs handed out per host CPU")
      ->capture_default_str();
  cmd->add_option("--memory-overcommit", f.memory_overcommit, "factor on --max-host-memory")
      ->capture_default_str();
}

void AddNetworkFlags(CLI::App* cmd, NetworkFlags& f) {
  cmd->add_option("--bridge", f.bridge, "bridge the VMs' TAP devices join")->capture_default_str();
  cmd->add_option("--subnet", f.subnet,
                  "the bridge's address and prefix; VMs get the other addresses")
      ->capture_default_str();
  cmd->add_option("--dns", f.dns,
                  "resolver given to guests, repeatable (default: the host's non-loopback ones)");
}

void AddStorageFlags(CLI::App* cmd, StorageFlags& f) {
  cmd->add_option("--storage", f.storage, "auto|lvm-thin|reflink|qcow2|copy")
      ->capture_default_str();
  cmd->add_option("--storage-dir", f.storage_dir,
                  "where file-based backends keep VM disks (default: <state dir>/disks); must be "
                  "on XFS or btrfs for reflink");
  cmd->add_option("--lvm-vg", f.lvm_vg, "volume group of the lvm-thin backend");
  cmd->add_option("--lvm-pool", f.lvm_pool, "thin pool (in --lvm-vg) of the lvm-thin backend");
}

void AddApiFlags(CLI::App* cmd, ApiFlags& f) {
  cmd->add_option("--api-max-connections", f.max_connections,
                  "API connections served at once (exec and followed logs included); more are "
                  "answered 503")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
}

void AddGatewayFlags(CLI::App* cmd, GatewayFlags& f) {
  cmd->add_option("--ssh-listen", f.ssh_listen,
                  "SSH gateway address(es), ADDRESS:PORT (repeat for several), or off")
      ->capture_default_str();
  cmd->add_option("--ssh-address-pool", f.ssh_address_pool,
                  "FIRST-LAST: addresses the gateway also listens on (at the port of the first "
                  "--ssh-listen), one per VM of each user, so `ssh VM.DOMAIN` works when DNS "
                  "maps VM.DOMAIN to the VM's address");
  cmd->add_option("--ssh-host-key", f.ssh_host_key,
                  "the SSH gateway's host key (default: STATE_DIR/ssh_host_ed25519_key, created)");
  cmd->add_option("--ssh-max-unauthenticated", f.ssh_max_unauthenticated,
                  "SSH connections in their handshake at once (a flood pushes out its own oldest)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--ssh-max-unauthenticated-per-source", f.ssh_max_unauthenticated_per_source,
                  "SSH connections of one address not logged in yet (more wait their turn)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
}

void AddRegistrationFlags(CLI::App* cmd, RegistrationFlags& f) {
  cmd->add_option("--registration", f.registration,
                  "who may register through the SSH gateway: open (anyone), allowlist "
                  "(--allow-email), verify (a code mailed through --smtp), closed")
      ->capture_default_str()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->add_option("--allow-email", f.allow_email,
                  "comma-separated addresses and @domain entries that may register (allowlist; "
                  "with verify, restricts it too)");
  cmd->add_option("--registrations-per-hour", f.registrations_per_hour,
                  "registrations per source address and hour")
      ->capture_default_str();
  cmd->add_option("--smtp", f.smtp, "HOST:PORT of the mail relay verification mails go through");
  cmd->add_option("--smtp-from", f.smtp_from, "sender address of verification mails");
  cmd->add_option("--verify-url", f.verify_url,
                  "where the HTTPS proxy confirms registrations (https://HOST/verify); put in "
                  "the mail as a link next to the code");
}

void AddWebAuthFlags(CLI::App* cmd, WebAuthFlags& f) {
  cmd->add_option("--login-link-lifetime", f.login_link_lifetime,
                  "how long a login URL (`ssh host login`) stays valid, such as 5m")
      ->capture_default_str();
  cmd->add_option("--session-lifetime", f.session_lifetime,
                  "how long a browser session lasts, such as 30d")
      ->capture_default_str();
}

void AddAcmeFlags(CLI::App* cmd, acme::AcmeFlags& f) {
  cmd->add_option("--acme-directory", f.directory_url,
                  "ACME directory URL for the DOMAIN and *.DOMAIN certificate (e.g. "
                  "https://acme-v02.api.letsencrypt.org/directory); default: the local CA");
  cmd->add_option("--acme-email", f.email, "contact address of the ACME account");
  cmd->add_option("--acme-ca-bundle", f.ca_bundle,
                  "PEM roots to trust for the ACME server instead of the system's (e.g. pebble)");
  cmd->add_option("--acme-dns-hook", f.dns_hook,
                  "publish DNS-01 TXT records by running CMD add|del NAME VALUE");
  cmd->add_option("--acme-dns-rfc2136", f.dns_rfc2136,
                  "publish DNS-01 TXT records by RFC 2136 update to HOST:PORT (knot, bind...)");
  cmd->add_option("--acme-tsig-key", f.tsig_key,
                  "TSIG key file for --acme-dns-rfc2136 (key \"NAME\" { algorithm hmac-sha256; "
                  "secret \"...\"; };)");
}

void AddProxyFlags(CLI::App* cmd, ProxyFlags& f) {
  cmd->add_option("--https-listen", f.https_listen,
                  "HTTPS proxy address(es), ADDRESS:PORT (repeat for several), or off")
      ->capture_default_str();
  cmd->add_option("--http-listen", f.http_listen,
                  "plain HTTP address, ADDRESS:PORT, or off: redirects to HTTPS and answers ACME "
                  "HTTP-01 challenges")
      ->capture_default_str();
}

}  // namespace vmctl::daemon
