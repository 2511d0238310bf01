#ifndef VMCTL_API_REQUEST_H_
#define VMCTL_API_REQUEST_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "agent/client.h"
#include "base/result.h"
#include "model/image.h"
#include "model/vm.h"

namespace vmctl::api {

// Pure parsing of API requests (no I/O), shared by the server and its tests.

struct Query {
  std::map<std::string, std::string> values;
  // "1", "true", "yes" or a bare key count as set.
  bool Flag(const std::string& key) const;
};

struct Target {
  std::string path;
  std::vector<std::string> segments;  // "/v1/vms/x" -> {"v1","vms","x"}; %XX decoded
  Query query;
};

// kInvalidArgument for malformed %-escapes and for segments or query parts that are not UTF-8
// text without control characters.
Result<Target> ParseTarget(std::string_view target);

// Body of POST /v1/vms/NAME/shares: {"email": str}. Returns the email.
Result<std::string> ParseShareRequest(std::string_view body);

// Body of POST /v1/vms: {"name": str, "image"?: str, "cpus"?: int, "memory_mib"?: int,
// "root_disk_mib"?: int, "disk_mib"?: int (data disk, 0 for none), "bandwidth"?: str}.
// kInvalidArgument for malformed JSON, wrong types and unknown fields.
Result<VmRequest> ParseVmRequest(std::string_view body);

// Body of POST /v1/vms/NAME/resize: {"root_disk_mib"?: int, "disk_mib"?: int}.
struct ResizeRequest {
  int64_t root_disk_mib = 0;
  int64_t data_disk_mib = 0;
};
Result<ResizeRequest> ParseResizeRequest(std::string_view body);

// Body of POST /v1/images/NAME/build (empty: the default Debian recipe):
// {"debian"?: {"suite"?: str, "packages"?: [str]}} or {"oci": str (path)} or
// {"dockerfile": str (path), "context"?: str}; exactly one source.
Result<std::optional<ImageSource>> ParseImageSource(std::string_view body);

// Body of POST /v1/vms/NAME/exec: {"argv": [str...], "env"?: {str: str}, "cwd"?: str,
// "tty"?: bool, "rows"?: int, "cols"?: int}.
Result<agent::ExecRequest> ParseExecRequest(std::string_view body);

}  // namespace vmctl::api

#endif  // VMCTL_API_REQUEST_H_
