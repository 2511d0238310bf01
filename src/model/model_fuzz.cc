// libFuzzer target for the names and values users choose for their VMs and images: VM and image
// names, bandwidth rates, state names (read back from the store), the request and resize limit
// checks on arbitrary numbers, email addresses (registration, sharing, --allow-email), and the host
// names of the HTTPS front end (Host headers and TLS server names through ParseWebHost, --domain
// through ValidateDomain). The first byte picks the check.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "model/email.h"
#include "model/host_name.h"
#include "model/image.h"
#include "model/vm.h"

namespace {

void CheckVmName(std::string_view name) {
  if (!vmctl::ValidateVmName(name).ok()) return;
  if (name.empty() || name.size() > vmctl::VmLimits::kMaxNameLength) std::abort();
}

void CheckBandwidth(std::string_view text) {
  auto kbit = vmctl::ParseBandwidthKbit(text);
  if (kbit.ok() && *kbit < 0) std::abort();
}

void CheckState(std::string_view name) {
  auto state = vmctl::VmStateFromName(name);
  if (state.ok() && vmctl::VmStateName(*state) != name) std::abort();
}

// Numbers for the limit checks: the input's bytes read as consecutive int64s (missing bytes 0).
int64_t Take(std::string_view* input) {
  int64_t v = 0;
  size_t n = std::min(sizeof(v), input->size());
  std::memcpy(&v, input->data(), n);
  input->remove_prefix(n);
  return v;
}

void CheckRequest(std::string_view input) {
  vmctl::VmRequest request{.name = "fuzz"};
  request.cpus = static_cast<int>(Take(&input));
  request.memory_mib = Take(&input);
  request.root_disk_mib = Take(&input);
  request.data_disk_mib = Take(&input);
  request.bandwidth_kbit = Take(&input);
  (void)vmctl::ValidateVmRequest(request);
  int64_t root = Take(&input), data = Take(&input);
  (void)vmctl::ValidateDiskGrowth(root, data, Take(&input), Take(&input));
}

// A normalized address is accepted again unchanged, and is printable as it is.
void CheckEmail(std::string_view text) {
  auto email = vmctl::NormalizeEmail(text);
  if (!email.ok()) return;
  auto again = vmctl::NormalizeEmail(*email);
  if (!again.ok() || *again != *email) std::abort();
  if (vmctl::EscapeForDisplay(*email) != *email) std::abort();
}

void CheckAllowList(std::string_view text) {
  auto list = vmctl::EmailAllowList::Parse(text);
  if (!list.ok()) return;
  if (auto email = vmctl::NormalizeEmail(text); email.ok()) (void)list->Allows(*email);
}

// Escaping leaves nothing a terminal would act on: no C0 control byte or DEL.
void CheckEscape(std::string_view text) {
  for (unsigned char c : vmctl::EscapeForDisplay(text)) {
    if (c < 0x20 || c == 0x7f) std::abort();
  }
}

// A Host header or TLS server name under DOMAIN: what parses is canonical (parsing its host
// again gives the same), a VM host names a valid VM, and DOMAIN itself is the apex.
void CheckWebHost(std::string_view header) {
  constexpr std::string_view kDomain = "vmctl.localhost";
  auto host = vmctl::ParseWebHost(header, kDomain);
  if (!host.ok()) return;
  auto again = vmctl::ParseWebHost(host->host, kDomain);
  if (!again.ok() || again->host != host->host || again->kind != host->kind ||
      again->vm != host->vm || again->port != host->port) {
    std::abort();
  }
  if (host->host.find_first_of(":/[]@ ") != std::string::npos) std::abort();
  if (host->kind == vmctl::WebHost::Kind::kVm && !vmctl::ValidateVmName(host->vm).ok()) {
    std::abort();
  }
  if ((host->kind == vmctl::WebHost::Kind::kApex) != (host->host == kDomain)) std::abort();
}

void CheckDomain(std::string_view domain) {
  if (!vmctl::ValidateDomain(domain).ok()) return;
  // A valid domain is a Host header that names itself.
  auto host = vmctl::ParseWebHost(domain, domain);
  if (host.ok() && host->kind != vmctl::WebHost::Kind::kApex) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 10) {
    case 0:
      CheckVmName(input);
      break;
    case 1:
      (void)vmctl::ValidateImageName(input);
      break;
    case 2:
      CheckBandwidth(input);
      break;
    case 3:
      CheckState(input);
      break;
    case 4:
      CheckRequest(input);
      break;
    case 5:
      CheckEmail(input);
      break;
    case 6:
      CheckAllowList(input);
      break;
    case 7:
      CheckEscape(input);
      break;
    case 8:
      CheckWebHost(input);
      break;
    case 9:
      CheckDomain(input);
      break;
  }
  return 0;
}
