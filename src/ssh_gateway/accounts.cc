#include "ssh_gateway/accounts.h"

#include <fmt/format.h>
#include <libssh/libssh.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>

#include "model/vm.h"

namespace vmctl::ssh_gateway {
namespace {

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A user name from an email's local part: lowercase letters, digits and '-', starting with a
// letter, at most 24 characters.
std::string BaseName(std::string_view email) {
  std::string name;
  for (char c : email.substr(0, email.find('@'))) {
    if (name.size() >= 24) break;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      name += c;
    } else if (!name.empty() && name.back() != '-') {
      name += '-';
    }
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  if (name.empty() || !(name[0] >= 'a' && name[0] <= 'z')) name = "user" + name;
  return name;
}

}  // namespace

std::string Fingerprint(ssh_key key) {
  unsigned char* hash = nullptr;
  size_t len = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &len) != SSH_OK) return "";
  char* fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, len);
  ssh_clean_pubkey_hash(&hash);
  std::string out = fp ? fp : "";
  ssh_string_free_char(fp);
  return out;
}

Result<PublicKey> ParsePublicKey(std::string_view line) {
  std::istringstream words{std::string(line)};
  std::string type, base64, comment;
  words >> type >> base64;
  std::getline(words, comment);
  auto bad = [&] {
    return InvalidArgument(
        "not an SSH public key (expected a line like 'ssh-ed25519 AAAA... "
        "you@host', as in ~/.ssh/id_ed25519.pub)");
  };
  if (type.empty() || base64.empty()) return bad();
  ssh_key raw = nullptr;
  if (ssh_pki_import_pubkey_base64(base64.c_str(), ssh_key_type_from_name(type.c_str()), &raw) !=
      SSH_OK) {
    return bad();
  }
  std::unique_ptr<ssh_key_struct, decltype(&ssh_key_free)> key(raw, ssh_key_free);
  PublicKey out{Fingerprint(key.get()), type + " " + base64};
  if (out.fingerprint.empty()) return bad();
  auto start = comment.find_first_not_of(" \t");
  if (start != std::string::npos) out.line += " " + comment.substr(start);
  return out;
}

Result<void> ValidateEmail(std::string_view email) {
  auto at = email.find('@');
  bool ok = !email.empty() && email.size() <= 254 && at != std::string_view::npos && at > 0 &&
            email.find('@', at + 1) == std::string_view::npos &&
            email.find_first_of(" \t\r\n,;<>\"'") == std::string_view::npos;
  if (ok) {
    std::string_view domain = email.substr(at + 1);
    auto dot = domain.find('.');
    ok = dot != std::string_view::npos && dot > 0 && !domain.ends_with('.');
  }
  if (!ok) return InvalidArgument(fmt::format("'{}' is not an email address", email));
  return Ok();
}

std::optional<std::string> Accounts::Owner(const std::string& fingerprint) {
  auto key = store_.GetSshKey(fingerprint);
  if (!key.ok()) {
    if (key.error().code() != ErrorCode::kNotFound) {
      spdlog::error("ssh gateway: looking up key {}: {}", fingerprint, key.error().message());
    }
    return std::nullopt;
  }
  return key->user_id;
}

Result<User> Accounts::Register(std::string_view email, const PublicKey& key) {
  VMCTL_TRY(ValidateEmail(email));
  if (store_.GetUserByEmail(email).ok()) {
    return AlreadyExists(fmt::format(
        "{} is already registered; add this key from a session of that user with `ssh-key add`",
        email));
  }
  if (Owner(key.fingerprint)) {
    return AlreadyExists(fmt::format("the SSH key {} is already registered", key.fingerprint));
  }
  std::string base = BaseName(email);
  // Same random form as VM ids: 12 hex digits.
  User user{NewVmId(), base, std::string(email), Now()};
  for (int n = 2; store_.GetUserByName(user.name).ok(); ++n) {
    user.name = fmt::format("{}{}", base, n);
  }
  VMCTL_TRY(store_.CreateUser(user));
  auto added = store_.AddSshKey(SshKey{key.fingerprint, user.id, key.line, Now()});
  if (!added.ok()) return added.error();
  return user;
}

Result<std::vector<SshKey>> Accounts::Keys(const std::string& user_id) {
  return store_.ListSshKeys(user_id);
}

Result<SshKey> Accounts::AddKey(const std::string& user_id, std::string_view line) {
  VMCTL_ASSIGN_OR_RETURN(PublicKey key, ParsePublicKey(line));
  SshKey stored{key.fingerprint, user_id, key.line, Now()};
  VMCTL_TRY(store_.AddSshKey(stored));
  return stored;
}

Result<void> Accounts::RemoveKey(const std::string& user_id, const std::string& fingerprint) {
  VMCTL_ASSIGN_OR_RETURN(auto keys, store_.ListSshKeys(user_id));
  bool mine = false;
  for (const auto& k : keys) mine = mine || k.fingerprint == fingerprint;
  if (!mine) return NotFound(fmt::format("you have no SSH key {}", fingerprint));
  if (keys.size() == 1) {
    return FailedPrecondition(
        "that is your last SSH key; add another first (`ssh-key add`) so you can still log in");
  }
  return store_.RemoveSshKey(fingerprint);
}

}  // namespace vmctl::ssh_gateway
