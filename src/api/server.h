#ifndef VMCTL_API_SERVER_H_
#define VMCTL_API_SERVER_H_

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "controller/image_service.h"
#include "controller/vm_service.h"

namespace vmctl::api {

struct ServerOptions {
  std::filesystem::path socket_path;
  unsigned socket_mode = 0660;
  // Requests act as this user unless they carry X-Vmctl-User (the SSH gateway's authenticated
  // user). The socket's file mode is the access control.
  std::string owner = "admin";
  std::string backend_name;  // reported by /v1/health
};

// The REST/JSON API on a Unix socket (docs/api.md). One thread per connection; handlers block on
// the services. Thread-safe; Serve() runs the accept loop on the calling thread until Stop().
class Server {
 public:
  Server(controller::VmService& vms, controller::ImageService& images, ServerOptions options);
  ~Server();

  // Binds the socket. kAlreadyExists if another daemon answers on it.
  Result<void> Listen();
  void Serve();
  // Makes Serve() return; in-flight requests finish on their own threads.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vmctl::api

#endif  // VMCTL_API_SERVER_H_
