#ifndef VMCTL_MODEL_EVENT_H_
#define VMCTL_MODEL_EVENT_H_

#include <cstdint>
#include <string>

namespace vmctl {

// One line of the operations log: what happened to which VM, when, and how it ended.
struct Event {
  int64_t id = 0;  // assigned by the store
  std::string vm_id;
  std::string vm_name;
  std::string kind;    // "create", "start", "stop", "state", "reconcile", ...
  std::string detail;  // human-readable
  int64_t at = 0;      // unix milliseconds
};

}  // namespace vmctl

#endif  // VMCTL_MODEL_EVENT_H_
