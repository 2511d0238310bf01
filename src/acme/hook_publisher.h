#ifndef VMCTL_ACME_HOOK_PUBLISHER_H_
#define VMCTL_ACME_HOOK_PUBLISHER_H_

#include <chrono>
#include <filesystem>

#include "acme/dns_publisher.h"

namespace vmctl::acme {

// Publishes through a command (`--acme-dns-hook CMD`), run as `CMD add NAME VALUE` and
// `CMD del NAME VALUE` (no shell); exit status 0 means done. A non-zero exit is kUnavailable with
// the tail of its stderr; running longer than the timeout kills it (kDeadlineExceeded).
class HookPublisher : public DnsPublisher {
 public:
  explicit HookPublisher(std::filesystem::path command,
                         std::chrono::milliseconds timeout = std::chrono::minutes(2))
      : command_(std::move(command)), timeout_(timeout) {}

  Result<void> Add(std::string_view name, std::string_view value) override;
  Result<void> Remove(std::string_view name, std::string_view value) override;

 private:
  Result<void> Run(std::string_view op, std::string_view name, std::string_view value);

  std::filesystem::path command_;
  std::chrono::milliseconds timeout_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_HOOK_PUBLISHER_H_
