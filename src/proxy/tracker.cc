#include "proxy/tracker.h"

#include <sys/socket.h>

namespace vmctl::proxy {

bool Tracker::Add(Registration& entry) {
  std::lock_guard lock(mutex_);
  if (stopping_ || (entry.counted_ && counted_ >= max_connections_)) return false;
  entry.next_ = first_;
  if (first_ != nullptr) first_->previous_ = &entry;
  first_ = &entry;
  if (entry.counted_) ++counted_;
  return true;
}

// Sequentially consistent, with ShutdownAll's store of stopping_ and loads of upstream_: either
// ShutdownAll sees the new value, or this sees stopping_ and locks. So a socket given up here is
// closed only after ShutdownAll is done with it, never while it may still shut its fd (which
// the kernel may hand to something else once it is closed).
void Tracker::SetUpstream(Registration& entry, int fd) {
  entry.upstream_.store(fd);
  if (!stopping_.load()) return;
  std::lock_guard lock(mutex_);
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void Tracker::Remove(Registration& entry) {
  std::lock_guard lock(mutex_);
  if (entry.previous_ != nullptr) {
    entry.previous_->next_ = entry.next_;
  } else {
    first_ = entry.next_;
  }
  if (entry.next_ != nullptr) entry.next_->previous_ = entry.previous_;
  if (entry.counted_) --counted_;
  if (first_ == nullptr) empty_.notify_all();
}

void Tracker::ShutdownAll() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  for (Registration* entry = first_; entry != nullptr; entry = entry->next_) {
    ::shutdown(entry->fd_, SHUT_RDWR);
    if (int upstream = entry->upstream_.load(); upstream >= 0) ::shutdown(upstream, SHUT_RDWR);
  }
}

void Tracker::WaitEmpty() {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [&] { return first_ == nullptr; });
}

size_t Tracker::connections() {
  std::lock_guard lock(mutex_);
  return counted_;
}

}  // namespace vmctl::proxy
