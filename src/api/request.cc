#include "api/request.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace vmctl::api {
namespace {

using nlohmann::json;

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<json> ParseObject(std::string_view body) {
  if (body.empty()) return InvalidArgument("request body is empty; expected a JSON object");
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return InvalidArgument("request body is not valid JSON");
  if (!parsed.is_object()) return InvalidArgument("request body must be a JSON object");
  return parsed;
}

Result<void> OnlyKnownFields(const json& object, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : object.items()) {
    bool found = false;
    for (auto k : known) found = found || k == key;
    if (!found) return InvalidArgument(fmt::format("unknown field '{}'", key));
  }
  return Ok();
}

template <typename T>
Result<void> Field(const json& object, const char* key, T* out) {
  auto it = object.find(key);
  if (it == object.end()) return Ok();
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return InvalidArgument(fmt::format("field '{}' must be a string", key));
    *out = it->template get<std::string>();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return InvalidArgument(fmt::format("field '{}' must be a boolean", key));
    *out = it->template get<bool>();
  } else {
    if (!it->is_number_integer()) {
      return InvalidArgument(fmt::format("field '{}' must be an integer", key));
    }
    auto v = it->template get<int64_t>();
    if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
      return InvalidArgument(fmt::format("field '{}' is out of range", key));
    }
    *out = static_cast<T>(v);
  }
  return Ok();
}

}  // namespace

bool Query::Flag(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end()) return false;
  return it->second.empty() || it->second == "1" || it->second == "true" || it->second == "yes";
}

Target ParseTarget(std::string_view target) {
  Target out;
  auto q = target.find('?');
  out.path = std::string(target.substr(0, q));
  std::string_view path = out.path;
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) out.segments.push_back(PercentDecode(path.substr(start, end - start)));
    start = end + 1;
  }
  if (q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      auto eq = pair.find('=');
      std::string key = PercentDecode(pair.substr(0, eq));
      std::string value = eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
      if (!key.empty()) out.query.values[key] = value;
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  return out;
}

Result<std::string> ParseShareRequest(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json object, ParseObject(body));
  VMCTL_TRY(OnlyKnownFields(object, {"email"}));
  std::string email;
  VMCTL_TRY(Field(object, "email", &email));
  if (email.empty()) return InvalidArgument("field 'email' is required");
  return email;
}

Result<VmRequest> ParseVmRequest(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json object, ParseObject(body));
  VMCTL_TRY(OnlyKnownFields(
      object, {"name", "image", "cpus", "memory_mib", "root_disk_mib", "disk_mib", "bandwidth"}));
  if (!object.contains("name")) return InvalidArgument("field 'name' is required");
  VmRequest request;
  VMCTL_TRY(Field(object, "name", &request.name));
  VMCTL_TRY(Field(object, "image", &request.image));
  VMCTL_TRY(Field(object, "cpus", &request.cpus));
  VMCTL_TRY(Field(object, "memory_mib", &request.memory_mib));
  VMCTL_TRY(Field(object, "root_disk_mib", &request.root_disk_mib));
  VMCTL_TRY(Field(object, "disk_mib", &request.data_disk_mib));
  std::string bandwidth;
  VMCTL_TRY(Field(object, "bandwidth", &bandwidth));
  if (!bandwidth.empty()) {
    VMCTL_ASSIGN_OR_RETURN(request.bandwidth_kbit, ParseBandwidthKbit(bandwidth));
  }
  return request;
}

Result<ResizeRequest> ParseResizeRequest(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json object, ParseObject(body));
  VMCTL_TRY(OnlyKnownFields(object, {"root_disk_mib", "disk_mib"}));
  ResizeRequest request;
  VMCTL_TRY(Field(object, "root_disk_mib", &request.root_disk_mib));
  VMCTL_TRY(Field(object, "disk_mib", &request.data_disk_mib));
  return request;
}

Result<std::optional<ImageSource>> ParseImageSource(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  VMCTL_ASSIGN_OR_RETURN(json object, ParseObject(body));
  VMCTL_TRY(OnlyKnownFields(object, {"debian", "oci", "dockerfile", "context"}));
  int sources = static_cast<int>(object.contains("debian")) +
                static_cast<int>(object.contains("oci")) +
                static_cast<int>(object.contains("dockerfile"));
  if (sources > 1) return InvalidArgument("give one image source: debian, oci or dockerfile");
  if (sources == 0 && !object.contains("context")) return std::nullopt;
  ImageSource source;
  if (object.contains("context") && !object.contains("dockerfile")) {
    return InvalidArgument("field 'context' goes with 'dockerfile'");
  }
  if (auto debian = object.find("debian"); debian != object.end()) {
    if (!debian->is_object()) return InvalidArgument("field 'debian' must be an object");
    VMCTL_TRY(OnlyKnownFields(*debian, {"suite", "packages"}));
    VMCTL_TRY(Field(*debian, "suite", &source.suite));
    if (auto packages = debian->find("packages"); packages != debian->end()) {
      if (!packages->is_array()) return InvalidArgument("'packages' must be an array of strings");
      for (const auto& p : *packages) {
        if (!p.is_string()) return InvalidArgument("'packages' must be an array of strings");
        source.packages.push_back(p.get<std::string>());
      }
    }
  } else if (object.contains("oci")) {
    source.kind = ImageSource::Kind::kOci;
    VMCTL_TRY(Field(object, "oci", &source.path));
  } else if (object.contains("dockerfile")) {
    source.kind = ImageSource::Kind::kDockerfile;
    VMCTL_TRY(Field(object, "dockerfile", &source.path));
    VMCTL_TRY(Field(object, "context", &source.context));
  }
  VMCTL_TRY(ValidateImageSource(source));
  return std::optional<ImageSource>(source);
}

Result<agent::ExecRequest> ParseExecRequest(std::string_view body) {
  VMCTL_ASSIGN_OR_RETURN(json object, ParseObject(body));
  VMCTL_TRY(OnlyKnownFields(object, {"argv", "env", "cwd", "tty", "rows", "cols"}));
  agent::ExecRequest request;
  auto argv = object.find("argv");
  if (argv == object.end() || !argv->is_array() || argv->empty()) {
    return InvalidArgument("field 'argv' must be a non-empty array of strings");
  }
  for (const auto& arg : *argv) {
    if (!arg.is_string()) return InvalidArgument("field 'argv' must contain only strings");
    request.argv.push_back(arg.get<std::string>());
  }
  if (auto env = object.find("env"); env != object.end()) {
    if (!env->is_object()) return InvalidArgument("field 'env' must be an object of strings");
    for (const auto& [k, value] : env->items()) {
      if (!value.is_string() || k.empty() || k.find('=') != std::string::npos) {
        return InvalidArgument(fmt::format("bad environment variable '{}'", k));
      }
      request.env[k] = value.get<std::string>();
    }
  }
  VMCTL_TRY(Field(object, "cwd", &request.cwd));
  VMCTL_TRY(Field(object, "tty", &request.tty));
  VMCTL_TRY(Field(object, "rows", &request.rows));
  VMCTL_TRY(Field(object, "cols", &request.cols));
  if (request.rows <= 0 || request.cols <= 0 || request.rows > 1000 || request.cols > 1000) {
    return InvalidArgument("rows and cols must be between 1 and 1000");
  }
  return request;
}

}  // namespace vmctl::api
