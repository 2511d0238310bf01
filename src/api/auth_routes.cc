#include "api/exchange.h"

namespace vmctl::api {
namespace {

using nlohmann::json;

json TokenJson(const controller::TokenInfo& token) {
  return {{"id", token.id},
          {"vm", token.vm},
          {"created_at", token.created_at},
          {"expires_at", token.expires_at},
          {"last_used_at", token.last_used_at}};
}

bool Tokens(controller::AuthService& auth, const Exchange& ex) {
  if (ex.req.method() == http::verb::get) {
    auto tokens = auth.Tokens(ex.owner);
    if (!tokens.ok()) return ex.Fail(tokens.error());
    json out = json::array();
    for (const auto& token : *tokens) out.push_back(TokenJson(token));
    return ex.Ok({{"tokens", out}});
  }
  if (ex.req.method() != http::verb::post) return ex.BadMethod();
  auto request = ParseTokenRequest(ex.req.body());
  if (!request.ok()) return ex.Fail(request.error());
  auto token = auth.CreateToken(ex.owner, request->vm, request->lifetime);
  if (!token.ok()) return ex.Fail(token.error());
  return ex.Json(http::status::created,
                 {{"token", TokenJson(token->info)}, {"secret", token->secret}});
}

}  // namespace

Routed RouteAuth(controller::AuthService& auth, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() == 2 && (parts[1] == "login-link" || parts[1] == "logout")) {
    if (ex.req.method() != http::verb::post) return ex.BadMethod();
    if (parts[1] == "logout") {
      auto ended = auth.LogoutEverywhere(ex.owner);
      if (!ended.ok()) return ex.Fail(ended.error());
      return ex.Ok({{"sessions", *ended}});
    }
    auto link = auth.CreateLoginLink(ex.owner);
    if (!link.ok()) return ex.Fail(link.error());
    return ex.Ok({{"url", link->url}, {"expires_at", link->expires_at}});
  }
  if (parts.size() < 2 || parts.size() > 3 || parts[1] != "tokens") return std::nullopt;
  if (parts.size() == 2) return Tokens(auth, ex);
  if (ex.req.method() != http::verb::delete_) return ex.BadMethod();
  auto removed = auth.RemoveToken(ex.owner, parts[2]);
  if (!removed.ok()) return ex.Fail(removed.error());
  return ex.Ok({{"removed", parts[2]}});
}

}  // namespace vmctl::api
