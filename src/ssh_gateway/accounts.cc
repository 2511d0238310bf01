#include "ssh_gateway/accounts.h"

#include <fmt/format.h>
#include <libssh/libssh.h>

#include <memory>
#include <sstream>

namespace vmctl::ssh_gateway {

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

}  // namespace vmctl::ssh_gateway
