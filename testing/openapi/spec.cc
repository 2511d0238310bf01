#include "testing/openapi/spec.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace vmctl::testing {

using nlohmann::json;

namespace {

json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = ToJson(kv.second);
      return out;
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(ToJson(item));
      return out;
    }
    case YAML::NodeType::Scalar: {
      std::string s = node.Scalar();
      // Quoted scalars are strings; plain ones may be booleans or numbers.
      if (node.Tag() == "!") return s;
      if (s == "true") return true;
      if (s == "false") return false;
      try {
        size_t used = 0;
        long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (const std::exception&) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

bool PathMatches(const std::string& pattern, const std::string& path) {
  size_t i = 0, j = 0;
  while (i < pattern.size() && j < path.size()) {
    if (pattern[i] == '{') {
      i = pattern.find('}', i);
      if (i == std::string::npos) return false;
      ++i;
      while (j < path.size() && path[j] != '/') ++j;
      continue;
    }
    if (pattern[i] != path[j]) return false;
    ++i;
    ++j;
  }
  return i == pattern.size() && j == path.size();
}

}  // namespace

Result<OpenApiSpec> OpenApiSpec::Load(const std::filesystem::path& yaml) {
  OpenApiSpec spec;
  try {
    spec.doc_ = ToJson(YAML::LoadFile(yaml.string()));
  } catch (const std::exception& e) {
    return InvalidArgument(fmt::format("cannot load {}: {}", yaml.string(), e.what()));
  }
  if (spec.doc_.contains("servers")) {
    std::string url = spec.doc_["servers"][0].value("url", "");
    auto scheme = url.find("://");
    auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (slash != std::string::npos) spec.base_path_ = url.substr(slash);
  } else if (spec.doc_.contains("basePath") && spec.doc_["basePath"] != "/") {
    spec.base_path_ = spec.doc_["basePath"].get<std::string>();
  }
  return spec;
}

Result<json> OpenApiSpec::Operation(const std::string& method, const std::string& full_path) const {
  std::string path = full_path;
  if (!base_path_.empty() && path.rfind(base_path_, 0) == 0) path = path.substr(base_path_.size());
  std::string m = method;
  for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [pattern, ops] : doc_["paths"].items()) {
    if (PathMatches(pattern, path) && ops.contains(m)) return ops[m];
  }
  return NotFound(fmt::format("{} {} is not in the spec", method, full_path));
}

Result<std::optional<json>> OpenApiSpec::RequestSchema(const std::string& method,
                                                       const std::string& path) const {
  VMCTL_ASSIGN_OR_RETURN(json op, Operation(method, path));
  if (op.contains("requestBody")) {  // OpenAPI 3
    return std::optional<json>(op["requestBody"]["content"]["application/json"]["schema"]);
  }
  for (const auto& p : op.value("parameters", json::array())) {  // Swagger 2
    if (p.value("in", "") == "body") return std::optional<json>(p["schema"]);
  }
  return std::optional<json>();
}

const json& OpenApiSpec::Resolve(const json& schema) const {
  const json* s = &schema;
  while (s->is_object() && s->contains("$ref")) {
    std::string ref = (*s)["$ref"];
    const json* node = &doc_;
    size_t start = 2;  // skip "#/"
    while (start < ref.size()) {
      size_t end = ref.find('/', start);
      if (end == std::string::npos) end = ref.size();
      node = &(*node)[ref.substr(start, end - start)];
      start = end + 1;
    }
    s = node;
  }
  return *s;
}

Result<void> OpenApiSpec::Validate(const json& value, const json& schema) const {
  return ValidateAt(value, schema, "body");
}

Result<void> OpenApiSpec::ValidateRequest(const std::string& method, const std::string& path,
                                          const json& body) const {
  VMCTL_ASSIGN_OR_RETURN(auto schema, RequestSchema(method, path));
  if (!schema) {
    if (body.is_null() || (body.is_object() && body.empty())) return Ok();
    return InvalidArgument(fmt::format("{} {} takes no body", method, path));
  }
  return Validate(body, *schema);
}

Result<void> OpenApiSpec::ValidateAt(const json& value, const json& raw_schema,
                                     const std::string& where) const {
  const json& schema = Resolve(raw_schema);
  auto fail = [&](const std::string& why) {
    return InvalidArgument(fmt::format("{}: {}", where, why));
  };
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& allowed : schema["enum"]) found = found || allowed == value;
    if (!found)
      return fail(fmt::format("{} is not one of {}", value.dump(), schema["enum"].dump()));
  }
  std::string type = schema.value("type", schema.contains("properties") ? "object" : "");
  if (type == "object") {
    if (!value.is_object()) return fail("expected an object, got " + value.dump());
    for (const auto& req : schema.value("required", json::array())) {
      if (!value.contains(req.get<std::string>())) {
        return fail(fmt::format("missing required '{}'", req.get<std::string>()));
      }
    }
    const json props = schema.value("properties", json::object());
    for (const auto& [key, v] : value.items()) {
      if (props.contains(key)) {
        VMCTL_TRY(ValidateAt(v, props[key], where + "." + key));
      } else if (schema.contains("additionalProperties") &&
                 schema["additionalProperties"].is_object()) {
        VMCTL_TRY(ValidateAt(v, schema["additionalProperties"], where + "." + key));
      } else if (!(schema.contains("additionalProperties") &&
                   schema["additionalProperties"] == true)) {
        return fail(fmt::format("unknown property '{}'", key));
      }
    }
  } else if (type == "array") {
    if (!value.is_array()) return fail("expected an array, got " + value.dump());
    for (size_t i = 0; i < value.size(); ++i) {
      if (schema.contains("items")) {
        VMCTL_TRY(ValidateAt(value[i], schema["items"], fmt::format("{}[{}]", where, i)));
      }
    }
  } else if (type == "string") {
    if (!value.is_string()) return fail("expected a string, got " + value.dump());
  } else if (type == "boolean") {
    if (!value.is_boolean()) return fail("expected a boolean, got " + value.dump());
  } else if (type == "integer" || type == "number") {
    if (type == "integer" ? !value.is_number_integer() : !value.is_number()) {
      return fail(fmt::format("expected {}, got {}", type, value.dump()));
    }
    double v = value.get<double>();
    if (schema.contains("minimum") && v < schema["minimum"].get<double>()) {
      return fail(
          fmt::format("{} is below the minimum {}", value.dump(), schema["minimum"].dump()));
    }
    if (schema.contains("maximum") && v > schema["maximum"].get<double>()) {
      return fail(
          fmt::format("{} is above the maximum {}", value.dump(), schema["maximum"].dump()));
    }
    std::string format = schema.value("format", "");
    double lo = -9.3e18, hi = 9.3e18;
    if (format == "int32") lo = -2147483648.0, hi = 2147483647.0;
    if (format == "int16") lo = -32768, hi = 32767;
    if (format == "uint8") lo = 0, hi = 255;
    if (v < lo || v > hi) return fail(fmt::format("{} does not fit {}", value.dump(), format));
  }
  return Ok();
}

}  // namespace vmctl::testing
