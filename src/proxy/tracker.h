#ifndef VMCTL_PROXY_TRACKER_H_
#define VMCTL_PROXY_TRACKER_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace vmctl::proxy {

// Every open socket of the server (listeners, client connections and their current upstream),
// so that Stop can end them all and wait: shutdown(2) on a socket wakes whatever coroutine
// waits on it, from any thread, without touching the coroutine's objects.
//
// Threading: thread-safe. A registration must end before its socket is closed (Registration
// lives in the coroutine frame after the socket it names).
class Tracker {
 public:
  explicit Tracker(size_t max_connections) : max_connections_(max_connections) {}

  // nullopt once stopping, or when `counted` and max_connections are open.
  std::optional<uint64_t> Add(int fd, bool counted);
  // The connection's upstream socket now (-1: none).
  void SetUpstream(uint64_t id, int fd);
  void Remove(uint64_t id);
  // Refuses new registrations and shuts every registered socket down.
  void ShutdownAll();
  void WaitEmpty();
  size_t connections();

 private:
  struct Entry {
    int fd;
    int upstream = -1;
    bool counted;
  };
  const size_t max_connections_;
  std::mutex mutex_;
  std::condition_variable empty_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 0;
  size_t counted_ = 0;
  bool stopping_ = false;
};

// RAII for one Tracker entry.
class Registration {
 public:
  Registration(Tracker& tracker, int fd, bool counted)
      : tracker_(tracker), id_(tracker.Add(fd, counted)) {}
  ~Registration() {
    if (id_) tracker_.Remove(*id_);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  explicit operator bool() const { return id_.has_value(); }
  void SetUpstream(int fd) {
    if (id_) tracker_.SetUpstream(*id_, fd);
  }

 private:
  Tracker& tracker_;
  std::optional<uint64_t> id_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_TRACKER_H_
