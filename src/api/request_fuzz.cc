// libFuzzer target for the API's request parsing: the request target (path and query) and every
// JSON request body. The first byte picks the parser, the rest is its input (docs/fuzzing.md).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/exec_frames.h"
#include "api/request.h"

namespace {

using vmctl::api::DecodeExecInputs;
using vmctl::api::DecodeExecOutputs;
using vmctl::api::ParseExecRequest;
using vmctl::api::ParseImageSource;
using vmctl::api::ParseResizeRequest;
using vmctl::api::ParseShareRequest;
using vmctl::api::ParseTarget;
using vmctl::api::ParseVmRequest;

void CheckTarget(std::string_view input) {
  auto parsed = ParseTarget(input);
  if (!parsed.ok()) return;
  const auto& target = *parsed;
  // Segments come from the path only, and decoding never makes a segment longer.
  if (target.path.size() > input.size()) std::abort();
  for (const auto& segment : target.segments) {
    if (segment.empty() || segment.size() > target.path.size()) std::abort();
  }
  for (const auto& [key, value] : target.query.values) {
    if (key.empty()) std::abort();
    (void)target.query.Flag(key);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0:
      CheckTarget(input);
      break;
    case 1:
      if (auto email = ParseShareRequest(input); email.ok() && email->empty()) std::abort();
      break;
    case 2:
      (void)ParseVmRequest(input);
      break;
    case 3:
      (void)ParseResizeRequest(input);
      break;
    case 4:
      (void)ParseImageSource(input);
      break;
    case 5:
      if (auto exec = ParseExecRequest(input); exec.ok() && exec->argv.empty()) std::abort();
      break;
    case 6:
      // The frames either side sends on an upgraded exec stream.
      (void)DecodeExecInputs(input);
      (void)DecodeExecOutputs(input);
      break;
  }
  return 0;
}
