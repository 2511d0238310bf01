#include "testing/netns/netns.h"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace vmctl::testing {

Result<void> EnterPrivateNetworkNamespace() {
  if (::unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWNS) != 0) {
    return ErrnoError("unshare(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWNS) (tests need root)",
                      errno);
  }
  // Private propagation first, or the new sysfs mount would appear in the host's namespace too.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError("make / private", errno);
  }
  if (::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) return ErrnoError("mount /sys", errno);
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoError("socket", errno);
  ifreq request{};
  std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &request) != 0) return ErrnoError("get lo flags", errno);
  request.ifr_flags |= IFF_UP;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &request) != 0) return ErrnoError("set lo up", errno);
  return Ok();
}

}  // namespace vmctl::testing
