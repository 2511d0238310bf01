#ifndef VMCTL_STORAGE_IDS_H_
#define VMCTL_STORAGE_IDS_H_

#include <fmt/format.h>

#include <string_view>

#include "base/result.h"

namespace vmctl::storage {

// VM and image build ids become file and volume names: only lowercase hex is accepted.

inline Result<void> CheckVmId(std::string_view id) {
  if (id.size() != 12 || id.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return InvalidArgument(fmt::format("'{}' is not a VM id (12 lowercase hex digits)", id));
  }
  return Ok();
}

inline Result<void> CheckBaseId(std::string_view id) {
  if (id.empty() || id.size() > 64 ||
      id.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return InvalidArgument(fmt::format("'{}' is not an image build id", id));
  }
  return Ok();
}

}  // namespace vmctl::storage

#endif  // VMCTL_STORAGE_IDS_H_
