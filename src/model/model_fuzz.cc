// libFuzzer target for the names and values users choose for their VMs and images: VM and image
// names, bandwidth rates, state names (read back from the store), and the request and resize
// limit checks on arbitrary numbers. The first byte picks the check.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
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
  }
  return 0;
}
