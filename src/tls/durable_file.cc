#include "tls/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <utility>

#include "base/io.h"
#include "base/unique_fd.h"

namespace vmctl::tls {
namespace {

// A temp file that is unlinked when it goes out of scope unless it was renamed into place.
class TempFile {
 public:
  static Result<TempFile> CreateBeside(const std::filesystem::path& path, mode_t mode) {
    std::string name = path.string() + ".tmp.XXXXXX";
    // mkostemp creates it 0600, so a secret is never readable by others while it is written.
    UniqueFd fd(::mkostemp(name.data(), O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("create temp file beside " + path.string(), errno);
    TempFile file(std::move(name), std::move(fd));
    if (::fchmod(file.fd_.get(), mode) < 0) return ErrnoError("chmod " + file.path_, errno);
    return file;
  }
  TempFile(TempFile&& other) noexcept
      : path_(std::exchange(other.path_, "")), fd_(std::move(other.fd_)) {}
  TempFile& operator=(TempFile&&) = delete;
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  int fd() const { return fd_.get(); }

  Result<void> RenameTo(const std::filesystem::path& target) {
    if (::fsync(fd_.get()) < 0) return ErrnoError("fsync " + path_, errno);
    if (::rename(path_.c_str(), target.c_str()) < 0) {
      return ErrnoError("rename to " + target.string(), errno);
    }
    path_.clear();
    return Ok();
  }

 private:
  TempFile(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  UniqueFd fd_;
};

}  // namespace

Result<void> WriteFileDurably(const std::filesystem::path& path, std::string_view data,
                              mode_t mode) {
  VMCTL_ASSIGN_OR_RETURN(TempFile file, TempFile::CreateBeside(path, mode));
  VMCTL_TRY(WriteAll(file.fd(), data).WithContext("write " + path.string()));
  VMCTL_TRY(file.RenameTo(path));
  // The rename itself is durable only once the directory entry is on disk.
  std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid() || ::fsync(dir_fd.get()) < 0)
    return ErrnoError("fsync " + dir.string(), errno);
  return Ok();
}

}  // namespace vmctl::tls
