// libFuzzer target for web authentication's parsing of outside input: durations (`token new
// --expires`, the lifetime flags), the form of presented secrets, and the secrets and host names
// themselves against a real Auth on a SQLite store: no input ever authenticates, and a host
// ticket works only on the host it was made for. The first byte picks the check.

#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "controller/auth.h"
#include "model/web_auth.h"
#include "store/sqlite/sqlite_store.h"

namespace {

using vmctl::controller::Auth;

void CheckDuration(std::string_view text) {
  auto parsed = vmctl::ParseDuration(text);
  if (!parsed.ok()) return;
  if (parsed->count() <= 0 || parsed->count() > int64_t{10} * 366 * 86400) std::abort();
  if (vmctl::FormatDuration(*parsed).empty()) std::abort();
}

void CheckSecretForm(std::string_view text) {
  if (vmctl::controller::IsWellFormedSecret(text) && text.size() != 43) std::abort();
}

// One store and one logged-in session for the whole run, in a private directory in /dev/shm.
struct World {
  World() {
    std::string tmpl = "/dev/shm/auth_fuzz.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    dir = tmpl;
    store = std::move(vmctl::OpenSqliteStore(dir / "vmctl.db")).value();
    if (!store->CreateUser(vmctl::User{"u1", "alice", "alice@example.com", 1}).ok()) std::abort();
    vmctl::controller::AuthOptions options;
    options.max_wrong_secrets = 1 << 30;  // every input is judged, none rate-limited
    auth = std::make_unique<Auth>(*store, options);
    auto link = auth->CreateLoginLink("u1");
    if (!link.ok()) std::abort();
    auto grant = auth->RedeemLoginLink(link->url.substr(link->url.rfind('/') + 1), "fuzz");
    if (!grant.ok()) std::abort();
    session = grant->session_id;
  }
  ~World() {
    auth.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }
  std::filesystem::path dir;
  std::unique_ptr<vmctl::Store> store;
  std::unique_ptr<Auth> auth;
  std::string session;
};

World& TheWorld() {
  static World world;
  return world;
}

void CheckSecrets(std::string_view input) {
  Auth& auth = *TheWorld().auth;
  if (auth.AuthenticateToken(input, "fuzz").ok()) std::abort();
  if (auth.RedeemLoginLink(input, "fuzz").ok()) std::abort();
  if (auth.RedeemHostTicket(input, "web.vmctl.localhost", "fuzz").ok()) std::abort();
  if (auth.AuthenticateSession(input, "vmctl.localhost").ok()) std::abort();
}

void CheckTicketHost(std::string_view host) {
  World& world = TheWorld();
  auto ticket = world.auth->CreateHostTicket(world.session, host);
  if (!ticket.ok()) return;
  if (host.empty() || host == "vmctl.localhost") std::abort();
  if (world.auth->RedeemHostTicket(*ticket, "other.vmctl.localhost", "fuzz").ok() &&
      host != "other.vmctl.localhost") {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      CheckDuration(input);
      break;
    case 1:
      CheckSecretForm(input);
      break;
    case 2:
      CheckSecrets(input);
      break;
    case 3:
      CheckTicketHost(input);
      break;
  }
  return 0;
}
