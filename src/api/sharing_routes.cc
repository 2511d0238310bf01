// /v1/vms/NAME/sharing, /shares, /share-links and /domains: who reaches a VM's web app, at which
// port and names (docs/api.md).

#include "api/exchange.h"
#include "controller/sharing_rules.h"
#include "controller/sharing_service.h"

namespace vmctl::api {

using nlohmann::json;

namespace {

json UsersJson(const std::vector<User>& users) {
  json out = json::array();
  for (const auto& u : users) out.push_back({{"email", u.email}, {"name", u.name}});
  return out;
}

json SharingJson(const controller::SharingInfo& info) {
  json links = json::array();
  for (const auto& link : info.links) {
    links.push_back({{"id", link.id}, {"created_at", link.created_at}});
  }
  return {{"url", info.url},
          {"public", info.is_public},
          {"web_port", info.web_port},
          {"web_port_explicit", info.web_port_explicit},
          {"users", UsersJson(info.users)},
          {"links", links},
          {"domains", info.domains}};
}

Routed Answer(const Exchange& ex, controller::SharingService& sharing, const std::string& name,
              const Result<void>& changed) {
  if (!changed.ok()) return ex.Fail(changed.error());
  auto info = sharing.Sharing(ex.owner, name);
  if (!info.ok()) return ex.Fail(info.error());
  return ex.Ok(SharingJson(*info));
}

Routed RouteSharingSettings(controller::SharingService& sharing, const Exchange& ex,
                            const std::string& name) {
  const auto method = ex.req.method();
  if (method == http::verb::get) return Answer(ex, sharing, name, Ok());
  if (method != http::verb::put) return ex.BadMethod();
  auto update = ParseSharingUpdate(ex.req.body());
  if (!update.ok()) return ex.Fail(update.error());
  if (update->is_public) {
    if (auto set = sharing.SetPublic(ex.owner, name, *update->is_public); !set.ok()) {
      return ex.Fail(set.error());
    }
  }
  Result<void> changed = Ok();
  if (update->web_port) changed = sharing.SetWebPort(ex.owner, name, *update->web_port);
  return Answer(ex, sharing, name, changed);
}

Routed RouteShares(controller::SharingService& sharing, const Exchange& ex,
                   const std::string& name) {
  const auto& parts = ex.target.segments;
  const auto method = ex.req.method();
  if (method == http::verb::get && parts.size() == 4) {
    auto info = sharing.Sharing(ex.owner, name);
    if (!info.ok()) return ex.Fail(info.error());
    return ex.Ok({{"shares", UsersJson(info->users)}});
  }
  Result<void> changed = Ok();
  if (method == http::verb::post && parts.size() == 4) {
    auto email = ParseShareRequest(ex.req.body());
    if (!email.ok()) return ex.Fail(email.error());
    changed = sharing.Share(ex.owner, name, *email);
  } else if (method == http::verb::delete_ && parts.size() == 5) {
    auto target = controller::ParseShareTarget(parts[4]);
    if (!target.ok()) return ex.Fail(target.error());
    changed = target->is_link ? sharing.RemoveShareLink(ex.owner, name, target->value)
                              : sharing.Unshare(ex.owner, name, target->value);
  } else if (method == http::verb::delete_ && parts.size() == 4) {
    const auto& values = ex.target.query.values;
    auto email = values.find("email");
    if (email == values.end()) return ex.Fail(InvalidArgument("give ?email=ADDRESS"));
    changed = sharing.Unshare(ex.owner, name, email->second);
  } else {
    return ex.BadMethod();
  }
  if (!changed.ok()) return ex.Fail(changed.error());
  return ex.Ok(json::object());
}

Routed RouteDomains(controller::SharingService& sharing, const Exchange& ex,
                    const std::string& name) {
  const auto& parts = ex.target.segments;
  const auto method = ex.req.method();
  if (method == http::verb::get && parts.size() == 4) {
    auto domains = sharing.Domains(ex.owner, name);
    if (!domains.ok()) return ex.Fail(domains.error());
    return ex.Ok({{"domains", *domains}});
  }
  Result<void> changed = Ok();
  if (method == http::verb::post && parts.size() == 4) {
    auto domain = ParseDomainRequest(ex.req.body());
    if (!domain.ok()) return ex.Fail(domain.error());
    changed = sharing.AddDomain(ex.owner, name, *domain);
  } else if (method == http::verb::delete_ && parts.size() == 5) {
    changed = sharing.RemoveDomain(ex.owner, name, parts[4]);
  } else {
    return ex.BadMethod();
  }
  if (!changed.ok()) return ex.Fail(changed.error());
  auto domains = sharing.Domains(ex.owner, name);
  if (!domains.ok()) return ex.Fail(domains.error());
  return ex.Ok({{"domains", *domains}});
}

}  // namespace

Routed RouteSharing(controller::SharingService& sharing, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() < 4 || parts.size() > 5 || parts[1] != "vms") return std::nullopt;
  const std::string& name = parts[2];
  const std::string& action = parts[3];
  if (action == "sharing" && parts.size() == 4) return RouteSharingSettings(sharing, ex, name);
  if (action == "shares") return RouteShares(sharing, ex, name);
  if (action == "domains") return RouteDomains(sharing, ex, name);
  if (action == "share-links" && parts.size() == 4) {
    if (ex.req.method() != http::verb::post) return ex.BadMethod();
    auto link = sharing.CreateShareLink(ex.owner, name);
    if (!link.ok()) return ex.Fail(link.error());
    return ex.Json(http::status::created,
                   {{"id", link->id}, {"url", link->url}, {"created_at", link->created_at}});
  }
  return std::nullopt;
}

}  // namespace vmctl::api
