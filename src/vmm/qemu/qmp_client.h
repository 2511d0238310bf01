#ifndef VMCTL_VMM_QEMU_QMP_CLIENT_H_
#define VMCTL_VMM_QEMU_QMP_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::vmm::qemu {

// A QMP session over a stream socket: greeting, capabilities negotiation, then commands matched to
// their answers by id, with the asynchronous events that arrive in between kept aside.
// Not thread-safe: one caller at a time (the controller serializes calls per VM).
class QmpClient {
 public:
  // At most this many events are kept; older ones are dropped first.
  static constexpr size_t kMaxEvents = 256;

  // Connects and negotiates. kUnavailable if the socket is absent, refuses, closes, or sends no
  // greeting within the timeout: QEMU serves one QMP client at a time and leaves the others
  // waiting in the listen backlog, so a busy monitor looks like a silent one.
  static Result<std::unique_ptr<QmpClient>> Connect(const std::filesystem::path& socket,
                                                    std::chrono::milliseconds timeout);
  // Negotiates over an already-connected stream.
  static Result<std::unique_ptr<QmpClient>> FromStream(UniqueFd stream,
                                                       std::chrono::milliseconds timeout);

  // Runs a command and returns its "return" value. A QMP error answer becomes an Error carrying
  // QEMU's class and desc (CommandNotFound -> kUnimplemented, DeviceNotFound -> kNotFound,
  // anything else -> kFailedPrecondition). A closed connection is kUnavailable; no answer in
  // time is kDeadlineExceeded (a late answer is recognized by its id and skipped later).
  Result<nlohmann::json> Execute(const std::string& command,
                                 const nlohmann::json& arguments = nlohmann::json::object(),
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Events received so far ({"event": NAME, "data": ..., "timestamp": ...}), oldest first; the
  // queue is emptied.
  std::vector<nlohmann::json> TakeEvents();

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<nlohmann::json> ReadMessage(std::chrono::steady_clock::time_point deadline);

  UniqueFd fd_;
  std::string buffer_;
  std::deque<nlohmann::json> events_;
  int64_t next_id_ = 1;
};

}  // namespace vmctl::vmm::qemu

#endif  // VMCTL_VMM_QEMU_QMP_CLIENT_H_
