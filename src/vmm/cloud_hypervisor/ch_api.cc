#include "vmm/cloud_hypervisor/ch_api.h"

#include <fmt/format.h>

#include "vmm/common/http_unix.h"

namespace vmctl::vmm::cloud_hypervisor {

using nlohmann::json;

std::filesystem::path ApiSocket(const LaunchSpec& spec) { return spec.runtime_dir / "api.sock"; }
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
    const auto& d = spec.disks[i];
    disks.push_back({{"path", d.path.string()},
                     {"readonly", d.read_only},
                     {"image_type", d.format == DiskSpec::Format::kQcow2 ? "Qcow2" : "Raw"},
                     {"id", fmt::format("disk{}", i)}});
  }
  json config = {
      {"payload", payload},
      {"cpus", {{"boot_vcpus", spec.cpus}, {"max_vcpus", spec.cpus}}},
      {"memory", {{"size", spec.memory_mib * 1024 * 1024}}},
      {"disks", disks},
      {"serial", {{"mode", "File"}, {"file", spec.console_log.string()}}},
      {"console", {{"mode", "Off"}}},
      {"vsock", {{"cid", kGuestCid}, {"socket", VsockSocket(spec).string()}}},
  };
  if (spec.net) {
    config["net"] = json::array({{{"tap", spec.net->tap}, {"mac", spec.net->mac}, {"id", "net0"}}});
  }
  return config;
}

json ResizeBody(int desired_vcpus, int64_t desired_ram_bytes) {
  json body = json::object();
  if (desired_vcpus > 0) body["desired_vcpus"] = desired_vcpus;
  if (desired_ram_bytes > 0) body["desired_ram"] = desired_ram_bytes;
  return body;
}

json SnapshotBody(const std::filesystem::path& dir) {
  return {{"destination_url", "file://" + dir.string()}};
}

json RestoreBody(const std::filesystem::path& dir) {
  return {{"source_url", "file://" + dir.string()}};
}

Error ErrorFromResponse(const std::string& what, unsigned status, const std::string& body) {
  std::string detail;
  json parsed = json::parse(body, nullptr, false);
  if (!parsed.is_discarded() && parsed.is_array()) {
    for (const auto& part : parsed) {
      if (!part.is_string()) continue;
      if (!detail.empty()) detail += ": ";
      detail += part.get<std::string>();
    }
  } else {
    detail = body;
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  }
  if (detail.empty()) detail = fmt::format("HTTP {}", status);
  std::string message = fmt::format("cloud-hypervisor {}: {}", what, detail);
  if (status == 404 || status == 405) return FailedPrecondition(message);
  if (status == 400) return InvalidArgument(message);
  if (status == 429) return Unavailable(message);
  return Internal(message);
}

Result<json> Client::Call(const std::string& method, const std::string& endpoint,
                          const std::optional<json>& body) {
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res, HttpUnix(socket_, method, "/api/v1/" + endpoint, body));
  if (res.status >= 300) return ErrorFromResponse(endpoint, res.status, res.body);
  if (res.body.empty()) return json::object();
  json parsed = json::parse(res.body, nullptr, false);
  if (parsed.is_discarded()) return Internal("cloud-hypervisor " + endpoint + ": invalid JSON");
  return parsed;
}

namespace {
Result<void> Done(const Result<json>& r) {
  if (!r.ok()) return r.error();
  return Ok();
}
}  // namespace

Result<json> Client::Ping() { return Call("GET", "vmm.ping", std::nullopt); }
Result<void> Client::Create(const json& c) { return Done(Call("PUT", "vm.create", c)); }
Result<void> Client::Boot() { return Done(Call("PUT", "vm.boot", std::nullopt)); }
Result<json> Client::Info() { return Call("GET", "vm.info", std::nullopt); }
Result<void> Client::Shutdown() { return Done(Call("PUT", "vm.shutdown", std::nullopt)); }
Result<void> Client::Reboot() { return Done(Call("PUT", "vm.reboot", std::nullopt)); }
Result<void> Client::PowerButton() { return Done(Call("PUT", "vm.power-button", std::nullopt)); }
Result<void> Client::Pause() { return Done(Call("PUT", "vm.pause", std::nullopt)); }
Result<void> Client::Resume() { return Done(Call("PUT", "vm.resume", std::nullopt)); }
Result<void> Client::Snapshot(const std::filesystem::path& dir) {
  return Done(Call("PUT", "vm.snapshot", SnapshotBody(dir)));
}
Result<void> Client::Restore(const std::filesystem::path& dir) {
  return Done(Call("PUT", "vm.restore", RestoreBody(dir)));
}
Result<void> Client::Resize(int vcpus, int64_t ram) {
  return Done(Call("PUT", "vm.resize", ResizeBody(vcpus, ram)));
}
Result<void> Client::Delete() { return Done(Call("PUT", "vm.delete", std::nullopt)); }
Result<void> Client::ShutdownVmm() { return Done(Call("PUT", "vmm.shutdown", std::nullopt)); }

}  // namespace vmctl::vmm::cloud_hypervisor
