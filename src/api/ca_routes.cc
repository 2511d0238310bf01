#include "api/exchange.h"

namespace vmctl::api {

Routed RouteCa(const std::string& local_ca_pem, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() != 2 || parts[1] != "ca") return std::nullopt;
  if (ex.req.method() != http::verb::get) return ex.BadMethod();
  if (local_ca_pem.empty()) {
    return ex.Fail(NotFound("this daemon has no local CA: its certificates come from ACME"));
  }
  return ex.Ok({{"certificate", local_ca_pem}});
}

}  // namespace vmctl::api
