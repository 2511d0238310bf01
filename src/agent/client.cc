#include "agent/client.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/frame.h"
#include "base/io.h"

namespace vmctl::agent {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Hello HelloFrom(const json& f) {
  return {f.value("agent_version", ""), f.value("kernel", ""), f.value("hostname", "")};
}

class Core;

class Session : public ExecSession {
 public:
  Session(std::shared_ptr<Core> core, int64_t stream) : core_(std::move(core)), stream_(stream) {}
  ~Session() override;

  Result<void> WriteStdin(std::string_view data) override;
  Result<void> CloseStdin() override;
  Result<void> Resize(int rows, int cols) override;
  Result<void> Signal(int signal) override;
  Result<ExecEvent> Next() override;

  void Push(ExecEvent event) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(std::move(event));
    }
    cv_.notify_all();
  }
  void Close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::shared_ptr<Core> core_;
  int64_t stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ExecEvent> events_;
  bool closed_ = false;
  bool exited_ = false;
};

// The connection shared by the client and its sessions: sessions may outlive the client object
// (the daemon drops a VM's client when the VM stops), and then see the stream as closed.
class Core : public std::enable_shared_from_this<Core> {
 public:
  explicit Core(UniqueFd fd) : fd_(std::move(fd)) {}

  void Start() {
    reader_ = std::thread([self = this] { self->ReadLoop(); });
  }

  void Shutdown() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    if (reader_.joinable()) reader_.join();
  }

  Result<void> Send(const json& frame) {
    std::lock_guard lock(write_mu_);
    if (closed()) return Unavailable("agent connection closed");
    return WriteFrame(fd_.get(), frame);
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
    bool answered = cv_.wait_for(lock, timeout, [&] { return closed_ || !pending_[id].is_null(); });
    json reply = std::move(pending_[id]);
    pending_.erase(id);
    if (!answered || reply.is_null()) {
      if (closed_) return Unavailable(fmt::format("agent connection closed during '{}'", op));
      return DeadlineExceeded(fmt::format("the guest agent did not answer '{}' in time", op));
    }
    if (!reply.value("ok", false)) {
      const json& e = reply.contains("error") ? reply["error"] : json::object();
      return Error(ErrorCodeFromName(e.value("code", "internal")),
                   e.value("message", "the agent reported an error"));
    }
    reply.erase("id");
    reply.erase("ok");
    return reply;
  }

  Result<std::unique_ptr<ExecSession>> Exec(const ExecRequest& r) {
    int64_t id = NextId();
    auto session = std::make_unique<Session>(shared_from_this(), id);
    {
      std::lock_guard lock(mu_);
      sessions_[id] = session.get();
    }
    json args = {{"argv", r.argv}, {"env", r.env},   {"cwd", r.cwd},
                 {"tty", r.tty},   {"rows", r.rows}, {"cols", r.cols}};
    // The request id doubles as the stream id, so output that races the reply is not lost.
    int64_t call_id = id;
    args["id"] = call_id;
    args["op"] = "exec";
    {
      std::lock_guard lock(mu_);
      pending_[call_id];
    }
    if (auto sent = Send(args); !sent.ok()) {
      Forget(id);
      return sent.error();
    }
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30),
                 [&] { return closed_ || !pending_[call_id].is_null(); });
    json reply = std::move(pending_[call_id]);
    pending_.erase(call_id);
    lock.unlock();
    if (reply.is_null()) {
      Forget(id);
      return closed() ? Unavailable("agent connection closed during exec")
                      : DeadlineExceeded("the guest agent did not start the command in time");
    }
    if (!reply.value("ok", false)) {
      Forget(id);
      const json& e = reply.contains("error") ? reply["error"] : json::object();
      return Error(ErrorCodeFromName(e.value("code", "internal")),
                   e.value("message", "exec failed"));
    }
    return std::unique_ptr<ExecSession>(std::move(session));
  }

  void Forget(int64_t stream) {
    std::lock_guard lock(mu_);
    sessions_.erase(stream);
  }

 private:
  int64_t NextId() {
    std::lock_guard lock(mu_);
    return next_id_++;
  }

  void ReadLoop() {
    FrameDecoder decoder;
    for (;;) {
      auto data = ReadSome(fd_.get(), 65536);
      if (!data.ok() || data->empty()) break;
      decoder.Feed(*data);
      bool bad = false;
      for (;;) {
        auto frame = decoder.Next();
        if (!frame.ok()) {
          bad = true;
          break;
        }
        if (!frame->has_value()) break;
        Dispatch(**frame);
      }
      if (bad) break;
    }
    std::lock_guard lock(mu_);
    closed_ = true;
    for (auto& [id, s] : sessions_) s->Close();
    cv_.notify_all();
  }

  // Caller holds mu_.
  void FailInFlight(const std::string& why) {
    for (auto& [id, reply] : pending_) {
      // A request already answered completed before the restart; only waiting ones fail.
      if (reply.is_null()) {
        reply = {{"ok", false}, {"error", {{"code", "unavailable"}, {"message", why}}}};
      }
    }
    for (auto& [id, s] : sessions_) s->Close();
    sessions_.clear();
  }

  void Dispatch(const json& f) {
    std::lock_guard lock(mu_);
    std::string type = f.value("type", "");
    if (type == "hello") {
      // A hello after the first one means the agent started a new session on this same stream
      // (it restarted, or saw the host leave): everything in flight on the old session is gone.
      if (hello_) FailInFlight("the guest agent restarted its session");
      hello_ = HelloFrom(f);
      cv_.notify_all();
      return;
    }
    if (f.contains("id") && f.contains("ok")) {
      int64_t id = f.value("id", int64_t{0});
      if (hello_requests_.erase(id)) {
        if (f.value("ok", false)) hello_ = HelloFrom(f);
      } else if (auto it = pending_.find(id); it != pending_.end()) {
        it->second = f;
      }
      cv_.notify_all();
      return;
    }
    auto it = sessions_.find(f.value("stream", int64_t{-1}));
    if (it == sessions_.end()) return;  // a stream of a session nobody reads any more
    if (type == "stdout" || type == "stderr") {
      auto data = Base64Decode(f.value("data", ""));
      if (!data.ok()) return;
      it->second->Push({type == "stdout" ? ExecEvent::Kind::kStdout : ExecEvent::Kind::kStderr,
                        std::move(data).value(), 0});
    } else if (type == "exit") {
      it->second->Push({ExecEvent::Kind::kExit, "", f.value("code", -1)});
      sessions_.erase(it);
    }
  }

  UniqueFd fd_;
  std::thread reader_;
  std::mutex write_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  std::optional<Hello> hello_;
  std::set<int64_t> hello_requests_;
  std::map<int64_t, json> pending_;
  std::map<int64_t, Session*> sessions_;
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
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return !events_.empty() || closed_; });
  if (events_.empty()) {
    return Unavailable("the connection to the guest agent closed before the command ended");
  }
  ExecEvent e = std::move(events_.front());
  events_.pop_front();
  if (e.kind == ExecEvent::Kind::kExit) exited_ = true;
  return e;
}

class Client : public AgentClient {
 public:
  explicit Client(UniqueFd fd) : core_(std::make_shared<Core>(std::move(fd))) { core_->Start(); }
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

std::unique_ptr<AgentClient> NewAgentClient(UniqueFd stream) {
  return std::make_unique<Client>(std::move(stream));
}

}  // namespace vmctl::agent
