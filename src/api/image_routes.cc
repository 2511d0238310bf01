#include "api/exchange.h"

namespace vmctl::api {

using nlohmann::json;

Routed RouteImages(controller::ImageService& images, const Exchange& ex) {
  const auto& parts = ex.target.segments;
  if (parts.size() < 2 || parts[1] != "images") return std::nullopt;
  const auto method = ex.req.method();
  if (parts.size() == 2) {
    if (method != http::verb::get) return ex.BadMethod();
    auto list = images.List();
    if (!list.ok()) return ex.Fail(list.error());
    json out = json::array();
    for (const auto& image : *list) out.push_back(ToJson(image));
    return ex.Ok({{"images", out}});
  }
  if (parts.size() == 4 && parts[3] == "build") {
    if (method != http::verb::post) return ex.BadMethod();
    auto source = ParseImageSource(ex.req.body());
    if (!source.ok()) return ex.Fail(source.error());
    controller::ImageBuildRequest request{parts[2], *source};
    return ex.WithProgress(http::status::ok, [&](const controller::Progress& p) -> Result<json> {
      VMCTL_ASSIGN_OR_RETURN(ImageRecord image, images.Build(request, p));
      return ToJson(image);
    });
  }
  if (parts.size() == 3) {
    if (method != http::verb::delete_) return ex.BadMethod();
    std::vector<std::string> notes;
    auto removed = images.Remove(parts[2], [&](const std::string& line) { notes.push_back(line); });
    if (!removed.ok()) return ex.Fail(removed.error());
    return ex.Ok({{"removed", parts[2]}, {"notes", notes}});
  }
  return ex.NoEndpoint();
}

}  // namespace vmctl::api
