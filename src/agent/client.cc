#include "agent/client.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agent/protocol.h"
#include "base/frame.h"
#include "base/io.h"

namespace vmctl::agent {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The events of one exec stream between the reader thread and the session's reader. Bounded: the
// reader thread waits while `limit` bytes are unread.
class StreamQueue {
 public:
  explicit StreamQueue(size_t limit) : limit_(limit) {}

  // Returns at once once closed (the event is dropped: nobody will read it).
  void Push(ExecEvent event) {
    std::unique_lock lock(mu_);
    space_.wait(lock, [&] { return closed_ || bytes_ < limit_; });
    if (closed_) return;
    bytes_ += event.data.size();
    events_.push_back(std::move(event));
    ready_.notify_all();
  }
  // No more events; Pop still returns those queued.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    ready_.notify_all();
    space_.notify_all();
  }
  // nullopt once closed and empty.
  std::optional<ExecEvent> Pop() {
    std::unique_lock lock(mu_);
    ready_.wait(lock, [&] { return !events_.empty() || closed_; });
    if (events_.empty()) return std::nullopt;
    ExecEvent e = std::move(events_.front());
    events_.pop_front();
    bytes_ -= e.data.size();
    space_.notify_all();
    return e;
  }

 private:
  const size_t limit_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  std::deque<ExecEvent> events_;
  size_t bytes_ = 0;
  bool closed_ = false;
};

// Token buckets for frames and bytes, refilled continuously, holding one second's worth.
class RateLimit {
 public:
  RateLimit(double frames, double bytes)
      : frame_rate_(frames), byte_rate_(bytes), frames_(frames), bytes_(bytes) {}
  // How long to wait after handling `frames` frames in `bytes` bytes.
  std::chrono::microseconds Take(size_t frames, size_t bytes) {
    auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    frames_ = std::min(frame_rate_, frames_ + dt * frame_rate_) - static_cast<double>(frames);
    bytes_ = std::min(byte_rate_, bytes_ + dt * byte_rate_) - static_cast<double>(bytes);
    double wait = std::max({0.0, -frames_ / frame_rate_, -bytes_ / byte_rate_});
    return std::chrono::microseconds(static_cast<int64_t>(wait * 1e6));
  }

 private:
  double frame_rate_, byte_rate_, frames_, bytes_;
  Clock::time_point last_ = Clock::now();
};

class Core;

class Session : public ExecSession {
 public:
  Session(std::shared_ptr<Core> core, int64_t stream, std::shared_ptr<StreamQueue> queue)
      : core_(std::move(core)), stream_(stream), queue_(std::move(queue)) {}
  ~Session() override;

  Result<void> WriteStdin(std::string_view data) override;
  Result<void> CloseStdin() override;
  Result<void> Resize(int rows, int cols) override;
  Result<void> Signal(int signal) override;
  Result<ExecEvent> Next() override;

 private:
  std::shared_ptr<Core> core_;
  int64_t stream_;
  std::shared_ptr<StreamQueue> queue_;
  std::atomic<bool> exited_{false};
};

// The connection shared by the client and its sessions: sessions may outlive the client object
// (the daemon drops a VM's client when the VM stops), and then see the stream as closed.
class Core : public std::enable_shared_from_this<Core> {
 public:
  Core(UniqueFd fd, ClientOptions options) : fd_(std::move(fd)), options_(std::move(options)) {
    // A guest that stops reading its port must not block the daemon's writers for ever; a write
    // that times out ends the connection (it may have sent part of a frame).
    timeval send_timeout{10, 0};
    (void)::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  }

  void Start() {
    reader_ = std::thread([self = this] { self->ReadLoop(); });
  }

