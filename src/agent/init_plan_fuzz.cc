// libFuzzer target for what the guest agent parses besides frames (those are frame_fuzz's): the
// init plan the image builder derived from an image's config, and user specs resolved against
// the image's own /etc/passwd and /etc/group, which whoever built the image controls.
// First byte: 0 parses the rest as an init plan; 1 splits it at NULs into spec, passwd, group.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/init_plan.h"

namespace {

using vmctl::agent::InitPlan;

// A plan that parsed serializes to one that parses the same.
void CheckPlan(std::string_view input) {
  auto plan = vmctl::agent::ParseInitPlan(input);
  if (!plan.ok()) return;
  auto again = vmctl::agent::ParseInitPlan(vmctl::agent::ToJson(*plan).dump());
  if (!again.ok() || vmctl::agent::ToJson(*again) != vmctl::agent::ToJson(*plan)) std::abort();
}

std::string_view NextPart(std::string_view* input) {
  auto nul = input->find('\0');
  std::string_view part = input->substr(0, nul);
  input->remove_prefix(nul == std::string_view::npos ? input->size() : nul + 1);
  return part;
}

void CheckUser(std::string_view input) {
  std::string_view spec = NextPart(&input);
  std::string_view passwd = NextPart(&input);
  auto user = vmctl::agent::ResolveUser(spec, passwd, input);
  if (user.ok() && user->home.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    CheckPlan(input);
  } else {
    CheckUser(input);
  }
  return 0;
}
