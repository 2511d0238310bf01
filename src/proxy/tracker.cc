#include "proxy/tracker.h"

#include <sys/socket.h>

namespace vmctl::proxy {

std::optional<uint64_t> Tracker::Add(int fd, bool counted) {
  std::lock_guard lock(mutex_);
  if (stopping_ || (counted && counted_ >= max_connections_)) return std::nullopt;
  uint64_t id = next_id_++;
  entries_.emplace(id, Entry{fd, -1, counted});
  if (counted) ++counted_;
  return id;
}

void Tracker::SetUpstream(uint64_t id, int fd) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second.upstream = fd;
  if (stopping_ && fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void Tracker::Remove(uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.counted) --counted_;
  entries_.erase(it);
  if (entries_.empty()) empty_.notify_all();
}

void Tracker::ShutdownAll() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  for (const auto& [id, entry] : entries_) {
    ::shutdown(entry.fd, SHUT_RDWR);
    if (entry.upstream >= 0) ::shutdown(entry.upstream, SHUT_RDWR);
  }
}

void Tracker::WaitEmpty() {
  std::unique_lock lock(mutex_);
  empty_.wait(lock, [&] { return entries_.empty(); });
}

size_t Tracker::connections() {
  std::lock_guard lock(mutex_);
  return counted_;
}

}  // namespace vmctl::proxy
