#ifndef VMCTL_TESTING_OPENAPI_SPEC_H_
#define VMCTL_TESTING_OPENAPI_SPEC_H_

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "base/result.h"

namespace vmctl::testing {

// An OpenAPI 3 or Swagger 2 document (the Cloud Hypervisor and Firecracker references) loaded
// from YAML, with a validator for the JSON-schema subset those specs use: $ref, type, required,
// properties, additionalProperties, items, enum, minimum/maximum and integer formats.
class OpenApiSpec {
 public:
  static Result<OpenApiSpec> Load(const std::filesystem::path& yaml);

  // The path prefix of every endpoint ("/api/v1" for Cloud Hypervisor, "" for Firecracker).
  const std::string& base_path() const { return base_path_; }

  // The operation object for a concrete request path (templates like /drives/{drive_id} match
  // any segment). kNotFound if the spec does not document it.
  Result<nlohmann::json> Operation(const std::string& method, const std::string& path) const;
  // Schema of the JSON request body; nullopt when the operation takes none.
  Result<std::optional<nlohmann::json>> RequestSchema(const std::string& method,
                                                      const std::string& path) const;

  // Validates value against schema. Strict: properties the schema does not list are errors
  // unless it has additionalProperties, so a misspelt field in a request cannot pass.
  Result<void> Validate(const nlohmann::json& value, const nlohmann::json& schema) const;
  // Validates a request body for method + path.
  Result<void> ValidateRequest(const std::string& method, const std::string& path,
                               const nlohmann::json& body) const;

 private:
  Result<void> ValidateAt(const nlohmann::json& value, const nlohmann::json& schema,
                          const std::string& where) const;
  const nlohmann::json& Resolve(const nlohmann::json& schema) const;

  nlohmann::json doc_;
  std::string base_path_;
};

}  // namespace vmctl::testing

#endif  // VMCTL_TESTING_OPENAPI_SPEC_H_
