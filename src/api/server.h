#ifndef VMCTL_API_SERVER_H_
#define VMCTL_API_SERVER_H_

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "controller/auth_service.h"
#include "controller/image_service.h"
#include "controller/sharing_service.h"
#include "controller/vm_service.h"

namespace vmctl::api {

struct ServerOptions {
  std::filesystem::path socket_path;
  unsigned socket_mode = 0660;
  // Requests act as this user unless they carry X-Vmctl-User (the SSH gateway's authenticated
  // user). The socket's file mode is the access control.
  std::string owner = "admin";
  std::string backend_name;  // reported by /v1/health
  // A request's header and body must arrive within header_timeout of its first byte, and a
  // kept-alive connection is closed after idle_timeout without a request; so a client that sends
  // half a request cannot hold a connection (and its thread) for long.
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  // Connections served at once (exec and followed logs included); more are answered 503.
  int max_connections = 256;
  // GET /v1/ca answers with this PEM (the HTTPS front end's local CA); empty: 404.
  std::string local_ca_pem;
};

// The REST/JSON API on a Unix socket (docs/api.md). One thread per connection; handlers block on
// the services. Thread-safe; Serve() runs the accept loop on the calling thread until Stop().
// Nothing a client sends ends more than its own connection: each connection thread catches at
// its boundary.
class Server {
 public:
  // Does not take ownership; the services must outlive the server.
  Server(controller::VmService& vms, controller::ImageService& images,
         controller::SharingService& sharing, controller::AuthService& auth, ServerOptions options);
  ~Server();

  // Binds the socket. kAlreadyExists if another daemon answers on it.
  Result<void> Listen();
  void Serve();
  // Makes Serve() return, closes every connection and waits until their threads are done with
  // the services (a request in a service call, such as a VM booting, finishes it first), so the
  // services may be destroyed after. Idempotent; callable from any thread.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmctl::api

#endif  // VMCTL_API_SERVER_H_
