#ifndef VMCTL_TESTING_NETNS_NETNS_H_
#define VMCTL_TESTING_NETNS_NETNS_H_

#include "base/result.h"

namespace vmctl::testing {

// Moves the calling process into new network, UTS and mount namespaces, with a fresh sysfs on
// /sys so that /sys/class/net lists the new namespace's links, and `lo` up. Tests that create
// links, set addresses or change the hostname call it first, so the host is never touched; the
// namespaces vanish with the process, leaving nothing to clean up.
// Must run before the process starts threads (unshare of the mount namespace requires it); needs
// root. kInternal with the failing call's errno text otherwise.
Result<void> EnterPrivateNetworkNamespace();

}  // namespace vmctl::testing

// Use at namespace scope in a test file: enters the namespaces during static initialization,
// before gtest starts any thread, and aborts with a message when that is impossible.
#define VMCTL_TEST_IN_PRIVATE_NETWORK_NAMESPACE()                    \
  [[maybe_unused]] static const bool vmctl_private_netns = [] {      \
    auto entered = ::vmctl::testing::EnterPrivateNetworkNamespace(); \
    if (!entered.ok()) {                                             \
      ::fprintf(stderr, "%s\n", entered.error().message().c_str());  \
      ::abort();                                                     \
    }                                                                \
    return true;                                                     \
  }()

#endif  // VMCTL_TESTING_NETNS_NETNS_H_
