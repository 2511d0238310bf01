#include "agent/guest/virtio_port.h"

#include "base/io.h"

namespace vmctl::agent::guest {

std::optional<std::filesystem::path> FindVirtioPort(const std::filesystem::path& dev_dir,
                                                    const std::filesystem::path& sys_dir,
                                                    std::string_view name) {
  std::error_code ec;
  std::filesystem::path link = dev_dir / "virtio-ports" / name;
  if (std::filesystem::exists(link, ec)) return link;
  for (const auto& entry : std::filesystem::directory_iterator(sys_dir, ec)) {
    auto text = ReadFile(entry.path() / "name");
    if (!text.ok()) continue;
    std::string port_name = *text;
    while (!port_name.empty() && (port_name.back() == '\n' || port_name.back() == '\0')) {
      port_name.pop_back();
    }
    if (port_name != name) continue;
    std::filesystem::path node = dev_dir / entry.path().filename();
    if (std::filesystem::exists(node, ec)) return node;
  }
  return std::nullopt;
}

}  // namespace vmctl::agent::guest
