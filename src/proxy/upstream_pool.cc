#include "proxy/upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace vmctl::proxy {
namespace {

// An idle HTTP connection has nothing to read: readable means the peer closed it (or sent
// bytes nobody asked for), either way it cannot carry another request.
bool StillOpen(boost::beast::tcp_stream& stream) {
  char byte;
  ssize_t n = ::recv(stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::optional<boost::beast::tcp_stream> UpstreamPool::Take(const std::string& upstream) {
  std::lock_guard lock(mutex_);
  DropExpired(std::chrono::steady_clock::now());
  auto it = idle_.find(upstream);
  while (it != idle_.end() && !it->second.empty()) {
    Idle idle = std::move(it->second.back());
    it->second.pop_back();
    if (StillOpen(idle.stream)) return std::move(idle.stream);
  }
  return std::nullopt;
}

void UpstreamPool::Put(const std::string& upstream, boost::beast::tcp_stream stream) {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  DropExpired(now);
  auto& idle = idle_[upstream];
  if (idle.size() >= per_upstream_) idle.pop_front();
  idle.push_back({std::move(stream), now});
}

void UpstreamPool::Clear() {
  std::lock_guard lock(mutex_);
  idle_.clear();
}

size_t UpstreamPool::size() {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [upstream, idle] : idle_) n += idle.size();
  return n;
}

void UpstreamPool::DropExpired(std::chrono::steady_clock::time_point now) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& idle = it->second;
    while (!idle.empty() && now - idle.front().since > idle_timeout_) idle.pop_front();
    it = idle.empty() ? idle_.erase(it) : std::next(it);
  }
}

}  // namespace vmctl::proxy
