#ifndef VMCTL_CONTROLLER_ACCOUNTS_H_
#define VMCTL_CONTROLLER_ACCOUNTS_H_

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "controller/account_service.h"
#include "controller/mailer.h"
#include "model/email.h"
#include "store/store.h"

namespace vmctl::controller {

enum class RegistrationMode {
  kOpen,       // any key registers any valid email at once
  kAllowlist,  // only emails the allow-list matches, at once
  kVerify,     // a code is mailed; the key waits until it comes back (allow-list applies if set)
  kClosed,     // nobody registers
};
// "open", "allowlist", "verify", "closed". kInvalidArgument otherwise. Pure.
Result<RegistrationMode> ParseRegistrationMode(std::string_view text);

struct AccountsOptions {
  RegistrationMode mode = RegistrationMode::kClosed;
  EmailAllowList allow;
  // Registrations (attempts with a valid email) per source address in `rate_window`.
  int max_registrations_per_source = 5;
  std::chrono::seconds rate_window = std::chrono::hours(1);
  std::chrono::seconds pending_ttl = std::chrono::hours(24);
  // Wrong codes before a pending registration is dropped.
  int max_verify_attempts = 5;
  // How users reach the gateway ("ssh -p 2222 host"), for the mail's instructions.
  std::string ssh_command = "ssh -p 2222 localhost";
  // Where the HTTPS proxy serves confirmations ("https://host/verify"); empty: the mail has no
  // link, only the code.
  std::string verify_url;
  // Seconds since the epoch; tests move it.
  std::function<int64_t()> now;
};

// AccountService on the store, with the registration policy of `options`. Does not own the
// store or the mailer (needed only for kVerify; may be null otherwise). The rate limiter's
// counts are kept in memory: a restart forgets them.
class Accounts final : public AccountService {
 public:
  Accounts(Store& store, Mailer* mailer, AccountsOptions options);

  std::optional<std::string> Owner(const std::string& fingerprint) override;
  Result<User> GetUser(const std::string& id) override;
  Result<RegistrationResult> Register(std::string_view email, const KeyLine& key,
                                      const std::string& source) override;
  Result<User> Verify(const KeyLine& key, std::string_view code) override;
  Result<std::vector<SshKey>> Keys(const std::string& user_id) override;
  Result<SshKey> AddKey(const std::string& user_id, const KeyLine& key) override;
  Result<void> RemoveKey(const std::string& user_id, const std::string& fingerprint) override;

 private:
  int64_t Now() const;
  // Counts one registration from `source`, or kResourceExhausted over the limit.
  Result<void> Admit(const std::string& source);
  Result<User> CreateUser(const std::string& email, const KeyLine& key);
  Result<RegistrationResult> StartVerification(const std::string& email, const KeyLine& key,
                                               const std::string& source);

  Store& store_;
  Mailer* mailer_;
  AccountsOptions options_;
  std::mutex mu_;  // guards attempts_ and serializes a key's verification
  std::map<std::string, std::deque<int64_t>> attempts_;  // source -> times, oldest first
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_ACCOUNTS_H_
