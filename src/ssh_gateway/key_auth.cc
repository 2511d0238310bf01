#include "ssh_gateway/key_auth.h"

namespace vmctl::ssh_gateway {

KeyAuth::Reply KeyAuth::OnPublicKey(const std::string& fingerprint, const std::string& public_key,
                                    bool signed_ok) {
  offered_.insert(fingerprint);
  if (static_cast<int>(offered_.size()) > kMaxKeys) return Reply::kFailure;
  if (proven_unknown_.count(fingerprint)) return Reply::kFailure;
  std::optional<std::string> user = lookup_(fingerprint);
  if (!signed_ok) return Reply::kPkOk;
  if (user) {
    user_id_ = *user;
    return Reply::kSuccess;
  }
  proven_unknown_.insert(fingerprint);
  if (registration_key_.empty()) {
    registration_key_ = public_key;
    registration_fingerprint_ = fingerprint;
  }
  return Reply::kPartial;
}

KeyAuth::Reply KeyAuth::OnKeyboardInteractive() {
  return KeyboardInteractiveOffered() ? Reply::kSuccess : Reply::kFailure;
}

}  // namespace vmctl::ssh_gateway
