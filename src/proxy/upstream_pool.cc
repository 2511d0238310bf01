#include "proxy/upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace vmctl::proxy {
namespace {

constexpr std::chrono::seconds kTrustedFor{1};
constexpr std::chrono::seconds kSweepEvery{1};

// An idle HTTP connection has nothing to read: readable means the peer closed it (or sent
// bytes nobody asked for), either way it cannot carry another request.
bool StillOpen(TcpStream& stream) {
  char byte;
  ssize_t n = ::recv(stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::unique_ptr<TcpStream> UpstreamPool::Take(const UpstreamAddress& upstream,
                                              bool retried_if_closed) {
  auto now = Clock::now();
  Sweep(now);
  auto it = idle_.find(upstream);
  if (it == idle_.end()) return nullptr;
  auto& idle = it->second;
  std::unique_ptr<TcpStream> taken;
  while (!taken && !idle.empty()) {
    Idle last = std::move(idle.back());
    idle.pop_back();
    if (now - last.since > idle_timeout_) {
      idle.clear();  // the rest are older still
      break;
    }
    if ((retried_if_closed && now - last.since < kTrustedFor) || StillOpen(*last.stream)) {
      taken = std::move(last.stream);
    }
  }
  if (idle.empty()) idle_.erase(it);
  return taken;
}

void UpstreamPool::Put(const UpstreamAddress& upstream, std::unique_ptr<TcpStream> stream) {
  auto now = Clock::now();
  Sweep(now);
  auto& idle = idle_[upstream];
  if (idle.size() >= per_upstream_) idle.pop_front();
  idle.push_back({std::move(stream), now});
}

void UpstreamPool::Clear() { idle_.clear(); }

size_t UpstreamPool::size() const {
  size_t n = 0;
  for (const auto& [upstream, idle] : idle_) n += idle.size();
  return n;
}

void UpstreamPool::Sweep(Clock::time_point now) {
  if (now - last_sweep_ < kSweepEvery) return;
  last_sweep_ = now;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& idle = it->second;
    while (!idle.empty() && now - idle.front().since > idle_timeout_) idle.pop_front();
    it = idle.empty() ? idle_.erase(it) : std::next(it);
  }
}

}  // namespace vmctl::proxy
