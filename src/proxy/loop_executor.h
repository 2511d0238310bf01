#ifndef VMCTL_PROXY_LOOP_EXECUTOR_H_
#define VMCTL_PROXY_LOOP_EXECUTOR_H_

// The proxy's sockets, timers and coroutines name their event loop's executor type instead of
// Asio's default, the type-erased any_io_executor. Every I/O object, pending operation and
// coroutine holds an executor: the type-erased one is a 40-byte object that is copied, moved
// and destroyed through function pointers on every operation (3 % of the proxy's CPU) and
// kept several times by every idle connection; this one is a pointer (bench/RESULTS.md).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/wait_traits.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <chrono>

namespace vmctl::proxy {

using LoopExecutor = boost::asio::io_context::executor_type;

// A coroutine on an event loop.
template <class T>
using Task = boost::asio::awaitable<T, LoopExecutor>;
// Completion tokens for operations awaited in a Task: the result, or (kTuple) the error code
// and the result as a tuple, which is how the proxy awaits everything that may fail.
inline constexpr boost::asio::use_awaitable_t<LoopExecutor> kAwait;
inline constexpr auto kTuple = boost::asio::as_tuple(kAwait);

using TcpSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, LoopExecutor>;
using TcpAcceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, LoopExecutor>;
using TcpStream = boost::beast::basic_stream<boost::asio::ip::tcp, LoopExecutor>;
using Timer = boost::asio::basic_waitable_timer<
    std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, LoopExecutor>;

}  // namespace vmctl::proxy

#endif  // VMCTL_PROXY_LOOP_EXECUTOR_H_
