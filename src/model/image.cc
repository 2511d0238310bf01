#include "model/image.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>

namespace vmctl {
namespace {

constexpr size_t kMaxImageNameLength = 64;
constexpr size_t kMaxPackages = 200;

bool IsLowerAlnum(char c) {
  return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c));
}

// Debian package names (policy 5.6.1) plus an optional "=version" pin; anything else would reach
// mmdebstrap's command line.
bool IsPackageName(std::string_view p) {
  if (p.size() < 2 || p.size() > 100 || !IsLowerAlnum(p[0])) return false;
  for (char c : p) {
    if (!IsLowerAlnum(c) && c != '+' && c != '-' && c != '.' && c != '=' && c != ':' && c != '~') {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<void> ValidateImageName(std::string_view name) {
  if (name.empty() || name.size() > kMaxImageNameLength) {
    return InvalidArgument(
        fmt::format("image name must be 1 to {} characters", kMaxImageNameLength));
  }
  if (!IsLowerAlnum(name[0])) {
    return InvalidArgument(
        fmt::format("image name '{}' must start with a lowercase letter or digit", name));
  }
  for (char c : name) {
    if (!IsLowerAlnum(c) && c != '-' && c != '_' && c != '.') {
      return InvalidArgument(fmt::format(
          "image name '{}' may contain only lowercase letters, digits, '-', '_' and '.'", name));
    }
  }
  return Ok();
}

Result<void> ValidateImageSource(const ImageSource& s) {
  switch (s.kind) {
    case ImageSource::Kind::kDebian:
      if (s.suite.empty() || s.suite.size() > 32 ||
          s.suite.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos) {
        return InvalidArgument(
            fmt::format("'{}' is not a Debian suite name such as bookworm or trixie", s.suite));
      }
      if (s.packages.size() > kMaxPackages) {
        return InvalidArgument(fmt::format("at most {} extra packages", kMaxPackages));
      }
      for (const auto& p : s.packages) {
        if (!IsPackageName(p)) return InvalidArgument(fmt::format("'{}' is not a package name", p));
      }
      return Ok();
    case ImageSource::Kind::kOci:
    case ImageSource::Kind::kDockerfile:
      if (s.path.empty() || s.path.front() != '/') {
        return InvalidArgument(
            fmt::format("the image source path must be absolute (got '{}')", s.path));
      }
      if (!s.context.empty() && s.context.front() != '/') {
        return InvalidArgument(
            fmt::format("the build context must be an absolute path (got '{}')", s.context));
      }
      return Ok();
  }
  return InvalidArgument("unknown image source kind");
}

std::string DescribeImageSource(const ImageSource& s) {
  switch (s.kind) {
    case ImageSource::Kind::kDebian:
      if (s.packages.empty()) return "debian:" + s.suite;
      return fmt::format("debian:{}+{}", s.suite, fmt::join(s.packages, ","));
    case ImageSource::Kind::kOci:
      return "oci:" + s.path;
    case ImageSource::Kind::kDockerfile:
      return "dockerfile:" + s.path;
  }
  return "unknown";
}

}  // namespace vmctl
