// vmctl-agent: the guest agent. Static binary started by systemd early in every VM's boot, or by
// the initramfs as the VM's init where the image has no init system.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "agent/guest/agent.h"
#include "agent/guest/init.h"

int main(int argc, char** argv) {
  vmctl::agent::guest::AgentConfig config;
  if (::getpid() == 1) {
    config.init = true;
    vmctl::agent::guest::SetUpAsInit();
  } else if (::access("/run/systemd/system", F_OK) == 0) {
    config.systemctl = "systemctl";  // systemd is init (sd_booted(3))
  }
  bool systemctl_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vmctl-agent: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--version") {
      std::printf("vmctl-agent 0.1.0\n");
      return 0;
    } else if (arg == "--listen-unix") {
      config.listen_unix = value("--listen-unix");
      // A test agent on the host must not grab the host's vsock or serial ports, nor wait for the
      // host's systemd (unless --systemctl says otherwise).
      config.use_virtio = false;
      config.use_vsock = false;
      if (!systemctl_given) config.systemctl.clear();
    } else if (arg == "--virtio-port") {
      config.virtio_port = value("--virtio-port");
      config.use_virtio = true;
    } else if (arg == "--systemctl") {
      config.systemctl = value("--systemctl");
      systemctl_given = true;
    } else if (arg == "--simulate-poweroff") {
      config.simulate_poweroff = true;
    } else if (arg == "--no-vsock") {
      config.use_vsock = false;
    } else if (arg == "--ssh-dir") {
      config.ops.ssh_dir = value("--ssh-dir");
    } else if (arg == "--passwd") {
      config.ops.passwd = value("--passwd");
    } else if (arg == "--root") {
      config.ops.root = value("--root");
    } else {
      std::fprintf(stderr,
                   "usage: vmctl-agent [--listen-unix PATH] [--virtio-port PATH] [--no-vsock] "
                   "[--simulate-poweroff] [--systemctl PATH] "
                   "[--ssh-dir DIR] [--passwd FILE] [--root DIR] [--version]\n");
      return 2;
    }
  }
  return vmctl::agent::guest::RunAgent(config);
}