  void Shutdown() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    {
      // Releases a reader waiting for room in a stream nobody reads.
      std::lock_guard lock(mu_);
      for (auto& [id, queue] : sessions_) queue->Close();
      sessions_.clear();
    }
    if (reader_.joinable()) reader_.join();
  }

  Result<void> Send(const json& frame) {
    std::lock_guard lock(write_mu_);
    if (closed()) return Unavailable("agent connection closed");
    auto sent = WriteFrame(fd_.get(), frame);
    if (!sent.ok()) ::shutdown(fd_.get(), SHUT_RDWR);
    return sent;
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

  Result<Hello> WaitHello(std::chrono::milliseconds timeout) {
    {
      std::lock_guard lock(mu_);
      if (hello_) return *hello_;
    }
    // Ask as well: a hello sent before we connected may have gone to an earlier host session.
    auto id = NextId();
    {
      std::lock_guard lock(mu_);
      hello_requests_.insert(id);
    }
    // A failed send is not final: the reader may still deliver a hello that arrived before the
    // stream closed, and it marks the stream closed only after dispatching every frame.
    (void)Send({{"id", id}, {"op", "hello"}});
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return hello_.has_value() || closed_; });
    if (hello_) return *hello_;
    if (closed_) return Unavailable("agent connection closed before the agent said hello");
    return DeadlineExceeded("the guest agent did not say hello in time");
  }

  Result<json> Call(const std::string& op, json args, std::chrono::milliseconds timeout) {
    int64_t id = NextId();
    json frame = args.is_object() ? std::move(args) : json::object();
    frame["id"] = id;
    frame["op"] = op;
    return Request(id, frame, op, timeout);
  }

  Result<std::unique_ptr<ExecSession>> Exec(const ExecRequest& r) {
    int64_t id = NextId();
    auto queue = std::make_shared<StreamQueue>(options_.max_stream_buffer);
    {
      std::lock_guard lock(mu_);
      sessions_[id] = queue;
    }
    // The request id doubles as the stream id, so output that races the reply is not lost.
    json args = {{"id", id},     {"op", "exec"}, {"argv", r.argv}, {"env", r.env},
                 {"cwd", r.cwd}, {"tty", r.tty}, {"rows", r.rows}, {"cols", r.cols}};
    auto started = Request(id, args, "exec", std::chrono::seconds(30));
    if (!started.ok()) {
      Forget(id);
      return started.error();
    }
    return std::unique_ptr<ExecSession>(std::make_unique<Session>(shared_from_this(), id, queue));
  }

  void Forget(int64_t stream) {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(stream);
    if (it == sessions_.end()) return;
    it->second->Close();
    sessions_.erase(it);
  }

 private:
  int64_t NextId() {
    std::lock_guard lock(mu_);
    return next_id_++;
  }

  // Sends request `id` and waits for its reply.
  Result<json> Request(int64_t id, const json& frame, const std::string& op,
                       std::chrono::milliseconds timeout) {
    {
      std::lock_guard lock(mu_);
      pending_[id];
    }
    if (auto sent = Send(frame); !sent.ok()) {
      std::lock_guard lock(mu_);
      pending_.erase(id);
      return sent.error();
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return closed_ || pending_[id].has_value(); });
    auto reply = std::move(pending_[id]);
    pending_.erase(id);
    if (reply) return std::move(*reply);
    if (closed_) return Unavailable(fmt::format("agent connection closed during '{}'", op));
    return DeadlineExceeded(fmt::format("the guest agent did not answer '{}' in time", op));
  }

  // The reader thread's entry: nothing may escape it, and the connection ends with it.
  void ReadLoop() {
    std::optional<Error> violation;
    try {
      if (auto pumped = Pump(); !pumped.ok()) violation = pumped.error();
    } catch (const std::exception& e) {
      violation = Internal(fmt::format("the agent connection's reader failed: {}", e.what()));
    } catch (...) {
      violation = Internal("the agent connection's reader failed");
    }
    if (violation) {
      spdlog::warn("agent: {}; dropping the connection", violation->message());
      ::shutdown(fd_.get(), SHUT_RDWR);
    }
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      for (auto& [id, queue] : sessions_) queue->Close();
      sessions_.clear();
      cv_.notify_all();
    }
    if (violation && options_.on_violation) {
      try {
        options_.on_violation(*violation);
      } catch (const std::exception& e) {
        spdlog::error("agent: reporting a protocol violation failed: {}", e.what());
      }
    }
  }

  // Reads and dispatches frames until the stream ends (Ok) or the guest breaks the protocol.
  Result<void> Pump() {
    FrameDecoder decoder(kMaxGuestFrameSize);
    RateLimit rate(options_.max_frames_per_second, options_.max_bytes_per_second);
    for (;;) {
      auto data = ReadSome(fd_.get(), 65536);
      if (!data.ok() || data->empty()) return Ok();
      decoder.Feed(*data);
      size_t frames = 0;
      for (;;) {
        VMCTL_ASSIGN_OR_RETURN(auto frame, decoder.Next());
        if (!frame) break;
        ++frames;
        VMCTL_ASSIGN_OR_RETURN(GuestMessage message, ParseGuestMessage(*frame));
        VMCTL_TRY(Dispatch(std::move(message)));
      }
      std::this_thread::sleep_for(rate.Take(frames, data->size()));
    }
  }

  // Caller holds mu_.
  void FailInFlight(const std::string& why) {
    for (auto& [id, reply] : pending_) {
      // A request already answered completed before the restart; only waiting ones fail.
      if (!reply) reply = Unavailable(why);
    }
    for (auto& [id, queue] : sessions_) queue->Close();
    sessions_.clear();
  }

  Result<void> Dispatch(GuestMessage m) {
    using Kind = GuestMessage::Kind;
    std::shared_ptr<StreamQueue> queue;
    {
      std::lock_guard lock(mu_);
      switch (m.kind) {
        case Kind::kOther:
          return Ok();
        case Kind::kHello:
          // A hello after the first one means the agent started a new session on this same
          // stream (it restarted, or saw the host leave): everything in flight on the old
          // session is gone.
          if (hello_) FailInFlight("the guest agent restarted its session");
          hello_ = m.hello;
          cv_.notify_all();
          return Ok();
        case Kind::kReply:
          if (hello_requests_.erase(m.id)) {
            if (!m.error) {
              VMCTL_ASSIGN_OR_RETURN(Hello hello, ParseHello(m.result));
              hello_ = std::move(hello);
            }
          } else if (auto it = pending_.find(m.id); it != pending_.end() && !it->second) {
            if (m.error) {
              it->second = *m.error;
            } else {
              it->second = std::move(m.result);
            }
          }
          cv_.notify_all();
          return Ok();
        case Kind::kOutput:
        case Kind::kExit: {
          auto it = sessions_.find(m.stream);
          if (it == sessions_.end()) return Ok();  // a stream of a session nobody reads any more
          queue = it->second;
          break;
        }
      }
    }
    // Outside mu_: Push waits while the stream's reader is behind.
    if (m.kind == Kind::kOutput) {
      queue->Push({m.is_stderr ? ExecEvent::Kind::kStderr : ExecEvent::Kind::kStdout,
                   std::move(m.data), 0});
      return Ok();
    }
    queue->Push({ExecEvent::Kind::kExit, "", m.exit_code});
    queue->Close();
    std::lock_guard lock(mu_);
    if (auto it = sessions_.find(m.stream); it != sessions_.end() && it->second == queue) {
      sessions_.erase(it);
    }
    return Ok();
  }

  UniqueFd fd_;
  const ClientOptions options_;
  std::thread reader_;
  std::mutex write_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  std::optional<Hello> hello_;
  std::set<int64_t> hello_requests_;
  // Requests waiting for their reply (nullopt until it comes).
  std::map<int64_t, std::optional<Result<json>>> pending_;
  std::map<int64_t, std::shared_ptr<StreamQueue>> sessions_;
  int64_t next_id_ = 1;
};

