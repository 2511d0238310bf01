#ifndef VMCTL_DAEMON_SERVE_FLAGS_H_
#define VMCTL_DAEMON_SERVE_FLAGS_H_

// Internal to the daemon: `vmctl serve`'s flags, one struct and one Add...Flags function per
// group (defined in serve_flags.cc), so a new front end adds its own group without touching the
// others.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "acme/options.h"

namespace vmctl::daemon {

// State directory, API socket, VMM and images.
struct CoreFlags {
  std::string state_dir = "/var/lib/vmctl";
  std::string socket;
  std::string backend = "auto";
  std::string image_cache = "/var/cache/vmctl/images";
  std::string agent_binary;
  bool prepare_image = false;
  bool prepare_only = false;
  int boot_timeout_s = 120;
  // VMs are VM.DOMAIN for every front end.
  std::string domain;
};

// Per-user quotas of the local admin and the host's capacity for all VMs together.
struct CapacityFlags {
  int max_vms = 0, max_cpus = 0;
  int64_t max_memory_mib = 0, max_disk_mib = 0;
  int64_t max_host_memory_bytes = 0;  // default: the host's memory
  int max_host_cpus = 0;              // default: the host's CPUs
  double cpu_overcommit = 4;
  double memory_overcommit = 1;
};

struct NetworkFlags {
  std::string bridge = "vmctl0";
  std::string subnet = "10.0.0.1/16";
  std::vector<std::string> dns;
};

struct StorageFlags {
  std::string storage = "auto";
  std::string storage_dir;  // default: <state dir>/disks
  std::string lvm_vg;
  std::string lvm_pool;
};

// The REST API on the Unix socket.
struct ApiFlags {
  int max_connections = 256;
};

struct GatewayFlags {
  std::vector<std::string> ssh_listen = {"127.0.0.1:2222"};
  std::string ssh_host_key;
  std::string ssh_address_pool;
  int ssh_max_unauthenticated = 256;
  int ssh_max_unauthenticated_per_source = 32;
  bool on() const { return !(ssh_listen.size() == 1 && ssh_listen[0] == "off"); }
};

// The HTTPS proxy's listeners ("off" turns one off).
struct ProxyFlags {
  std::vector<std::string> https_listen = {"127.0.0.1:8443"};
  std::string http_listen = "127.0.0.1:8080";
};

struct RegistrationFlags {
  std::string registration = "closed";
  std::string allow_email;
  int registrations_per_hour = 5;
  std::string smtp;
  std::string smtp_from;
  std::string verify_url;
};

// Web authentication: how long login links and browser sessions live (durations like 30d).
struct WebAuthFlags {
  std::string login_link_lifetime = "5m";
  std::string session_lifetime = "30d";
};

struct ServeOptions {
  CoreFlags core;
  CapacityFlags capacity;
  NetworkFlags network;
  StorageFlags storage;
  ApiFlags api;
  GatewayFlags gateway;
  RegistrationFlags registration;
  WebAuthFlags web_auth;
  acme::AcmeFlags acme;
  ProxyFlags proxy;
};

void AddCoreFlags(CLI::App* cmd, CoreFlags& f);
void AddCapacityFlags(CLI::App* cmd, CapacityFlags& f);
void AddNetworkFlags(CLI::App* cmd, NetworkFlags& f);
void AddStorageFlags(CLI::App* cmd, StorageFlags& f);
void AddApiFlags(CLI::App* cmd, ApiFlags& f);
void AddGatewayFlags(CLI::App* cmd, GatewayFlags& f);
void AddRegistrationFlags(CLI::App* cmd, RegistrationFlags& f);
void AddWebAuthFlags(CLI::App* cmd, WebAuthFlags& f);
void AddAcmeFlags(CLI::App* cmd, acme::AcmeFlags& f);
void AddProxyFlags(CLI::App* cmd, ProxyFlags& f);

}  // namespace vmctl::daemon

#endif  // VMCTL_DAEMON_SERVE_FLAGS_H_
