#include "api/exchange.h"

namespace vmctl::api {

using nlohmann::json;

Routed RouteShares(controller::VmService& vms, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() != 4 || parts[1] != "vms" || parts[3] != "shares") return std::nullopt;
  const std::string& name = parts[2];
  const auto method = ex.req.method();
  if (method == http::verb::get) {
    auto users = vms.SharedWith(ex.owner, name);
    if (!users.ok()) return ex.Fail(users.error());
    json out = json::array();
    for (const auto& u : *users) out.push_back({{"email", u.email}, {"name", u.name}});
    return ex.Ok({{"shares", out}});
  }
  Result<void> changed = Ok();
  if (method == http::verb::post) {
    auto email = ParseShareRequest(ex.req.body());
    if (!email.ok()) return ex.Fail(email.error());
    changed = vms.Share(ex.owner, name, *email);
  } else if (method == http::verb::delete_) {
    const auto& values = ex.target.query.values;
    auto email = values.find("email");
    if (email == values.end()) return ex.Fail(InvalidArgument("give ?email=ADDRESS"));
    changed = vms.Unshare(ex.owner, name, email->second);
  } else {
    return ex.BadMethod();
  }
  if (!changed.ok()) return ex.Fail(changed.error());
  return ex.Ok(json::object());
}

}  // namespace vmctl::api