Session::~Session() {
  if (!exited_) {
    // Nobody reads this process any more: stop it rather than leak it in the guest.
    (void)core_->Send({{"type", "signal"}, {"stream", stream_}, {"signal", 9}});
  }
  core_->Forget(stream_);
}

Result<void> Session::WriteStdin(std::string_view data) {
  return core_->Send({{"type", "stdin"}, {"stream", stream_}, {"data", Base64Encode(data)}});
}
Result<void> Session::CloseStdin() {
  return core_->Send({{"type", "stdin_close"}, {"stream", stream_}});
}
Result<void> Session::Resize(int rows, int cols) {
  return core_->Send({{"type", "resize"}, {"stream", stream_}, {"rows", rows}, {"cols", cols}});
}
Result<void> Session::Signal(int signal) {
  return core_->Send({{"type", "signal"}, {"stream", stream_}, {"signal", signal}});
}

Result<ExecEvent> Session::Next() {
  auto e = queue_->Pop();
  if (!e) return Unavailable("the connection to the guest agent closed before the command ended");
  if (e->kind == ExecEvent::Kind::kExit) exited_ = true;
  return std::move(*e);
}

class Client : public AgentClient {
 public:
  Client(UniqueFd fd, ClientOptions options)
      : core_(std::make_shared<Core>(std::move(fd), std::move(options))) {
    core_->Start();
  }
  ~Client() override { core_->Shutdown(); }

  Result<Hello> WaitHello(std::chrono::milliseconds timeout) override {
    return core_->WaitHello(timeout);
  }
  Result<json> Call(const std::string& op, json args, std::chrono::milliseconds timeout) override {
    return core_->Call(op, std::move(args), timeout);
  }
  Result<std::unique_ptr<ExecSession>> Exec(const ExecRequest& request) override {
    return core_->Exec(request);
  }
  bool closed() const override { return core_->closed(); }

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace

std::unique_ptr<AgentClient> NewAgentClient(UniqueFd stream, ClientOptions options) {
  return std::make_unique<Client>(std::move(stream), std::move(options));
}

}  // namespace vmctl::agent
