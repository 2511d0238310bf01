#ifndef VMCTL_SSH_GATEWAY_KEY_AUTH_H_
#define VMCTL_SSH_GATEWAY_KEY_AUTH_H_

#include <functional>
#include <optional>
#include <set>
#include <string>

namespace vmctl::ssh_gateway {

// Public-key authentication of one connection, as a pure state machine (the server feeds it what
// libssh parsed and sends what it answers).
//
// A known key logs in as its user. An unknown key may register, but only once the client has
// proven it holds it, and never ahead of a known key the client offers later. OpenSSH offers its
// keys one by one and stops at the first success, so an unknown key is answered with *partial*
// success: the client resets and offers its keys again; keys already seen are then refused, so it
// moves on through the rest. A known key among them succeeds as its user. When none is known the
// client falls back to keyboard-interactive (offered only then), which succeeds with no prompts
// into the registration lobby for the first unknown key it proved. Checked against OpenSSH 9.2.
//
// Not thread-safe: one per connection.
class KeyAuth {
 public:
  // The user id owning a key fingerprint ("SHA256:..."), if any.
  using Lookup = std::function<std::optional<std::string>(const std::string& fingerprint)>;

  enum class Reply {
    kPkOk,     // "this key would do": the client signs next
    kSuccess,  // authenticated
    kPartial,  // proven but not enough: keep offering keys
    kFailure,  // try something else
  };

  // Keys a client may offer before being refused outright.
  static constexpr int kMaxKeys = 16;

  explicit KeyAuth(Lookup lookup) : lookup_(std::move(lookup)) {}

  // A "publickey" request; `signed_ok` when it carried a signature libssh verified.
  // `public_key` is the key as an authorized_keys line.
  Reply OnPublicKey(const std::string& fingerprint, const std::string& public_key, bool signed_ok);
  // Whether keyboard-interactive is on offer: a proven unknown key waits to register.
  bool KeyboardInteractiveOffered() const { return !registration_key_.empty(); }
  // A keyboard-interactive request: success into the lobby when offered.
  Reply OnKeyboardInteractive();

  // After kSuccess: the user's id, or empty for the registration lobby.
  const std::string& user_id() const { return user_id_; }
  // The lobby's key (authorized_keys line and fingerprint).
  const std::string& registration_key() const { return registration_key_; }
  const std::string& registration_fingerprint() const { return registration_fingerprint_; }

 private:
  Lookup lookup_;
  std::set<std::string> offered_;         // every fingerprint seen
  std::set<std::string> proven_unknown_;  // signed, unknown, answered with partial success
  std::string user_id_;
  std::string registration_key_, registration_fingerprint_;
};

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_KEY_AUTH_H_
