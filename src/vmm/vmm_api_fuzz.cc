// libFuzzer target for what a Cloud Hypervisor or Firecracker API socket answers: the input,
// after its first byte, is the whole HTTP response (status line, headers, body) to one call of
// the first byte's choosing, parsed by HttpUnix and then by the VMM's client (error bodies,
// JSON answers). A thread serves it on a Unix socket in a private directory.

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <thread>

#include "base/io.h"
#include "base/unique_fd.h"
#include "vmm/cloud_hypervisor/ch_api.h"
#include "vmm/firecracker/fc_api.h"

namespace {

namespace ch = vmctl::vmm::cloud_hypervisor;
namespace fc = vmctl::vmm::firecracker;

// One listening socket for the whole run, removed with its directory at exit.
class Listener {
 public:
  Listener() {
    char dir[] = "/tmp/vmctl-vmm-api-fuzz-XXXXXX";
    if (::mkdtemp(dir) == nullptr) std::abort();
    dir_ = dir;
    socket_ = dir_ / "api.sock";
    fd_ = vmctl::UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_.get(), 4) != 0) {
      std::abort();
    }
  }
  ~Listener() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::filesystem::path& socket() const { return socket_; }

  // Answers the next connection with `answer` once its request head has arrived, then closes.
  void ServeOnce(std::string_view answer) const {
    vmctl::UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn.valid()) return;
    std::string request;
    while (request.find("\r\n\r\n") == std::string::npos) {
      auto data = vmctl::ReadSome(conn.get(), 4096);
      if (!data.ok() || data->empty()) return;
      request += *data;
    }
    (void)vmctl::WriteAll(conn.get(), answer);
  }

 private:
  std::filesystem::path dir_;
  std::filesystem::path socket_;
  vmctl::UniqueFd fd_;
};

const Listener& TheListener() {
  static const Listener listener;
  return listener;
}

void Call(uint8_t which, const std::filesystem::path& socket) {
  switch (which % 4) {
    case 0:
      (void)ch::Client(socket).Info();
      break;
    case 1:
      (void)ch::Client(socket).Boot();
      break;
    case 2:
      (void)fc::Client(socket).Describe();
      break;
    case 3:
      (void)fc::Client(socket).Send(fc::PauseRequest(true));
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 64 * 1024) return 0;
  const Listener& listener = TheListener();
  std::string_view answer(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::thread server([&] { listener.ServeOnce(answer); });
  Call(data[0], listener.socket());
  server.join();
  return 0;
}
