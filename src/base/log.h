#ifndef VMCTL_BASE_LOG_H_
#define VMCTL_BASE_LOG_H_

#include <spdlog/spdlog.h>

namespace vmctl {

// Configures the default spdlog logger to write "time level message" lines to stderr.
// Level from VMCTL_LOG (trace|debug|info|warn|error), default info. Call once from main().
void InitLogging();

}  // namespace vmctl

#endif  // VMCTL_BASE_LOG_H_
