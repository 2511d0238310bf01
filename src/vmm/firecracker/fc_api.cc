#include "vmm/firecracker/fc_api.h"

#include <fmt/format.h>

#include <cctype>

#include "vmm/common/http_unix.h"

namespace vmctl::vmm::firecracker {

using nlohmann::json;

namespace {

constexpr std::chrono::minutes kSnapshotTimeout{10};
constexpr std::chrono::seconds kDescribeTimeout{10};

std::string DriveId(size_t index) { return index == 0 ? "rootfs" : fmt::format("disk{}", index); }

}  // namespace

std::filesystem::path ApiSocket(const LaunchSpec& spec) { return spec.runtime_dir / "api.sock"; }
std::filesystem::path VsockSocket(const LaunchSpec& spec) {
  return spec.runtime_dir / "vsock.sock";
}

Result<std::vector<Request>> BootSequence(const LaunchSpec& spec) {
  if (spec.cpus < 1 || spec.cpus > kMaxVcpus) {
    return InvalidArgument(
        fmt::format("firecracker runs 1 to {} vCPUs, not {}", kMaxVcpus, spec.cpus));
  }
  if (spec.memory_mib < 1) {
    return InvalidArgument(fmt::format("memory must be positive, not {} MiB", spec.memory_mib));
  }
  for (const DiskSpec& d : spec.disks) {
    if (d.format != DiskSpec::Format::kRaw) {
      return InvalidArgument(fmt::format(
          "firecracker accepts raw disk images only, and {} is qcow2 (provision the disk as a raw "
          "copy instead)",
          d.path.string()));
    }
  }

  std::vector<Request> out;
  // console=ttyS0: Firecracker's serial port is its stdout. reboot=k (Firecracker's recommended
  // boot argument): a guest reboot, which is how Ctrl-Alt-Del ends, goes straight to the keyboard
  // controller reset that Firecracker answers by exiting.
  std::string boot_args = spec.kernel_cmdline.empty() ? std::string() : spec.kernel_cmdline + " ";
  boot_args += "console=ttyS0 reboot=k";
  json boot = {{"kernel_image_path", spec.kernel.string()}, {"boot_args", boot_args}};
  if (!spec.initramfs.empty()) boot["initrd_path"] = spec.initramfs.string();
  out.push_back({"PUT", "/boot-source", std::move(boot)});

  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& d = spec.disks[i];
    const std::string id = DriveId(i);
    // disks[0] is the root device: Firecracker attaches it first (/dev/vda) and appends
    // "root=/dev/vda rw|ro" to the command line, which is what LaunchSpec promises the guest.
    // Writeback: Firecracker's default ("Unsafe") drops the guest's flushes, so an fsync'd write
    // could be lost with the host.
    out.push_back({"PUT",
                   "/drives/" + id,
                   {{"drive_id", id},
                    {"path_on_host", d.path.string()},
                    {"is_root_device", i == 0},
                    {"is_read_only", d.read_only},
                    {"cache_type", "Writeback"}}});
  }
  if (spec.net) {
    out.push_back(
        {"PUT",
         "/network-interfaces/net0",
         {{"iface_id", "net0"}, {"host_dev_name", spec.net->tap}, {"guest_mac", spec.net->mac}}});
  }
  out.push_back(
      {"PUT", "/machine-config", {{"vcpu_count", spec.cpus}, {"mem_size_mib", spec.memory_mib}}});
  out.push_back(
      {"PUT", "/vsock", {{"guest_cid", kGuestCid}, {"uds_path", VsockSocket(spec).string()}}});
  out.push_back({"PUT", "/actions", {{"action_type", "InstanceStart"}}});
  return out;
}

Request PauseRequest(bool paused) {
  return {"PATCH", "/vm", {{"state", paused ? "Paused" : "Resumed"}}};
}

Request UpdateDriveRequest(size_t index, const std::filesystem::path& path) {
  const std::string id = DriveId(index);
  return {"PATCH", "/drives/" + id, {{"drive_id", id}, {"path_on_host", path.string()}}};
}

Request CtrlAltDelRequest() { return {"PUT", "/actions", {{"action_type", "SendCtrlAltDel"}}}; }

Request SnapshotCreateRequest(const std::filesystem::path& snapshot,
                              const std::filesystem::path& memory) {
  return {"PUT",
          "/snapshot/create",
          {{"snapshot_type", "Full"},
           {"snapshot_path", snapshot.string()},
           {"mem_file_path", memory.string()}},
          kSnapshotTimeout};
}

Request SnapshotLoadRequest(const std::filesystem::path& snapshot,
                            const std::filesystem::path& memory, bool resume) {
  // mem_backend rather than the deprecated mem_file_path.
  return {"PUT",
          "/snapshot/load",
          {{"snapshot_path", snapshot.string()},
           {"mem_backend", {{"backend_type", "File"}, {"backend_path", memory.string()}}},
           {"resume_vm", resume}},
          kSnapshotTimeout};
}

Error ErrorFromResponse(const Request& request, unsigned status, const std::string& body) {
  std::string detail = body;
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("fault_message")) {
    const json& fault = parsed["fault_message"];
    detail = fault.is_string() ? fault.get<std::string>() : fault.dump();
  }
  while (!detail.empty() && std::isspace(static_cast<unsigned char>(detail.back()))) {
    detail.pop_back();
  }
  if (detail.empty()) detail = fmt::format("HTTP {}", status);
  std::string message = fmt::format("firecracker {} {}: {}", request.method, request.path, detail);
  if (status >= 400 && status < 500) {
    if (detail.find("not supported before starting the microVM") != std::string::npos ||
        detail.find("not supported after starting the microVM") != std::string::npos) {
      return FailedPrecondition(message);
    }
    return InvalidArgument(message);
  }
  return Internal(message);
}

Result<json> Client::Describe() {
  const Request request{"GET", "/", nullptr};
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res,
                         HttpUnix(socket_, "GET", "/", std::nullopt, kDescribeTimeout));
  if (res.status != 200) return ErrorFromResponse(request, res.status, res.body);
  json parsed = json::parse(res.body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Internal("firecracker GET /: answer is not a JSON object: " + res.body);
  }
  return parsed;
}

Result<void> Client::Send(const Request& request) {
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res, HttpUnix(socket_, request.method, request.path,
                                                    request.body, request.timeout));
  if (res.status < 200 || res.status >= 300) {
    return ErrorFromResponse(request, res.status, res.body);
  }
  return Ok();
}

}  // namespace vmctl::vmm::firecracker
