#ifndef VMCTL_PROXY_TRACKER_H_
#define VMCTL_PROXY_TRACKER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace vmctl::proxy {

class Registration;

// Every open socket of the server (listeners, client connections and their current upstream),
// so that Stop can end them all and wait: shutdown(2) on a socket wakes whatever coroutine
// waits on it, from any thread, without touching the coroutine's objects. The entries are the
// Registrations themselves, linked in a list: registering allocates nothing, and a connection's
// upstream changes without a lookup.
//
// Threading: thread-safe. A registration must end before its socket is closed (Registration
// lives in the coroutine frame after the socket it names).
class Tracker {
 public:
  explicit Tracker(size_t max_connections) : max_connections_(max_connections) {}
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // Refuses new registrations and shuts every registered socket down.
  void ShutdownAll();
  void WaitEmpty();
  size_t connections();

 private:
  friend class Registration;
  // False once stopping, or when `counted` and max_connections are open.
  bool Add(Registration& entry);
  void SetUpstream(Registration& entry, int fd);
  void Remove(Registration& entry);

  const size_t max_connections_;
  std::mutex mutex_;
  std::condition_variable empty_;
  Registration* first_ = nullptr;
  size_t counted_ = 0;
  // Written under the mutex; read without it by SetUpstream, which runs twice a request on
  // every event loop and so takes the mutex only once stopping.
  std::atomic<bool> stopping_ = false;
};

// One socket in a Tracker, for the registration's lifetime (RAII). It does not move: the
// tracker links to it.
class Registration {
 public:
  Registration(Tracker& tracker, int fd, bool counted)
      : tracker_(tracker), fd_(fd), counted_(counted), registered_(tracker.Add(*this)) {}
  ~Registration() {
    if (registered_) tracker_.Remove(*this);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  explicit operator bool() const { return registered_; }
  // The connection's upstream socket now (-1: none).
  void SetUpstream(int fd) {
    if (registered_) tracker_.SetUpstream(*this, fd);
  }

 private:
  friend class Tracker;
  Tracker& tracker_;
  const int fd_;
  const bool counted_;
  std::atomic<int> upstream_ = -1;
  // The tracker's list links, under its mutex.
  Registration* previous_ = nullptr;
  Registration* next_ = nullptr;
  const bool registered_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_TRACKER_H_
