#include "testing/openapi/spec.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <map>
#include <regex>
#include <set>

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
      const std::string& s = node.Scalar();
      // yaml-cpp tags quoted scalars "!": those are strings whatever they spell.
      if (node.Tag() == "!") return s;
      if (s == "true") return true;
      if (s == "false") return false;
      if (s == "null" || s == "~") return nullptr;
      try {
        size_t used = 0;
        long long i = std::stoll(s, &used);
        if (used == s.size()) return i;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (const std::exception&) {
        // Not a number: a plain string.
      }
      return s;
    }
    default:
      return nullptr;
  }
}

// Matches a concrete path against a template, collecting {parameter} segments.
bool MatchPath(const std::string& pattern, const std::string& path,
               std::map<std::string, std::string>* params) {
  size_t i = 0, j = 0;
  while (i < pattern.size() && j < path.size()) {
    if (pattern[i] == '{') {
      size_t close = pattern.find('}', i);
      if (close == std::string::npos) return false;
      size_t end = path.find('/', j);
      if (end == std::string::npos) end = path.size();
      if (end == j) return false;
      (*params)[pattern.substr(i + 1, close - i - 1)] = path.substr(j, end - j);
      i = close + 1;
      j = end;
      continue;
    }
    if (pattern[i] != path[j]) return false;
    ++i;
    ++j;
  }
  return i == pattern.size() && j == path.size();
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const std::set<std::string>& Methods() {
  static const std::set<std::string> methods = {"get", "put", "post", "patch", "delete"};
  return methods;
}

// Everything the validator understands. Annotations (description, default, example, ...) do not
// constrain a value; any other keyword would, so meeting one is an error.
const std::set<std::string>& KnownKeywords() {
  static const std::set<std::string> known = {
      "$ref",     "type",       "format",  "properties", "required", "additionalProperties",
      "items",    "enum",       "minimum", "maximum",    "default",  "description",
      "readOnly", "deprecated", "example", "title"};
  return known;
}

struct IntRange {
  int64_t lo;
  uint64_t hi;
};

const std::map<std::string, IntRange>& IntFormats() {
  static const std::map<std::string, IntRange> formats = {
      {"int8", {INT8_MIN, INT8_MAX}},    {"int16", {INT16_MIN, INT16_MAX}},
      {"int32", {INT32_MIN, INT32_MAX}}, {"int64", {INT64_MIN, static_cast<uint64_t>(INT64_MAX)}},
      {"uint8", {0, UINT8_MAX}},         {"uint16", {0, UINT16_MAX}},
      {"uint32", {0, UINT32_MAX}},       {"uint64", {0, UINT64_MAX}},
  };
  return formats;
}

bool InRange(const json& value, const IntRange& range) {
  if (value.is_number_unsigned()) return value.get<uint64_t>() <= range.hi;
  int64_t v = value.get<int64_t>();
  return v >= range.lo && (v < 0 || static_cast<uint64_t>(v) <= range.hi);
}

// OpenAPI 3 requestBody.required, Swagger 2 "in: body" parameter's required.
bool BodyRequired(const json& op) {
  if (op.contains("requestBody")) return op["requestBody"].value("required", false);
  for (const auto& p : op.value("parameters", json::array())) {
    if (p.value("in", "") == "body") return p.value("required", false);
  }
  return false;
}

}  // namespace

Result<OpenApiSpec> OpenApiSpec::Load(const std::filesystem::path& yaml) {
  OpenApiSpec spec;
  try {
    spec.doc_ = ToJson(YAML::LoadFile(yaml.string()));
  } catch (const std::exception& e) {
    return InvalidArgument(fmt::format("cannot load {}: {}", yaml.string(), e.what()));
  }
  if (!spec.doc_.is_object() || !spec.doc_.contains("paths")) {
    return InvalidArgument(yaml.string() + " has no paths: not an OpenAPI document");
  }
  if (spec.doc_.contains("servers")) {  // OpenAPI 3: the first server's URL path
    std::string url = spec.doc_["servers"][0].value("url", "");
    auto scheme = url.find("://");
    auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (slash != std::string::npos) spec.base_path_ = url.substr(slash);
  } else if (spec.doc_.contains("basePath") && spec.doc_["basePath"] != "/") {  // Swagger 2
    spec.base_path_ = spec.doc_["basePath"].get<std::string>();
  }
  return spec;
}

std::vector<OpenApiSpec::Endpoint> OpenApiSpec::Endpoints() const {
  std::vector<Endpoint> out;
  for (const auto& [path, ops] : doc_["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      if (Methods().count(method)) out.push_back({Upper(method), base_path_ + path});
    }
  }
  return out;
}

