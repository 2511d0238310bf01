#include "base/io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vmctl {

Result<void> WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Result<std::string> ReadExactly(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", errno);
    }
    if (r == 0) return Unavailable(got == 0 ? "end of stream" : "truncated");
    got += static_cast<size_t>(r);
  }
  return out;
}

Result<std::string> ReadSome(int fd, size_t max) {
  std::string out(max, '\0');
  for (;;) {
    ssize_t r = ::read(fd, out.data(), max);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", errno);
    }
    out.resize(static_cast<size_t>(r));
    return out;
  }
}

Result<void> WaitReadable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll", errno);
    }
    if (r == 0) return DeadlineExceeded("timed out waiting for data");
    return Ok();
  }
}

namespace {

Result<sockaddr_un> UnixAddress(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string& s = path.native();
  if (s.size() >= sizeof(addr.sun_path)) {
    return InvalidArgument("unix socket path too long (max " +
                           std::to_string(sizeof(addr.sun_path) - 1) + " bytes): " + s);
  }
  std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
  return addr;
}

}  // namespace

Result<UniqueFd> ConnectUnix(const std::filesystem::path& path) {
  VMCTL_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  while (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    if (errno == EINTR) continue;
    int e = errno;
    Error err = ErrnoError("connect " + path.string(), e);
    if (e == ENOENT || e == ECONNREFUSED) return Error(ErrorCode::kUnavailable, err.message());
    return err;
  }
  return fd;
}

Result<UniqueFd> ListenUnix(const std::filesystem::path& path, unsigned mode) {
  VMCTL_ASSIGN_OR_RETURN(sockaddr_un addr, UnixAddress(path));
  // A socket file nobody answers on is stale (a previous daemon died); a live one is refused so two
  // daemons never share a socket.
  if (std::filesystem::exists(path)) {
    if (ConnectUnix(path).ok())
      return AlreadyExists("socket in use by a running daemon: " + path.string());
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError("socket", errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    return ErrnoError("bind " + path.string(), errno);
  }
  if (::chmod(path.c_str(), mode) < 0) return ErrnoError("chmod " + path.string(), errno);
  if (::listen(fd.get(), 128) < 0) return ErrnoError("listen", errno);
  return fd;
}

Result<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("open " + path.string(), errno ? errno : ENOENT);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<void> WriteFileAtomic(const std::filesystem::path& path, std::string_view data,
                             unsigned mode) {
  std::string tmp = path.string() + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd.valid()) return ErrnoError("open " + tmp, errno);
  if (auto r = WriteAll(fd.get(), data); !r.ok()) {
    ::unlink(tmp.c_str());
    return r;
  }
  if (::fsync(fd.get()) < 0 || ::rename(tmp.c_str(), path.c_str()) < 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoError("write " + path.string(), e);
  }
  return Ok();
}

std::string TailFile(const std::filesystem::path& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  auto size = static_cast<size_t>(in.tellg());
  size_t start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string out(size - start, '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  if (start > 0) {
    auto nl = out.find('\n');
    if (nl != std::string::npos && nl + 1 < out.size()) out.erase(0, nl + 1);
  }
  return out;
}

Result<bool> CapAppendedLog(const std::filesystem::path& path, size_t max_bytes,
                            size_t keep_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoError("stat " + path.string(), errno);
  }
  if (static_cast<size_t>(st.st_size) <= max_bytes) return false;
  std::string tail = TailFile(path, keep_bytes);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_APPEND | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("truncating " + path.string(), errno);
  VMCTL_TRY(WriteAll(fd.get(), tail));
  return true;
}

}  // namespace vmctl
