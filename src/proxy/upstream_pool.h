#ifndef VMCTL_PROXY_UPSTREAM_POOL_H_
#define VMCTL_PROXY_UPSTREAM_POOL_H_

#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace vmctl::proxy {

// Idle keep-alive connections to upstreams (VMs' ports), by "address:port". A connection comes
// back only after a complete exchange; one the peer closed meanwhile, or idle longer than
// `idle_timeout`, is dropped when next looked at.
//
// Threading: thread-safe. The sockets stay bound to the io_context they were made on.
class UpstreamPool {
 public:
  UpstreamPool(size_t per_upstream, std::chrono::milliseconds idle_timeout)
      : per_upstream_(per_upstream), idle_timeout_(idle_timeout) {}

  std::optional<boost::beast::tcp_stream> Take(const std::string& upstream);
  void Put(const std::string& upstream, boost::beast::tcp_stream stream);
  void Clear();
  size_t size();

 private:
  struct Idle {
    boost::beast::tcp_stream stream;
    std::chrono::steady_clock::time_point since;
  };
  void DropExpired(std::chrono::steady_clock::time_point now);

  const size_t per_upstream_;
  const std::chrono::milliseconds idle_timeout_;
  std::mutex mutex_;
  std::map<std::string, std::deque<Idle>> idle_;
};

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_UPSTREAM_POOL_H_
