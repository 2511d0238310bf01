// libFuzzer target for the sharing rules that read outside input: custom domain names, `share rm`
// targets, the web URL and images' exposed ports (one per line). The first byte picks which.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "controller/sharing_rules.h"

namespace {

namespace c = vmctl::controller;

// An accepted domain is already normal: normalizing it again changes nothing.
void CheckDomain(std::string_view input) {
  auto domain = c::NormalizeCustomDomain(input, "vmctl.localhost");
  if (!domain.ok()) return;
  auto again = c::NormalizeCustomDomain(*domain, "vmctl.localhost");
  if (!again.ok() || *again != *domain || domain->size() > 253) std::abort();
}

void CheckPorts(std::string_view input) {
  std::vector<std::string> entries;
  for (size_t start = 0; start <= input.size();) {
    size_t end = std::min(input.find('\n', start), input.size());
    entries.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  uint16_t port = c::DefaultWebPort(entries);
  if (port != 80 && port < 1024) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckDomain(input);
      break;
    case 1:
      if (auto t = c::ParseShareTarget(input); t.ok() && t->value.empty()) std::abort();
      break;
    case 2:
      if (auto o = c::ParseWebOrigin(input); o.ok() && o->domain.empty()) std::abort();
      break;
    case 3:
      CheckPorts(input);
      break;
  }
  return 0;
}
