#include "api/exchange.h"

namespace vmctl::api {
namespace {

using nlohmann::json;

bool ListOrCreate(controller::VmService& vms, const Exchange& ex) {
  if (ex.req.method() == http::verb::get) {
    auto list = vms.List(ex.owner);
    if (!list.ok()) return ex.Fail(list.error());
    json out = json::array();
    for (const auto& vm : *list) out.push_back(ToJson(vm));
    return ex.Ok({{"vms", out}});
  }
  if (ex.req.method() == http::verb::post) {
    auto request = ParseVmRequest(ex.req.body());
    if (!request.ok()) return ex.Fail(request.error());
    return ex.WithProgress(http::status::created,
                           [&](const controller::Progress& p) -> Result<json> {
                             VMCTL_ASSIGN_OR_RETURN(VmRecord vm, vms.Create(ex.owner, *request, p));
                             return ToJson(vm);
                           });
  }
  return ex.BadMethod();
}

// GET (with its disks) and DELETE /v1/vms/NAME.
bool ShowOrRemove(controller::VmService& vms, const Exchange& ex, const std::string& name) {
  if (ex.req.method() == http::verb::get) {
    auto vm = vms.Get(ex.owner, name);
    if (!vm.ok()) return ex.Fail(vm.error());
    json out = ToJson(*vm);
    out["disks"] = json::array();
    auto disks = vms.Disks(ex.owner, name);
    if (disks.ok()) {
      for (const auto& d : *disks) {
        out["disks"].push_back({{"role", d.role},
                                {"path", d.path},
                                {"format", d.format},
                                {"wanted_mib", d.wanted_mib},
                                {"size_bytes", d.usage.size_bytes},
                                {"allocated_bytes", d.usage.allocated_bytes}});
      }
    } else {
      out["disks_error"] = disks.error().message();
    }
    return ex.Ok(out);
  }
  if (ex.req.method() == http::verb::delete_) {
    auto removed = vms.Remove(ex.owner, name);
    if (!removed.ok()) return ex.Fail(removed.error());
    return ex.Ok({{"removed", name}});
  }
  return ex.BadMethod();
}

// POST /v1/vms/NAME/{start,stop,restart,resize}.
bool Act(controller::VmService& vms, const Exchange& ex, const std::string& name,
         const std::string& action) {
  if (ex.req.method() != http::verb::post) return ex.BadMethod();
  const std::string& owner = ex.owner;
  auto with_progress = [&](auto op) {
    return ex.WithProgress(http::status::ok, [&](const controller::Progress& p) -> Result<json> {
      VMCTL_ASSIGN_OR_RETURN(VmRecord vm, op(p));
      return ToJson(vm);
    });
  };
  if (action == "start") {
    return with_progress([&](const controller::Progress& p) { return vms.Start(owner, name, p); });
  }
  if (action == "stop") {
    auto vm = vms.Stop(owner, name, ex.target.query.Flag("force"));
    if (!vm.ok()) return ex.Fail(vm.error());
    return ex.Ok(ToJson(*vm));
  }
  if (action == "resize") {
    auto request = ParseResizeRequest(ex.req.body());
    if (!request.ok()) return ex.Fail(request.error());
    return with_progress([&](const controller::Progress& p) {
      return vms.Resize(owner, name, request->root_disk_mib, request->data_disk_mib, p);
    });
  }
  if (action == "restart") {
    return with_progress(
        [&](const controller::Progress& p) { return vms.Restart(owner, name, p); });
  }
  return ex.Fail(NotFound("no such VM action: " + action));
}

}  // namespace

Routed RouteVms(controller::VmService& vms, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() < 2 || parts[1] != "vms") return std::nullopt;
  if (parts.size() == 2) return ListOrCreate(vms, ex);
  if (parts.size() > 4) return ex.NoEndpoint();
  if (parts.size() == 3) return ShowOrRemove(vms, ex, parts[2]);
  if (auto routed = RouteShares(vms, ex)) return routed;
  if (auto routed = RouteVmStreams(vms, ex)) return routed;
  return Act(vms, ex, parts[2], parts[3]);
}

}  // namespace vmctl::api
