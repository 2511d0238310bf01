#ifndef VMCTL_API_EXEC_FRAMES_H_
#define VMCTL_API_EXEC_FRAMES_H_

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/result.h"

namespace vmctl::api {

// The exec stream (docs/api.md, "exec"): after POST /v1/vms/NAME/exec is answered with
// 101 Switching Protocols, the connection carries length-prefixed JSON frames (base/frame.h) both
// ways. Pure encoding and decoding, shared by the server and the CLI; no I/O.

inline constexpr std::string_view kExecUpgrade = "vmctl-exec";

// One frame from the client to the daemon.
struct ExecInput {
  enum class Kind { kStdin, kStdinClose, kResize, kSignal } kind = Kind::kStdin;
  std::string data;        // kStdin, decoded
  int rows = 0, cols = 0;  // kResize
  int signal = 0;          // kSignal
};
nlohmann::json EncodeExecInput(const ExecInput& input);
// kInvalidArgument naming what is wrong for a frame of the wrong shape; the stream then ends.
Result<ExecInput> ParseExecInput(const nlohmann::json& frame);
// Every frame in a byte string of an exec stream, stopping at the first bad one. For fuzzing.
Result<std::vector<ExecInput>> DecodeExecInputs(std::string_view bytes);

// One frame from the daemon to the client: output, then exactly one of exit or error last.
struct ExecOutput {
  enum class Kind { kStdout, kStderr, kExit, kError } kind = Kind::kStdout;
  std::string data;                       // kStdout, kStderr; decoded
  int exit_code = 0;                      // kExit
  ErrorCode code = ErrorCode::kInternal;  // kError
  std::string message;                    // kError
};
nlohmann::json EncodeExecOutput(const ExecOutput& output);
ExecOutput ExecError(const Error& error);
// kInvalidArgument for a frame of the wrong shape.
Result<ExecOutput> ParseExecOutput(const nlohmann::json& frame);
// Every frame in a byte string, stopping at the first bad one. For fuzzing.
Result<std::vector<ExecOutput>> DecodeExecOutputs(std::string_view bytes);

}  // namespace vmctl::api

#endif  // VMCTL_API_EXEC_FRAMES_H_
