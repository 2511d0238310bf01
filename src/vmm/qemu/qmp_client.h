#ifndef VMCTL_VMM_QEMU_QMP_CLIENT_H_
#define VMCTL_VMM_QEMU_QMP_CLIENT_H_

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::vmm::qemu {

// A QMP session over a Unix socket: greeting, capabilities negotiation, then commands matched to
// their answers by id, with asynchronous events recorded along the way.
// Not thread-safe: one caller at a time (the controller serializes per VM).
class QmpClient {
 public:
  // Connects and negotiates. kUnavailable if nobody answers (QEMU serves one QMP client at a
  // time, so a busy socket also times out), kDeadlineExceeded if the greeting does not come.
  static Result<std::unique_ptr<QmpClient>> Connect(const std::filesystem::path& socket,
                                                    std::chrono::milliseconds timeout);
  // Wraps an already-connected stream (tests).
  static Result<std::unique_ptr<QmpClient>> FromStream(UniqueFd stream,
                                                       std::chrono::milliseconds timeout);

  // Runs a command and returns its "return" value. A QMP error answer becomes
  // kFailedPrecondition carrying QEMU's "desc" and class; a closed connection is kUnavailable.
  Result<nlohmann::json> Execute(const std::string& command,
                                 const nlohmann::json& arguments = nlohmann::json::object(),
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Events seen so far ({"event": NAME, "data": ...}), oldest first.
  const std::vector<nlohmann::json>& events() const { return events_; }

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<nlohmann::json> ReadMessage(std::chrono::steady_clock::time_point deadline);

  UniqueFd fd_;
  std::string buffer_;
  std::vector<nlohmann::json> events_;
  int64_t next_id_ = 1;
};

}  // namespace vmctl::vmm::qemu

#endif  // VMCTL_VMM_QEMU_QMP_CLIENT_H_