Result<OpenApiSpec::Match> OpenApiSpec::Find(const std::string& method,
                                             const std::string& full_path) const {
  if (full_path.rfind(base_path_, 0) != 0) {
    return NotFound(fmt::format("{} {} is outside {}", method, full_path, base_path_));
  }
  const std::string path = full_path.substr(base_path_.size());
  const std::string m = Lower(method);
  for (const auto& [pattern, ops] : doc_["paths"].items()) {
    std::map<std::string, std::string> params;
    if (MatchPath(pattern, path, &params) && ops.contains(m)) return Match{pattern, ops[m]};
  }
  return NotFound(fmt::format("{} {} is not in the spec", method, full_path));
}

Result<json> OpenApiSpec::Operation(const std::string& method, const std::string& path) const {
  VMCTL_ASSIGN_OR_RETURN(Match match, Find(method, path));
  return match.operation;
}

Result<std::optional<json>> OpenApiSpec::RequestSchema(const std::string& method,
                                                       const std::string& path) const {
  VMCTL_ASSIGN_OR_RETURN(json op, Operation(method, path));
  if (op.contains("requestBody")) {  // OpenAPI 3
    const json& content = op["requestBody"].value("content", json::object());
    if (!content.contains("application/json")) {
      return Internal(fmt::format("{} {}: request body is not JSON", method, path));
    }
    return std::optional<json>(content["application/json"]["schema"]);
  }
  for (const auto& p : op.value("parameters", json::array())) {  // Swagger 2
    if (p.value("in", "") == "body") return std::optional<json>(p["schema"]);
  }
  return std::optional<json>();
}

Result<std::optional<json>> OpenApiSpec::ResponseSchema(const std::string& method,
                                                        const std::string& path,
                                                        unsigned status) const {
  VMCTL_ASSIGN_OR_RETURN(json op, Operation(method, path));
  const json& responses = op.value("responses", json::object());
  std::string code = std::to_string(status);
  if (!responses.contains(code)) code = "default";
  if (!responses.contains(code)) {
    return NotFound(fmt::format("{} {} documents no response {}", method, path, status));
  }
  const json& response = responses[code];
  if (response.contains("content")) {  // OpenAPI 3
    if (!response["content"].contains("application/json")) {
      return Internal(fmt::format("{} {} {}: response body is not JSON", method, path, status));
    }
    return std::optional<json>(response["content"]["application/json"]["schema"]);
  }
  if (response.contains("schema")) return std::optional<json>(response["schema"]);  // Swagger 2
  return std::optional<json>();
}

const json* OpenApiSpec::Resolve(const json& schema) const {
  const json* s = &schema;
  // A $ref replaces its schema entirely (siblings such as description are annotations).
  for (int hops = 0; s->is_object() && s->contains("$ref"); ++hops) {
    const json& ref = (*s)["$ref"];
    if (hops > 32 || !ref.is_string() || ref.get<std::string>().rfind("#/", 0) != 0) {
      return nullptr;
    }
    const std::string path = ref.get<std::string>();
    const json* node = &doc_;
    for (size_t start = 2; start <= path.size();) {
      size_t end = std::min(path.find('/', start), path.size());
      const std::string part = path.substr(start, end - start);
      if (!node->is_object() || !node->contains(part)) return nullptr;
      node = &(*node)[part];
      start = end + 1;
    }
    s = node;
  }
  return s;
}

Result<void> OpenApiSpec::Validate(const json& value, const json& schema) const {
  return ValidateAt(value, schema, "body");
}

Result<void> OpenApiSpec::ValidateRequest(const std::string& method, const std::string& path,
                                          const json& body) const {
  VMCTL_ASSIGN_OR_RETURN(Match match, Find(method, path));
  VMCTL_ASSIGN_OR_RETURN(auto schema, RequestSchema(method, path));
  if (!schema) {
    if (body.is_null()) return Ok();
    return InvalidArgument(fmt::format("{} {} takes no body", method, path));
  }
  if (body.is_null()) {
    if (!BodyRequired(match.operation)) return Ok();
    return InvalidArgument(fmt::format("{} {} requires a body", method, path));
  }
  VMCTL_TRY(Validate(body, *schema));
  std::map<std::string, std::string> params;
  MatchPath(match.path_template, path.substr(base_path_.size()), &params);
  for (const auto& [name, value] : params) {
    if (body.is_object() && body.contains(name) && body[name] != value) {
      return InvalidArgument(
          fmt::format("body.{} is {} but the path says \"{}\"", name, body[name].dump(), value));
    }
  }
  return Ok();
}

Result<void> OpenApiSpec::ValidateResponse(const std::string& method, const std::string& path,
                                           unsigned status, const json& body) const {
  VMCTL_ASSIGN_OR_RETURN(auto schema, ResponseSchema(method, path, status));
  if (!schema) {
    if (body.is_null()) return Ok();
    return InvalidArgument(fmt::format("{} {} {} has no body", method, path, status));
  }
  return ValidateAt(body, *schema, "answer");
}

