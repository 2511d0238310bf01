#ifndef VMCTL_TLS_DURABLE_FILE_H_
#define VMCTL_TLS_DURABLE_FILE_H_

#include <sys/types.h>

#include <filesystem>
#include <string_view>

#include "base/result.h"

namespace vmctl::tls {

// Replaces `path` so that, even across a crash or power loss, it holds either its old or its new
// contents, never a part: a uniquely named temp file beside it (removed on every failure) with
// exactly `mode` (not narrowed by the umask, never wider while being written), fsync, rename(2),
// fsync of the directory. For keys and certificates; thread-safe for distinct paths.
Result<void> WriteFileDurably(const std::filesystem::path& path, std::string_view data,
                              mode_t mode);

}  // namespace vmctl::tls

#endif  // VMCTL_TLS_DURABLE_FILE_H_
