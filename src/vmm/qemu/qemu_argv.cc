#include "vmm/qemu/qemu_argv.h"

#include <fmt/format.h>

namespace vmctl::vmm::qemu {

std::filesystem::path QmpSocket(const LaunchSpec& spec) { return spec.runtime_dir / "qmp.sock"; }
std::filesystem::path AgentSocket(const LaunchSpec& spec) {
  return spec.runtime_dir / "agent.sock";
}

std::vector<std::string> BuildArgv(const LaunchSpec& spec, const ResolvedOptions& options) {
  const bool microvm = options.machine == Machine::kMicrovm;
  // microvm has only virtio-mmio transports; q35 uses PCI.
  auto device = [&](std::string_view kind) {
    return fmt::format("{}-{}", kind, microvm ? "device" : "pci");
  };
  std::vector<std::string> argv = {options.binary, "-name", "vmctl-" + spec.vm_id,
                                   // No default NIC, VGA, monitor or config files.
                                   "-nodefaults", "-no-user-config", "-display", "none"};
  std::string accel = options.kvm ? "kvm" : "tcg";
  argv.insert(argv.end(),
              {"-machine", microvm ? fmt::format("microvm,accel={}", accel)
                                   : fmt::format("q35,accel={}", accel),
               // TCG's default CPU model lacks features Debian's kernel modules want (crc32c).
               "-cpu", options.kvm ? "host" : "max", "-smp", std::to_string(spec.cpus), "-m",
               fmt::format("{}M", spec.memory_mib), "-kernel", spec.kernel.string()});
  if (!spec.initramfs.empty()) argv.insert(argv.end(), {"-initrd", spec.initramfs.string()});
  std::string cmdline = spec.kernel_cmdline.empty() ? "console=ttyS0"
                                                    : spec.kernel_cmdline + " console=ttyS0";
  if (!options.kvm && options.tsc_khz > 0) {
    cmdline += fmt::format(" tsc_early_khz={}", options.tsc_khz);
  }
  argv.insert(argv.end(), {"-append", cmdline});
  argv.insert(argv.end(),
              {"-chardev", fmt::format("file,id=console,path={},append=on", spec.console_log.string()),
               "-serial", "chardev:console"});
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& disk = spec.disks[i];
    std::string drive = fmt::format(
        "file={},if=none,id=disk{},format={}{}", disk.path.string(), i,
        disk.format == DiskSpec::Format::kQcow2 ? "qcow2" : "raw", disk.read_only ? ",readonly=on" : "");
    argv.insert(argv.end(), {"-drive", drive, "-device",
                             fmt::format("{},drive=disk{}", device("virtio-blk"), i)});
  }
  if (spec.net) {
    // vhost=on aborts QEMU 7.2 on hosts without /dev/vhost-net, so it is never requested.
    argv.insert(argv.end(),
                {"-netdev", fmt::format("tap,id=net0,ifname={},script=no,downscript=no", spec.net->tap),
                 "-device", fmt::format("{},netdev=net0,mac={}", device("virtio-net"), spec.net->mac)});
  }
  argv.insert(argv.end(),
              {"-device", fmt::format("{},id=vser0", device("virtio-serial")), "-chardev",
               fmt::format("socket,id=agent,path={},server=on,wait=off", AgentSocket(spec).string()),
               "-device", "virtserialport,bus=vser0.0,chardev=agent,name=org.vmctl.agent", "-qmp",
               fmt::format("unix:{},server=on,wait=off", QmpSocket(spec).string())});
  return argv;
}

}  // namespace vmctl::vmm::qemu