Result<void> OpenApiSpec::ValidateAt(const json& value, const json& raw_schema,
                                     const std::string& where) const {
  const json* resolved = Resolve(raw_schema);
  if (!resolved) {
    return Internal(fmt::format("{}: cannot resolve {}", where, raw_schema.value("$ref", "")));
  }
  const json& schema = *resolved;
  if (!schema.is_object()) return Internal(fmt::format("{}: schema is not an object", where));
  for (const auto& [keyword, unused] : schema.items()) {
    if (!KnownKeywords().count(keyword)) {
      return Internal(
          fmt::format("{}: the validator does not understand schema keyword '{}'", where, keyword));
    }
  }
  auto fail = [&](const std::string& why) {
    return InvalidArgument(fmt::format("{}: {}", where, why));
  };

  if (schema.contains("enum")) {
    const json& allowed = schema["enum"];
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
      return fail(fmt::format("{} is not one of {}", value.dump(), allowed.dump()));
    }
  }

  const std::string type = schema.value("type", schema.contains("properties") ? "object" : "");
  if (type == "object") {
    if (!value.is_object()) return fail("expected an object, got " + value.dump());
    for (const auto& req : schema.value("required", json::array())) {
      if (!value.contains(req.get<std::string>())) {
        return fail(fmt::format("missing required '{}'", req.get<std::string>()));
      }
    }
    const json& props = schema.contains("properties") ? schema["properties"] : json::object();
    const json extra = schema.value("additionalProperties", json(false));
    for (const auto& [key, v] : value.items()) {
      if (props.contains(key)) {
        VMCTL_TRY(ValidateAt(v, props[key], where + "." + key));
      } else if (extra.is_object()) {
        VMCTL_TRY(ValidateAt(v, extra, where + "." + key));
      } else if (extra != true) {
        return fail(fmt::format("unknown property '{}'", key));
      }
    }
  } else if (type == "array") {
    if (!value.is_array()) return fail("expected an array, got " + value.dump());
    if (schema.contains("items")) {
      for (size_t i = 0; i < value.size(); ++i) {
        VMCTL_TRY(ValidateAt(value[i], schema["items"], fmt::format("{}[{}]", where, i)));
      }
    }
  } else if (type == "string") {
    if (!value.is_string()) return fail("expected a string, got " + value.dump());
    if (schema.contains("format")) {
      // The only string format in these specs is a regular expression (Firecracker's MMDS
      // address); a format that does not compile as one is not understood.
      try {
        std::regex pattern(schema["format"].get<std::string>());
        if (!std::regex_match(value.get<std::string>(), pattern)) {
          return fail(fmt::format("{} does not match {}", value.dump(), schema["format"].dump()));
        }
      } catch (const std::regex_error&) {
        return Internal(
            fmt::format("{}: string format {} is not understood", where, schema["format"].dump()));
      }
    }
  } else if (type == "boolean") {
    if (!value.is_boolean()) return fail("expected a boolean, got " + value.dump());
  } else if (type == "integer" || type == "number") {
    if (type == "integer" ? !value.is_number_integer() : !value.is_number()) {
      return fail(fmt::format("expected {}, got {}", type == "integer" ? "an integer" : "a number",
                              value.dump()));
    }
    if (schema.contains("minimum") && value.get<double>() < schema["minimum"].get<double>()) {
      return fail(
          fmt::format("{} is below the minimum {}", value.dump(), schema["minimum"].dump()));
    }
    if (schema.contains("maximum") && value.get<double>() > schema["maximum"].get<double>()) {
      return fail(
          fmt::format("{} is above the maximum {}", value.dump(), schema["maximum"].dump()));
    }
    if (type == "integer" && schema.contains("format")) {
      const std::string format = schema["format"].get<std::string>();
      auto range = IntFormats().find(format);
      if (range == IntFormats().end()) {
        return Internal(fmt::format("{}: integer format '{}' is not understood", where, format));
      }
      if (!InRange(value, range->second)) {
        return fail(fmt::format("{} does not fit {}", value.dump(), format));
      }
    }
  } else if (!type.empty()) {
    return Internal(fmt::format("{}: type '{}' is not understood", where, type));
  }
  return Ok();
}

json OpenApiSpec::Example(const json& raw_schema) const {
  const json* resolved = Resolve(raw_schema);
  if (!resolved) return nullptr;
  const json& schema = *resolved;
  if (schema.contains("example")) return schema["example"];
  if (schema.contains("default")) return schema["default"];
  if (schema.contains("enum") && !schema["enum"].empty()) return schema["enum"][0];
  const std::string type = schema.value("type", schema.contains("properties") ? "object" : "");
  if (type == "object") {
    json out = json::object();
    for (const auto& req : schema.value("required", json::array())) {
      const std::string name = req.get<std::string>();
      const json& props = schema.value("properties", json::object());
      out[name] = props.contains(name) ? Example(props[name]) : json::object();
    }
    return out;
  }
  if (type == "array") return json::array();
  if (type == "string") return "fake";
  if (type == "boolean") return false;
  if (type == "integer") return schema.contains("minimum") ? schema["minimum"] : json(0);
  if (type == "number") return schema.contains("minimum") ? schema["minimum"] : json(0.0);
  return json::object();
}

}  // namespace vmctl::testing
