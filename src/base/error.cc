#include "base/error.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace vmctl {
namespace {

struct CodeInfo {
  ErrorCode code;
  std::string_view name;
  int http_status;
  int exit_code;
};

// Exit codes stay clear of 1 (generic) and of 126-255 (shell and signals), so a script can tell
// "the VM command failed with 3" (exec passes that through) from a vmctl failure only by context;
// exec documents this.
constexpr std::array<CodeInfo, 10> kCodes = {{
    {ErrorCode::kInvalidArgument, "invalid_argument", 400, 2},
    {ErrorCode::kNotFound, "not_found", 404, 3},
    {ErrorCode::kAlreadyExists, "already_exists", 409, 4},
    {ErrorCode::kFailedPrecondition, "failed_precondition", 409, 5},
    {ErrorCode::kResourceExhausted, "resource_exhausted", 429, 6},
    {ErrorCode::kUnavailable, "unavailable", 503, 7},
    {ErrorCode::kDeadlineExceeded, "deadline_exceeded", 504, 8},
    {ErrorCode::kUnimplemented, "unimplemented", 501, 9},
    {ErrorCode::kUnauthenticated, "unauthenticated", 401, 11},
    {ErrorCode::kInternal, "internal", 500, 10},
}};

const CodeInfo& Info(ErrorCode code) {
  for (const auto& info : kCodes) {
    if (info.code == code) return info;
  }
  return kCodes.back();
}

}  // namespace

Error Error::WithContext(std::string_view context) const {
  return Error(code_, std::string(context) + ": " + message_);
}

int Error::HttpStatus() const { return Info(code_).http_status; }
int Error::ExitCode() const { return Info(code_).exit_code; }

std::string_view ErrorCodeName(ErrorCode code) { return Info(code).name; }

ErrorCode ErrorCodeFromName(std::string_view name) {
  for (const auto& info : kCodes) {
    if (info.name == name) return info.code;
  }
  return ErrorCode::kInternal;
}

Error ErrnoError(std::string_view what, int errno_value) {
  ErrorCode code = ErrorCode::kInternal;
  switch (errno_value) {
    case ENOENT:
      code = ErrorCode::kNotFound;
      break;
    case ETIMEDOUT:
      code = ErrorCode::kDeadlineExceeded;
      break;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
      code = ErrorCode::kUnavailable;
      break;
    default:
      break;
  }
  return Error(code, std::string(what) + ": " + std::strerror(errno_value));
}

}  // namespace vmctl
