#include "controller/accounts.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <random>

#include "model/vm.h"

namespace vmctl::controller {
namespace {

// Sources tracked before old ones are swept out, so spoofed-looking floods cannot grow the map.
constexpr size_t kSweepSources = 4096;
constexpr int kCodeLength = 8;
// No 0/O or 1/I: the code is typed from a mail.
constexpr std::string_view kCodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

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

std::string NewCode() {
  std::random_device random;  // the kernel's CSPRNG on Linux
  std::uniform_int_distribution<size_t> pick(0, kCodeAlphabet.size() - 1);
  std::string code;
  for (int i = 0; i < kCodeLength; ++i) code += kCodeAlphabet[pick(random)];
  return code;
}

// Case-insensitive, in time independent of where the codes differ.
bool SameCode(std::string_view typed, std::string_view code) {
  if (typed.size() != code.size()) return false;
  unsigned diff = 0;
  for (size_t i = 0; i < code.size(); ++i) {
    char c = typed[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    diff |= static_cast<unsigned char>(c ^ code[i]);
  }
  return diff == 0;
}

std::string Duration(std::chrono::seconds s) {
  auto count = [](int64_t n, std::string_view unit) {
    return fmt::format("{} {}{}", n, unit, n == 1 ? "" : "s");
  };
  if (s.count() % 3600 == 0) return count(s.count() / 3600, "hour");
  if (s.count() % 60 == 0) return count(s.count() / 60, "minute");
  return count(s.count(), "second");
}

}  // namespace

Result<RegistrationMode> ParseRegistrationMode(std::string_view text) {
  if (text == "open") return RegistrationMode::kOpen;
  if (text == "allowlist") return RegistrationMode::kAllowlist;
  if (text == "verify") return RegistrationMode::kVerify;
  if (text == "closed") return RegistrationMode::kClosed;
  return InvalidArgument(
      fmt::format("unknown registration mode '{}' (use open, allowlist, verify or closed)", text));
}

Accounts::Accounts(Store& store, Mailer* mailer, AccountsOptions options)
    : store_(store), mailer_(mailer), options_(std::move(options)) {}

int64_t Accounts::Now() const {
  if (options_.now) return options_.now();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<std::string> Accounts::Owner(const std::string& fingerprint) {
  auto key = store_.GetSshKey(fingerprint);
  if (!key.ok()) {
    if (key.error().code() != ErrorCode::kNotFound) {
      spdlog::error("accounts: looking up key {}: {}", fingerprint, key.error().message());
    }
    return std::nullopt;
  }
  return key->user_id;
}

Result<User> Accounts::GetUser(const std::string& id) { return store_.GetUser(id); }

Result<void> Accounts::Admit(const std::string& source) {
  std::lock_guard lock(mu_);
  const int64_t now = Now();
  const int64_t since = now - options_.rate_window.count();
  auto expire = [&](std::deque<int64_t>& times) {
    while (!times.empty() && times.front() <= since) times.pop_front();
  };
  if (attempts_.size() > kSweepSources) {
    for (auto it = attempts_.begin(); it != attempts_.end();) {
      expire(it->second);
      it = it->second.empty() ? attempts_.erase(it) : std::next(it);
    }
  }
  auto& times = attempts_[source];
  expire(times);
  if (static_cast<int>(times.size()) >= options_.max_registrations_per_source) {
    int64_t wait = times.front() - since;
    return ResourceExhausted(fmt::format(
        "too many registrations from {}: at most {} in {}; try again in {} minutes", source,
        options_.max_registrations_per_source, Duration(options_.rate_window), (wait + 59) / 60));
  }
  times.push_back(now);
  return Ok();
}

Result<RegistrationResult> Accounts::Register(std::string_view email, const KeyLine& key,
                                              const std::string& source) {
  if (options_.mode == RegistrationMode::kClosed) {
    return FailedPrecondition(
        "registration is closed on this host; ask its operator for an account");
  }
  VMCTL_ASSIGN_OR_RETURN(std::string normalized, NormalizeEmail(email));
  VMCTL_TRY(Admit(source));
  bool listed = options_.mode == RegistrationMode::kAllowlist ||
                (options_.mode == RegistrationMode::kVerify && !options_.allow.empty());
  if (listed && !options_.allow.Allows(normalized)) {
    return FailedPrecondition(fmt::format(
        "{} may not register on this host (only addresses its operator allows may)", normalized));
  }
  if (store_.GetUserByEmail(normalized).ok()) {
    return AlreadyExists(fmt::format(
        "{} is already registered; add this key from a session of that user with `ssh-key add`",
        normalized));
  }
  if (Owner(key.fingerprint)) {
    return AlreadyExists(fmt::format("the SSH key {} is already registered", key.fingerprint));
  }
  if (options_.mode == RegistrationMode::kVerify) {
    return StartVerification(normalized, key, source);
  }
  VMCTL_ASSIGN_OR_RETURN(User user, CreateUser(normalized, key));
  return RegistrationResult{user, false, normalized, 0};
}

Result<RegistrationResult> Accounts::StartVerification(const std::string& email, const KeyLine& key,
                                                       const std::string& source) {
  if (!mailer_) return Internal("registration by verification has no mailer");
  const int64_t now = Now();
  VMCTL_TRY(store_.DeleteExpiredPendingRegistrations(now));
  PendingRegistration pending{key.fingerprint,
                              key.line,
                              email,
                              NewCode(),
                              source,
                              now,
                              now + options_.pending_ttl.count(),
                              0};
  // Written first: the code must be valid once the mail can arrive. A newer registration of the
  // same key replaces the older one, code and all.
  VMCTL_TRY(store_.PutPendingRegistration(pending));
  std::string body = fmt::format(
      "Someone, hopefully you, asked to register the SSH key\n\n  {}\n\nfor vmctl with this "
      "address. To confirm, run this with that key:\n\n  {} verify {}\n\n",
      key.fingerprint, options_.ssh_command, pending.code);
  if (!options_.verify_url.empty()) {
    body += fmt::format("or open\n\n  {}?code={}\n\n", options_.verify_url, pending.code);
  }
  body += fmt::format(
      "The code is valid for {}. If you did not ask for this, ignore this mail: nothing is "
      "registered without the code.\n",
      Duration(options_.pending_ttl));
  auto sent = mailer_->Send(Mail{email, "Your vmctl verification code", body});
  if (!sent.ok()) {
    (void)store_.DeletePendingRegistration(key.fingerprint);
    return sent.error().WithContext("sending the verification mail");
  }
  return RegistrationResult{std::nullopt, true, email, pending.expires_at};
}

Result<User> Accounts::Verify(const KeyLine& key, std::string_view code) {
  // One verification at a time: two tries of one code must not both count as the first.
  std::lock_guard lock(mu_);
  const int64_t now = Now();
  VMCTL_TRY(store_.DeleteExpiredPendingRegistrations(now));
  auto pending = store_.GetPendingRegistration(key.fingerprint);
  if (!pending.ok()) {
    if (pending.error().code() != ErrorCode::kNotFound) return pending.error();
    return FailedPrecondition(fmt::format(
        "no registration is waiting for this key (codes expire after {}); register first: {} "
        "register you@example.com",
        Duration(options_.pending_ttl), options_.ssh_command));
  }
  if (!SameCode(code, pending->code)) {
    if (++pending->failed_attempts >= options_.max_verify_attempts) {
      VMCTL_TRY(store_.DeletePendingRegistration(key.fingerprint));
      return InvalidArgument("wrong code, too many times: register again for a new one");
    }
    VMCTL_TRY(store_.PutPendingRegistration(*pending));
    return InvalidArgument(fmt::format("wrong code ({} more tries)",
                                       options_.max_verify_attempts - pending->failed_attempts));
  }
  return CreateUser(pending->email, KeyLine{pending->fingerprint, pending->public_key});
}

Result<User> Accounts::CreateUser(const std::string& email, const KeyLine& key) {
  std::string base = BaseName(email);
  // Same random form as VM ids: 12 hex digits.
  User user{NewVmId(), base, email, Now()};
  // Another registration may take the free name between the lookup and the insert: try on.
  for (int attempt = 0;; ++attempt) {
    for (int n = 2; store_.GetUserByName(user.name).ok(); ++n) {
      user.name = fmt::format("{}{}", base, n);
    }
    auto created =
        store_.CreateUserWithKey(user, SshKey{key.fingerprint, user.id, key.line, user.created_at});
    if (created.ok()) return user;
    bool name_clash = created.error().code() == ErrorCode::kAlreadyExists &&
                      created.error().message().starts_with("a user named");
    if (!name_clash || attempt == 3) return created.error();
  }
}

Result<std::vector<SshKey>> Accounts::Keys(const std::string& user_id) {
  return store_.ListSshKeys(user_id);
}

Result<SshKey> Accounts::AddKey(const std::string& user_id, const KeyLine& key) {
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

}  // namespace vmctl::controller
