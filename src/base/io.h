#ifndef VMCTL_BASE_IO_H_
#define VMCTL_BASE_IO_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl {

// Blocking helpers over raw fds; all retry on EINTR. Errors are ErrnoError values.

// Writes all bytes. EPIPE/ECONNRESET map to kUnavailable.
Result<void> WriteAll(int fd, std::string_view data);
// Reads exactly n bytes; a clean EOF before the first byte returns kUnavailable "end of stream",
// EOF in the middle returns kUnavailable "truncated".
Result<std::string> ReadExactly(int fd, size_t n);
// Reads what is available (at most max); returns "" on EOF.
Result<std::string> ReadSome(int fd, size_t max);
// Waits until fd is readable or the timeout passes (kDeadlineExceeded).
Result<void> WaitReadable(int fd, std::chrono::milliseconds timeout);

// Connects a SOCK_STREAM Unix socket (CLOEXEC). ENOENT/ECONNREFUSED -> kUnavailable.
Result<UniqueFd> ConnectUnix(const std::filesystem::path& path);
// Creates, binds and listens on a Unix socket with the given mode, replacing a stale socket file.
Result<UniqueFd> ListenUnix(const std::filesystem::path& path, unsigned mode);

Result<std::string> ReadFile(const std::filesystem::path& path);
// Writes via a temp file in the same directory and rename(2), so readers never see a partial file.
Result<void> WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                             unsigned mode = 0644);
// The last max_bytes of a file ("" if it does not exist), cut at a line start when possible.
std::string TailFile(const std::filesystem::path& path, size_t max_bytes);
// Bounds a log that another process appends to (O_APPEND, like QEMU's console file): once it
// exceeds max_bytes it is cut to its last keep_bytes (TailFile). Lines appended while it is cut may
// be lost. Returns whether it was cut; a missing file is not an error.
Result<bool> CapAppendedLog(const std::filesystem::path& path, size_t max_bytes, size_t keep_bytes);

}  // namespace vmctl

#endif  // VMCTL_BASE_IO_H_
