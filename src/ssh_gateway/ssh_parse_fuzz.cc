// libFuzzer target for what SSH clients choose before and after authenticating: the command line
// (`ssh host CMD` and lobby lines), the username that routes to a VM, and ProxyJump destinations;
// plus the gateway's --domain and address-range options, and the text checks and terminal escaping
// everything shown to a client goes through. The first byte picks the parser.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model/host_name.h"
#include "model/vm.h"
#include "ssh_gateway/command_line.h"
#include "ssh_gateway/routing.h"
#include "ssh_gateway/text.h"

namespace {

namespace gw = vmctl::ssh_gateway;

void CheckCommandLine(std::string_view line) {
  auto words = gw::SplitCommandLine(line);
  if (!words.ok()) return;
  if (line.size() > gw::kMaxCommandLine) std::abort();
  size_t total = 0;
  for (const auto& w : *words) total += w.size();
  if (total > line.size()) std::abort();  // quoting only removes characters
}

void CheckRoute(std::string_view username) {
  auto route = gw::RouteForUsername(username);
  if (route.vm.empty()) {
    if (!route.guest_user.empty()) std::abort();
    return;
  }
  if (!vmctl::ValidateVmName(route.vm).ok()) std::abort();
}

void CheckDestination(std::string_view host) {
  auto vm = vmctl::VmForDestination(host);
  if (!vm.empty() && !vmctl::ValidateVmName(vm).ok()) std::abort();
}

void CheckAddressRange(std::string_view text) {
  auto range = gw::ParseAddressRange(text);
  if (range.ok() && (range->empty() || range->size() > 4096)) std::abort();
}

// Text that passes the check is valid UTF-8 throughout, and escaping leaves no byte a terminal
// acts on (C0 controls other than newline and tab, DEL).
void CheckText(std::string_view bytes) {
  if (gw::Utf8ValidPrefix(bytes) > bytes.size()) std::abort();
  if (gw::ValidateText(bytes, "fuzz", true).ok() && gw::Utf8ValidPrefix(bytes) != bytes.size()) {
    std::abort();
  }
  for (unsigned char c : gw::EscapeForTerminal(bytes)) {
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      CheckCommandLine(input);
      break;
    case 1:
      CheckRoute(input);
      break;
    case 2:
      CheckDestination(input);
      break;
    case 3:
      (void)vmctl::ValidateDomain(input);
      break;
    case 4:
      CheckAddressRange(input);
      break;
    case 5:
      CheckText(input);
      break;
  }
  return 0;
}
