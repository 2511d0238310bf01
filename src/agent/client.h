#ifndef VMCTL_AGENT_CLIENT_H_
#define VMCTL_AGENT_CLIENT_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vmctl::agent {

// Host side of the guest agent protocol (docs/agent-protocol.md).

struct Hello {
  std::string agent_version;
  std::string kernel;  // uname -r in the guest
  std::string hostname;
};

struct ExecRequest {
  std::vector<std::string> argv;  // argv[0] searched in the guest's PATH
  std::map<std::string, std::string> env;
  std::string cwd;  // empty: "/"
  bool tty = false;
  int rows = 24, cols = 80;  // with tty
};

struct ExecEvent {
  enum class Kind { kStdout, kStderr, kExit } kind;
  std::string data;   // kStdout / kStderr
  int exit_code = 0;  // kExit: the process's status, 128+N when killed by signal N
};

// One running process in the guest. Thread-safe: one thread may block in Next() while others
// write stdin, resize or signal.
class ExecSession {
 public:
  virtual ~ExecSession() = default;
  virtual Result<void> WriteStdin(std::string_view data) = 0;
  virtual Result<void> CloseStdin() = 0;
  virtual Result<void> Resize(int rows, int cols) = 0;
  virtual Result<void> Signal(int signal) = 0;
  // Next output or the exit event (always last). kUnavailable if the agent connection dropped
  // before the process exited.
  virtual Result<ExecEvent> Next() = 0;
};

// A connection to one VM's agent, multiplexing requests and exec streams over one byte stream.
// Thread-safe. Owns the fd and a reader thread; destroying it closes the connection (the guest
// agent then kills the processes this connection started). Every frame from the guest is checked
// (agent/protocol.h); a violation closes the connection, and the owner connects again.
class AgentClient {
 public:
  virtual ~AgentClient() = default;

  // Waits for the agent to identify itself (the agent's boot-time hello frame, or the answer to
  // a hello request). kDeadlineExceeded on timeout, kUnavailable if the stream closed.
  virtual Result<Hello> WaitHello(std::chrono::milliseconds timeout) = 0;
  // One request/response; args are merged into the request frame. The agent's error answers come
  // back as errors with the agent's code and message.
  virtual Result<nlohmann::json> Call(const std::string& op, nlohmann::json args,
                                      std::chrono::milliseconds timeout) = 0;
  virtual Result<std::unique_ptr<ExecSession>> Exec(const ExecRequest& request) = 0;
  // True once the stream has closed (guest rebooted, VMM died, host side disconnected).
  virtual bool closed() const = 0;
};

// Limits on what one guest can make the daemon hold or do (docs/agent-protocol.md, "Limits").
struct ClientOptions {
  // Output bytes an exec stream buffers unread before the reader stops reading the connection:
  // back-pressure that reaches the guest agent, which then stops reading the process.
  size_t max_stream_buffer = 4 << 20;
  // Sustained frames and bytes per second the reader accepts; faster guests are slowed down.
  double max_frames_per_second = 10000;
  double max_bytes_per_second = 64 << 20;
  // Called on the reader thread when the guest broke the protocol (a frame of the wrong shape or
  // size), once the client has dropped the connection (closed() is true). It must not call into
  // this client.
  std::function<void(const Error&)> on_violation;
};

// Starts a client on an already-connected stream (see vmm::Instance::ConnectAgent).
std::unique_ptr<AgentClient> NewAgentClient(UniqueFd stream, ClientOptions options = {});

}  // namespace vmctl::agent

#endif  // VMCTL_AGENT_CLIENT_H_
