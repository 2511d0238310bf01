#include "vmm/firecracker/fc_api.h"

#include <fmt/format.h>

#include "vmm/common/http_unix.h"

namespace vmctl::vmm::firecracker {

using nlohmann::json;

std::filesystem::path ApiSocket(const LaunchSpec& spec) { return spec.runtime_dir / "api.sock"; }
std::filesystem::path VsockSocket(const LaunchSpec& spec) {
  return spec.runtime_dir / "vsock.sock";
}

Result<std::vector<Request>> BootSequence(const LaunchSpec& spec) {
  if (spec.cpus > 32) {
    return InvalidArgument(
        fmt::format("firecracker supports at most 32 vCPUs (asked {})", spec.cpus));
  }
  std::vector<Request> out;
  json boot = {{"kernel_image_path", spec.kernel.string()},
               {"boot_args", spec.kernel_cmdline.empty() ? "console=ttyS0"
                                                         : spec.kernel_cmdline + " console=ttyS0"}};
  if (!spec.initramfs.empty()) boot["initrd_path"] = spec.initramfs.string();
  out.push_back({"PUT", "/boot-source", boot});
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const auto& d = spec.disks[i];
    if (d.format != DiskSpec::Format::kRaw) {
      return InvalidArgument(fmt::format(
          "firecracker takes raw disks only; {} is qcow2 (use the copy disk provisioner)",
          d.path.string()));
    }
    std::string id = fmt::format("disk{}", i);
    // Not a "root device": our initramfs mounts root= from the command line itself, so
    // Firecracker must not add its own root= for the first drive.
    out.push_back({"PUT",
                   "/drives/" + id,
                   {{"drive_id", id},
                    {"path_on_host", d.path.string()},
                    {"is_root_device", false},
                    {"is_read_only", d.read_only}}});
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

Request CtrlAltDelRequest() { return {"PUT", "/actions", {{"action_type", "SendCtrlAltDel"}}}; }

Request SnapshotCreateRequest(const std::filesystem::path& snapshot,
                              const std::filesystem::path& memory) {
  return {"PUT",
          "/snapshot/create",
          {{"snapshot_path", snapshot.string()},
           {"mem_file_path", memory.string()},
           {"snapshot_type", "Full"}}};
}

Request SnapshotLoadRequest(const std::filesystem::path& snapshot,
                            const std::filesystem::path& memory, bool resume) {
  return {"PUT",
          "/snapshot/load",
          {{"snapshot_path", snapshot.string()},
           {"mem_backend", {{"backend_type", "File"}, {"backend_path", memory.string()}}},
           {"resume_vm", resume}}};
}

Error ErrorFromResponse(const Request& request, unsigned status, const std::string& body) {
  std::string detail;
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("fault_message")) {
    detail = parsed["fault_message"].get<std::string>();
  } else {
    detail = body.empty() ? fmt::format("HTTP {}", status) : body;
  }
  std::string message = fmt::format("firecracker {} {}: {}", request.method, request.path, detail);
  if (status == 400) return InvalidArgument(message);
  return Internal(message);
}

Result<json> Client::Describe() {
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res, HttpUnix(socket_, "GET", "/", std::nullopt));
  if (res.status >= 300) return ErrorFromResponse({"GET", "/", {}}, res.status, res.body);
  json parsed = json::parse(res.body, nullptr, false);
  if (parsed.is_discarded()) return Internal("firecracker GET /: invalid JSON");
  return parsed;
}

Result<void> Client::Send(const Request& request) {
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res,
                         HttpUnix(socket_, request.method, request.path, request.body));
  if (res.status >= 300) return ErrorFromResponse(request, res.status, res.body);
  return Ok();
}

}  // namespace vmctl::vmm::firecracker
