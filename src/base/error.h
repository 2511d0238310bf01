#ifndef VMCTL_BASE_ERROR_H_
#define VMCTL_BASE_ERROR_H_

#include <string>
#include <string_view>

namespace vmctl {

// The one error vocabulary of the project. Each code maps once (error.cc) to an HTTP status for
// the API and an exit code for the CLI, so every front end reports a failure the same way.
enum class ErrorCode {
  kInvalidArgument,     // the caller's input is wrong; retrying it unchanged fails again
  kNotFound,            // the named VM, image, user... does not exist
  kAlreadyExists,       // a unique name is taken
  kFailedPrecondition,  // legal input, wrong state (e.g. exec on a stopped VM)
  kResourceExhausted,   // quota or pool exhausted
  kUnavailable,         // a dependency (VMM, agent, daemon) cannot be reached right now
  kDeadlineExceeded,    // an operation timed out
  kUnimplemented,       // the backend lacks the capability
  kUnauthenticated,     // no valid credentials (session, token, login link) came with the request
  kInternal,            // a bug or an unexpected host failure
};

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "context: message", keeping the code.
  Error WithContext(std::string_view context) const;

  int HttpStatus() const;
  int ExitCode() const;

 private:
  ErrorCode code_;
  std::string message_;
};

std::string_view ErrorCodeName(ErrorCode code);
// Inverse of ErrorCodeName; unknown names map to kInternal.
ErrorCode ErrorCodeFromName(std::string_view name);

inline Error InvalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Error NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Error AlreadyExists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
inline Error FailedPrecondition(std::string m) {
  return {ErrorCode::kFailedPrecondition, std::move(m)};
}
inline Error ResourceExhausted(std::string m) {
  return {ErrorCode::kResourceExhausted, std::move(m)};
}
inline Error Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Error DeadlineExceeded(std::string m) {
  return {ErrorCode::kDeadlineExceeded, std::move(m)};
}
inline Error Unimplemented(std::string m) { return {ErrorCode::kUnimplemented, std::move(m)}; }
inline Error Unauthenticated(std::string m) { return {ErrorCode::kUnauthenticated, std::move(m)}; }
inline Error Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

// An error from a failed system call: "what: strerror(errno_value)", code kInternal unless the
// errno clearly means something else (ENOENT -> kNotFound, ETIMEDOUT -> kDeadlineExceeded,
// ECONNREFUSED/EPIPE/ECONNRESET -> kUnavailable).
Error ErrnoError(std::string_view what, int errno_value);

}  // namespace vmctl

#endif  // VMCTL_BASE_ERROR_H_
