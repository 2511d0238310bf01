#include "image/in_root.h"

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "base/io.h"

namespace vmctl::image {

namespace fs = std::filesystem;

Result<fs::path> InRoot(const fs::path& root, const fs::path& path) {
  constexpr int kMaxLinks = 40;
  std::deque<std::string> todo;
  for (const auto& c : path.relative_path()) todo.push_back(c.string());
  std::vector<std::string> resolved;
  int links = 0;
  auto join = [&] {
    fs::path p = root;
    for (const auto& c : resolved) p /= c;
    return p;
  };
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    fs::path candidate = join() / c;
    std::error_code ec;
    if (!fs::is_symlink(fs::symlink_status(candidate, ec))) {
      resolved.push_back(std::move(c));
      continue;
    }
    if (++links > kMaxLinks) {
      return InvalidArgument("the image's path /" + path.relative_path().string() +
                             " goes through a loop of symbolic links");
    }
    fs::path target = fs::read_symlink(candidate, ec);
    if (ec) return InvalidArgument("cannot read the link " + candidate.string());
    if (target.is_absolute()) resolved.clear();
    std::vector<std::string> parts;
    for (const auto& t : target.relative_path()) parts.push_back(t.string());
    todo.insert(todo.begin(), parts.begin(), parts.end());
  }
  return join();
}

Result<fs::path> DirInRoot(const fs::path& root, const fs::path& dir) {
  VMCTL_ASSIGN_OR_RETURN(fs::path resolved, InRoot(root, dir));
  std::error_code ec;
  fs::create_directories(resolved, ec);
  if (ec) return Internal("cannot create " + resolved.string() + ": " + ec.message());
  return resolved;
}

Result<void> WriteInRoot(const fs::path& root, const fs::path& file, std::string_view content,
                         unsigned mode) {
  VMCTL_ASSIGN_OR_RETURN(fs::path resolved, InRoot(root, file));
  std::error_code ec;
  fs::create_directories(resolved.parent_path(), ec);
  if (ec) return Internal("cannot create " + resolved.parent_path().string() + ": " + ec.message());
  return WriteFileAtomic(resolved, std::string(content), mode);
}

Result<void> SymlinkInRoot(const fs::path& root, const fs::path& target, const fs::path& link) {
  VMCTL_ASSIGN_OR_RETURN(fs::path dir, DirInRoot(root, link.parent_path()));
  fs::path at = dir / link.filename();
  std::error_code ec;
  fs::remove(at, ec);
  fs::create_symlink(target, at, ec);
  if (ec) return Internal("cannot link " + at.string() + ": " + ec.message());
  return Ok();
}

}  // namespace vmctl::image
