#ifndef VMCTL_TESTING_OPENAPI_SPEC_H_
#define VMCTL_TESTING_OPENAPI_SPEC_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace vmctl::testing {

// An OpenAPI 3 or Swagger 2 document (the Cloud Hypervisor and Firecracker references) loaded
// from YAML with yaml-cpp, and a validator for the JSON-schema subset those specs use: $ref, type,
// required, properties, additionalProperties, items, enum, minimum, maximum, integer formats
// (int8 ... uint64, as exact ranges) and string formats (Firecracker writes regular expressions
// there). The validator fails closed: a schema keyword outside that subset is an error, never
// silently skipped.
class OpenApiSpec {
 public:
  static Result<OpenApiSpec> Load(const std::filesystem::path& yaml);

  // The path prefix of every endpoint: "/api/v1" for Cloud Hypervisor, "" for Firecracker.
  const std::string& base_path() const { return base_path_; }

  struct Endpoint {
    std::string method;  // upper case
    std::string path;    // template with the base path, e.g. "/drives/{drive_id}"
  };
  // Every documented method + path, in document order of paths.
  std::vector<Endpoint> Endpoints() const;

  // The operation object for a concrete request path (templates such as /drives/{drive_id} match
  // one path segment). kNotFound if the spec does not document it.
  Result<nlohmann::json> Operation(const std::string& method, const std::string& path) const;
  // Schema of the JSON request body; nullopt when the operation takes none.
  Result<std::optional<nlohmann::json>> RequestSchema(const std::string& method,
                                                      const std::string& path) const;
  // Schema of the JSON body documented for one response status ("default" stands for any status
  // not listed); nullopt when that response has no body.
  Result<std::optional<nlohmann::json>> ResponseSchema(const std::string& method,
                                                       const std::string& path,
                                                       unsigned status) const;

  // Validates value against schema. Strict: a property the schema does not list is an error
  // unless it allows additionalProperties, so a misspelt field in a request cannot pass.
  Result<void> Validate(const nlohmann::json& value, const nlohmann::json& schema) const;
  // Validates a request: its body against the request schema (a null body where one is required
  // is an error, as is a body where none is documented), and path parameters against body fields
  // of the same name (Firecracker rejects /drives/a with {"drive_id": "b"}).
  Result<void> ValidateRequest(const std::string& method, const std::string& path,
                               const nlohmann::json& body) const;
  Result<void> ValidateResponse(const std::string& method, const std::string& path, unsigned status,
                                const nlohmann::json& body) const;

  // A minimal value valid against schema: its example, else its default, else the first enum
  // value, else required properties only, empty arrays, "fake", the minimum (or 0), false.
  nlohmann::json Example(const nlohmann::json& schema) const;

 private:
  struct Match {
    std::string path_template;  // without the base path
    nlohmann::json operation;
  };
  Result<Match> Find(const std::string& method, const std::string& path) const;
  Result<void> ValidateAt(const nlohmann::json& value, const nlohmann::json& schema,
                          const std::string& where) const;
  // Follows $ref; nullptr when a reference leads nowhere.
  const nlohmann::json* Resolve(const nlohmann::json& schema) const;

  nlohmann::json doc_;
  std::string base_path_;
};

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_OPENAPI_SPEC_H_
