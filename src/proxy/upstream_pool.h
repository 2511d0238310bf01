#ifndef VMCTL_PROXY_UPSTREAM_POOL_H_
#define VMCTL_PROXY_UPSTREAM_POOL_H_

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "proxy/loop_executor.h"

namespace vmctl::proxy {

// Where a pooled connection goes: a VM's address and port.
struct UpstreamAddress {
  std::string address;
  uint16_t port = 0;
  auto operator<=>(const UpstreamAddress&) const = default;
};

// Idle keep-alive connections to upstreams (VMs' ports). A connection comes back only after a
// complete exchange; one idle longer than `idle_timeout` is dropped, and one the peer closed
// meanwhile is dropped when Take looks at it.
//
// Threading: one thread, that of the event loop the sockets are bound to (each loop keeps a
// pool of its own), so no lock.
class UpstreamPool {
 public:
  using Clock = std::chrono::steady_clock;

  UpstreamPool(size_t per_upstream, std::chrono::milliseconds idle_timeout)
      : per_upstream_(per_upstream), idle_timeout_(idle_timeout) {}

  // The most recently pooled connection to `upstream` that is still open, if any.
  // `retried_if_closed`: the caller sends its request again on a new connection if this one
  // turns out to be closed before anything came back (an idempotent request without a body).
  // Then a connection pooled less than a second ago is taken without asking the kernel
  // whether the peer closed it: that check is a system call for every request, and an app
  // closes a keep-alive connection it has just used only when it said so in its response
  // (which keeps the connection out of the pool).
  // Null when there is none. Streams are held by pointer because moving a beast::tcp_stream
  // allocates (a new shared state with its timers), and a pooled one moved four times a request.
  std::unique_ptr<TcpStream> Take(const UpstreamAddress& upstream, bool retried_if_closed);
  void Put(const UpstreamAddress& upstream, std::unique_ptr<TcpStream> stream);
  void Clear();
  size_t size() const;

 private:
  struct Idle {
    std::unique_ptr<TcpStream> stream;
    Clock::time_point since;
  };
  // Drops what has idled too long, in every upstream's list, at most once a second.
  void Sweep(Clock::time_point now);

  const size_t per_upstream_;
  const std::chrono::milliseconds idle_timeout_;
  std::map<UpstreamAddress, std::deque<Idle>> idle_;
  Clock::time_point last_sweep_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_UPSTREAM_POOL_H_
