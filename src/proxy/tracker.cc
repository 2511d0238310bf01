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

void Tracker::SetUpstream(Registration& entry, int fd) {
  std::lock_guard lock(mutex_);
  entry.upstream_ = fd;
  if (stopping_ && fd >= 0) ::shutdown(fd, SHUT_RDWR);
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
    if (entry->upstream_ >= 0) ::shutdown(entry->upstream_, SHUT_RDWR);
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
