#include "vmm/cloud_hypervisor/ch_api.h"

#include <fmt/format.h>

#include <cctype>

#include "vmm/common/http_unix.h"

namespace vmctl::vmm::cloud_hypervisor {

using nlohmann::json;

namespace {

constexpr std::chrono::minutes kSnapshotTimeout{10};

}  // namespace

std::filesystem::path ApiSocket(const LaunchSpec& spec) { return spec.runtime_dir / "api.sock"; }
std::filesystem::path ApiSocketLock(const std::filesystem::path& api_socket) {
  return api_socket.string() + ".lock";
}
std::filesystem::path VsockSocket(const LaunchSpec& spec) {
  return spec.runtime_dir / "vsock.sock";
}

json VmConfigFor(const LaunchSpec& spec) {
  json payload = {
      {"kernel", spec.kernel.string()},
      {"cmdline",
       spec.kernel_cmdline.empty() ? "console=ttyS0" : spec.kernel_cmdline + " console=ttyS0"}};
  if (!spec.initramfs.empty()) payload["initramfs"] = spec.initramfs.string();

  json disks = json::array();
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const DiskSpec& d = spec.disks[i];
    // The image type is explicit: recent releases no longer guess it from the content.
    json disk = {{"id", fmt::format("disk{}", i)},
                 {"path", d.path.string()},
                 {"readonly", d.read_only},
                 {"image_type", d.format == DiskSpec::Format::kQcow2 ? "Qcow2" : "Raw"}};
    // vmctl's qcow2 disks are overlays on an image it chose (an absolute path it wrote itself);
    // Cloud Hypervisor refuses backing files unless told to follow them.
    if (d.format == DiskSpec::Format::kQcow2) disk["backing_files"] = true;
    disks.push_back(std::move(disk));
  }

  json config = {
      {"payload", std::move(payload)},
      {"cpus", {{"boot_vcpus", spec.cpus}, {"max_vcpus", spec.cpus}}},
      {"memory", {{"size", spec.memory_mib * 1024 * 1024}}},
      {"disks", std::move(disks)},
      // Both explicit: the API's defaults (serial discarded, virtio console on the VMM's stdout)
      // would lose the early boot log and mix the rest into the VMM's own log.
      {"serial", {{"mode", "File"}, {"file", spec.console_log.string()}}},
      {"console", {{"mode", "Off"}}},
      {"vsock", {{"cid", kGuestCid}, {"socket", VsockSocket(spec).string()}}},
  };
  if (spec.net) {
    config["net"] = json::array({{{"id", "net0"}, {"tap", spec.net->tap}, {"mac", spec.net->mac}}});
  }
  return config;
}

json ResizeBody(std::optional<int> desired_vcpus, std::optional<int64_t> desired_ram) {
  json body = json::object();
  if (desired_vcpus) body["desired_vcpus"] = *desired_vcpus;
  if (desired_ram) body["desired_ram"] = *desired_ram;
  return body;
}

json ResizeDiskBody(size_t index, int64_t size_bytes) {
  return {{"id", fmt::format("disk{}", index)}, {"desired_size", size_bytes}};
}

json SnapshotBody(const std::filesystem::path& dir) {
  return {{"destination_url", "file://" + dir.string()}};
}

json RestoreBody(const std::filesystem::path& dir) {
  return {{"source_url", "file://" + dir.string()}};
}

Error ErrorFromResponse(const std::string& endpoint, unsigned status, const std::string& body) {
  std::string detail;
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_array()) {
    for (const auto& part : parsed) {
      if (!detail.empty()) detail += ": ";
      detail += part.is_string() ? part.get<std::string>() : part.dump();
    }
  } else {
    detail = body;
  }
  while (!detail.empty() && std::isspace(static_cast<unsigned char>(detail.back()))) {
    detail.pop_back();
  }
  if (detail.empty()) detail = fmt::format("HTTP {}", status);
  std::string message = fmt::format("cloud-hypervisor {}: {}", endpoint, detail);
  if (status == 404 || status == 405 || status == 429) return FailedPrecondition(message);
  if (status >= 400 && status < 500) return InvalidArgument(message);
  return Internal(message);
}

Result<json> Client::Call(const std::string& method, const std::string& endpoint,
                          const std::optional<json>& body, std::chrono::milliseconds timeout) {
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res,
                         HttpUnix(socket_, method, "/api/v1/" + endpoint, body, timeout));
  if (res.status < 200 || res.status >= 300) {
    return ErrorFromResponse(endpoint, res.status, res.body);
  }
  if (res.body.empty()) return json::object();
  json parsed = json::parse(res.body, nullptr, false);
  if (parsed.is_discarded()) {
    return Internal(fmt::format("cloud-hypervisor {}: answer is not JSON: {}", endpoint, res.body));
  }
  return parsed;
}

Result<void> Client::Put(const std::string& endpoint, const std::optional<json>& body) {
  VMCTL_TRY(Call("PUT", endpoint, body, timeout_));
  return Ok();
}

Result<json> Client::Ping() { return Call("GET", "vmm.ping", std::nullopt, timeout_); }
Result<void> Client::Create(const json& vm_config) { return Put("vm.create", vm_config); }
Result<void> Client::Boot() { return Put("vm.boot"); }
Result<json> Client::Info() { return Call("GET", "vm.info", std::nullopt, timeout_); }
Result<void> Client::Shutdown() { return Put("vm.shutdown"); }
Result<void> Client::PowerButton() { return Put("vm.power-button"); }
Result<void> Client::Reboot() { return Put("vm.reboot"); }
Result<void> Client::Pause() { return Put("vm.pause"); }
Result<void> Client::Resume() { return Put("vm.resume"); }

Result<void> Client::Snapshot(const std::filesystem::path& dir) {
  VMCTL_TRY(Call("PUT", "vm.snapshot", SnapshotBody(dir), kSnapshotTimeout));
  return Ok();
}

Result<void> Client::Restore(const std::filesystem::path& dir) {
  VMCTL_TRY(Call("PUT", "vm.restore", RestoreBody(dir), kSnapshotTimeout));
  return Ok();
}

Result<void> Client::Resize(std::optional<int> desired_vcpus, std::optional<int64_t> desired_ram) {
  if (!desired_vcpus && !desired_ram) return InvalidArgument("resize: nothing to change");
  return Put("vm.resize", ResizeBody(desired_vcpus, desired_ram));
}

Result<void> Client::ResizeDisk(size_t index, int64_t size_bytes) {
  return Put("vm.resize-disk", ResizeDiskBody(index, size_bytes));
}

Result<void> Client::Delete() { return Put("vm.delete"); }
Result<void> Client::ShutdownVmm() { return Put("vmm.shutdown"); }

}  // namespace vmctl::vmm::cloud_hypervisor
