#include "vmm/qemu/qemu_argv.h"

#include <fmt/format.h>

namespace vmctl::vmm::qemu {

std::filesystem::path QmpSocket(const LaunchSpec& spec) { return spec.runtime_dir / "qmp.sock"; }
std::filesystem::path AgentSocket(const LaunchSpec& spec) {
  return spec.runtime_dir / "agent.sock";
}

std::string EscapeOptionValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out.push_back(c);
    if (c == ',') out.push_back(',');
  }
  return out;
}

std::vector<std::string> BuildArgv(const LaunchSpec& spec, const ArgvOptions& options) {
  const bool kvm = options.accel == Accel::kKvm;
  const bool microvm = options.machine == Machine::kMicrovm;
  // microvm only has virtio-mmio transports; q35 uses PCI.
  auto virtio = [&](std::string_view kind) {
    return fmt::format("{}-{}", kind, microvm ? "device" : "pci");
  };
  auto path = [](const std::filesystem::path& p) { return EscapeOptionValue(p.string()); };

  std::vector<std::string> argv = {
      options.binary, "-name", EscapeOptionValue("vmctl-" + spec.vm_id),
      // Without these QEMU adds a NIC with a boot ROM, VGA, a monitor, and reads host config.
      "-nodefaults", "-no-user-config", "-display", "none", "-machine",
      fmt::format("{},accel={}", microvm ? "microvm" : "q35", kvm ? "kvm" : "tcg"),
      // TCG's default CPU model lacks instructions Debian's kernel modules use (crc32c-intel).
      "-cpu", kvm ? "host" : "max", "-smp", std::to_string(spec.cpus), "-m",
      fmt::format("{}M", spec.memory_mib),
      // -kernel, -initrd and -append take their argument verbatim: no comma escaping.
      "-kernel", spec.kernel.string()};
  if (!spec.initramfs.empty()) argv.insert(argv.end(), {"-initrd", spec.initramfs.string()});

  std::string cmdline = spec.kernel_cmdline;
  if (!cmdline.empty()) cmdline += ' ';
  cmdline += "console=ttyS0";
  if (!kvm && options.tsc_khz > 0) cmdline += fmt::format(" tsc_early_khz={}", options.tsc_khz);
  argv.insert(argv.end(), {"-append", cmdline});

  argv.insert(argv.end(),
              {"-chardev", fmt::format("file,id=console,path={},append=on", path(spec.console_log)),
               "-serial", "chardev:console"});

  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& disk = spec.disks[i];
    argv.insert(argv.end(),
                {"-drive",
                 fmt::format("file={},if=none,id=disk{},format={}{}", path(disk.path), i,
                             disk.format == DiskSpec::Format::kQcow2 ? "qcow2" : "raw",
                             disk.read_only ? ",readonly=on" : ""),
                 "-device", fmt::format("{},drive=disk{}", virtio("virtio-blk"), i)});
  }

  if (spec.net) {
    // vhost=on makes QEMU 7.2 abort on hosts without /dev/vhost-net: never requested.
    argv.insert(argv.end(), {"-netdev",
                             fmt::format("tap,id=n0,ifname={},script=no,downscript=no",
                                         EscapeOptionValue(spec.net->tap)),
                             "-device",
                             fmt::format("{},netdev=n0,mac={}", virtio("virtio-net"),
                                         EscapeOptionValue(spec.net->mac))});
  }

  argv.insert(
      argv.end(),
      {"-device", fmt::format("{},id=vser0", virtio("virtio-serial")), "-chardev",
       fmt::format("socket,id=agent,path={},server=on,wait=off", path(AgentSocket(spec))),
       "-device", fmt::format("virtserialport,bus=vser0.0,chardev=agent,name={}", kAgentPortName),
       "-qmp", fmt::format("unix:{},server=on,wait=off", path(QmpSocket(spec)))});
  return argv;
}

}  // namespace vmctl::vmm::qemu
