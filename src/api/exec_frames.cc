#include "api/exec_frames.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>

#include "base/frame.h"

namespace vmctl::api {
namespace {

using nlohmann::json;

// An integer field of a frame within [lo, hi].
Result<int> Integer(const json& frame, std::string_view type, const char* key, int64_t lo,
                    int64_t hi) {
  auto it = frame.find(key);
  if (it == frame.end() || !it->is_number_integer()) {
    return InvalidArgument(fmt::format("exec stream '{}' frame needs an integer '{}'", type, key));
  }
  bool in_range = it->is_number_unsigned()
                      ? it->get<uint64_t>() >= static_cast<uint64_t>(std::max<int64_t>(lo, 0)) &&
                            it->get<uint64_t>() <= static_cast<uint64_t>(hi)
                      : it->get<int64_t>() >= lo && it->get<int64_t>() <= hi;
  if (!in_range) {
    return InvalidArgument(
        fmt::format("exec stream '{}' frame: '{}' must be between {} and {} (got {})", type, key,
                    lo, hi, it->dump()));
  }
  return static_cast<int>(it->get<int64_t>());
}

Result<std::string> Data(const json& frame, std::string_view type) {
  auto data = frame.find("data");
  if (data == frame.end() || !data->is_string()) {
    return InvalidArgument(fmt::format("exec stream '{}' frame needs a string 'data'", type));
  }
  auto decoded = Base64Decode(data->get_ref<const std::string&>());
  if (!decoded.ok()) {
    return InvalidArgument(fmt::format("exec stream '{}' frame: 'data' is not base64", type));
  }
  return decoded;
}

Result<std::string> Type(const json& frame) {
  auto type = frame.find("type");
  if (!frame.is_object() || type == frame.end() || !type->is_string()) {
    return InvalidArgument("exec stream frame needs a string 'type'");
  }
  return type->get<std::string>();
}

template <typename T, typename Parse>
Result<std::vector<T>> DecodeAll(std::string_view bytes, Parse parse) {
  FrameDecoder decoder;
  decoder.Feed(bytes);
  std::vector<T> out;
  for (;;) {
    VMCTL_ASSIGN_OR_RETURN(auto frame, decoder.Next());
    if (!frame) return out;
    VMCTL_ASSIGN_OR_RETURN(T value, parse(*frame));
    out.push_back(std::move(value));
  }
}

}  // namespace

json EncodeExecInput(const ExecInput& input) {
  switch (input.kind) {
    case ExecInput::Kind::kStdin:
      return {{"type", "stdin"}, {"data", Base64Encode(input.data)}};
    case ExecInput::Kind::kStdinClose:
      return {{"type", "stdin_close"}};
    case ExecInput::Kind::kResize:
      return {{"type", "resize"}, {"rows", input.rows}, {"cols", input.cols}};
    case ExecInput::Kind::kSignal:
      return {{"type", "signal"}, {"signal", input.signal}};
  }
  return {};
}

Result<ExecInput> ParseExecInput(const json& frame) {
  VMCTL_ASSIGN_OR_RETURN(std::string t, Type(frame));
  ExecInput input;
  if (t == "stdin") {
    input.kind = ExecInput::Kind::kStdin;
    VMCTL_ASSIGN_OR_RETURN(input.data, Data(frame, t));
  } else if (t == "stdin_close") {
    input.kind = ExecInput::Kind::kStdinClose;
  } else if (t == "resize") {
    input.kind = ExecInput::Kind::kResize;
    // A terminal may report 0 x 0; anything a struct winsize holds is passed on.
    VMCTL_ASSIGN_OR_RETURN(input.rows, Integer(frame, t, "rows", 0, 65535));
    VMCTL_ASSIGN_OR_RETURN(input.cols, Integer(frame, t, "cols", 0, 65535));
  } else if (t == "signal") {
    input.kind = ExecInput::Kind::kSignal;
    VMCTL_ASSIGN_OR_RETURN(input.signal, Integer(frame, t, "signal", 1, 64));
  } else {
    return InvalidArgument(fmt::format("unknown exec stream frame type '{}'", t));
  }
  return input;
}

Result<std::vector<ExecInput>> DecodeExecInputs(std::string_view bytes) {
  return DecodeAll<ExecInput>(bytes, ParseExecInput);
}

json EncodeExecOutput(const ExecOutput& output) {
  switch (output.kind) {
    case ExecOutput::Kind::kStdout:
    case ExecOutput::Kind::kStderr:
      return {{"type", output.kind == ExecOutput::Kind::kStdout ? "stdout" : "stderr"},
              {"data", Base64Encode(output.data)}};
    case ExecOutput::Kind::kExit:
      return {{"type", "exit"}, {"code", output.exit_code}};
    case ExecOutput::Kind::kError:
      return {{"type", "error"}, {"code", ErrorCodeName(output.code)}, {"message", output.message}};
  }
  return {};
}

ExecOutput ExecError(const Error& error) {
  ExecOutput out;
  out.kind = ExecOutput::Kind::kError;
  out.code = error.code();
  out.message = error.message();
  return out;
}

Result<ExecOutput> ParseExecOutput(const json& frame) {
  VMCTL_ASSIGN_OR_RETURN(std::string t, Type(frame));
  ExecOutput output;
  if (t == "stdout" || t == "stderr") {
    output.kind = t == "stdout" ? ExecOutput::Kind::kStdout : ExecOutput::Kind::kStderr;
    VMCTL_ASSIGN_OR_RETURN(output.data, Data(frame, t));
  } else if (t == "exit") {
    output.kind = ExecOutput::Kind::kExit;
    VMCTL_ASSIGN_OR_RETURN(output.exit_code, Integer(frame, t, "code", INT32_MIN, INT32_MAX));
  } else if (t == "error") {
    output.kind = ExecOutput::Kind::kError;
    auto code = frame.find("code");
    auto message = frame.find("message");
    if (code == frame.end() || !code->is_string() || message == frame.end() ||
        !message->is_string()) {
      return InvalidArgument("exec stream 'error' frame needs a string 'code' and 'message'");
    }
    output.code = ErrorCodeFromName(code->get_ref<const std::string&>());
    output.message = message->get<std::string>();
  } else {
    return InvalidArgument(fmt::format("unknown exec stream frame type '{}'", t));
  }
  return output;
}

Result<std::vector<ExecOutput>> DecodeExecOutputs(std::string_view bytes) {
  return DecodeAll<ExecOutput>(bytes, ParseExecOutput);
}

}  // namespace vmctl::api
