#include "controller/auth.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>

namespace vmctl::controller {
namespace {

constexpr size_t kSecretBytes = 32;
constexpr size_t kSecretLength = 43;  // unpadded base64url of kSecretBytes
constexpr size_t kTokenIdBytes = 6;
// last_seen / last_used are written at most this often, so each request is not a write.
constexpr int64_t kTouchInterval = 60;
// Sources tracked before old ones are swept out, so a flood from many addresses stays bounded.
constexpr size_t kSweepSources = 4096;

// One message per kind of secret, whatever is wrong with it.
constexpr std::string_view kBadLink =
    "this login link is not valid (unknown, used or expired): run `login` for a new one";
constexpr std::string_view kBadSession = "not logged in (the session is unknown or has ended)";
constexpr std::string_view kBadTicket = "the host ticket is unknown, used or expired";
constexpr std::string_view kBadToken = "the token is unknown, expired or removed";

Result<std::string> RandomBytes(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    return Internal("the random number generator failed");
  }
  return bytes;
}

// kSecretBytes from the CSPRNG in unpadded base64url.
Result<std::string> NewSecret() {
  VMCTL_ASSIGN_OR_RETURN(std::string bytes, RandomBytes(kSecretBytes));
  std::array<unsigned char, 4 * ((kSecretBytes + 2) / 3) + 1> encoded{};
  int length = EVP_EncodeBlock(encoded.data(), reinterpret_cast<const unsigned char*>(bytes.data()),
                               static_cast<int>(bytes.size()));
  std::string secret(reinterpret_cast<const char*>(encoded.data()), static_cast<size_t>(length));
  secret.resize(kSecretLength);  // drops the '=' padding
  for (char& c : secret) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return secret;
}

Result<std::string> NewTokenId() {
  VMCTL_ASSIGN_OR_RETURN(std::string bytes, RandomBytes(kTokenIdBytes));
  std::string id;
  for (unsigned char b : bytes) id += fmt::format("{:02x}", b);
  return id;
}

// Lowercase hex SHA-256: what the store keeps instead of a secret.
std::string Hash(std::string_view secret) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(secret.data(), secret.size(), digest.data(), &length, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

// A host name as the proxy hands it over: lowercase, without port or trailing dot.
bool IsHostName(std::string_view host) {
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') return false;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return host.find("..") == std::string_view::npos;
}

bool IsNotFound(const Error& e) { return e.code() == ErrorCode::kNotFound; }

}  // namespace

bool IsWellFormedSecret(std::string_view text) {
  if (text.size() != kSecretLength) return false;
  for (char c : text) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Auth::Auth(Store& store, AuthOptions options) : store_(store), options_(std::move(options)) {}

int64_t Auth::Now() const {
  if (options_.now) return options_.now();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<void> Auth::CheckSource(const std::string& source) {
  std::lock_guard lock(mu_);
  auto it = wrong_.find(source);
  if (it == wrong_.end()) return Ok();
  const int64_t since = Now() - options_.wrong_secret_window.count();
  auto& times = it->second;
  while (!times.empty() && times.front() <= since) times.pop_front();
  if (static_cast<int>(times.size()) < options_.max_wrong_secrets) return Ok();
  int64_t wait = times.front() - since;
  return ResourceExhausted(
      fmt::format("too many wrong login links or tokens from {}; try again in {} minutes", source,
                  (wait + 59) / 60));
}

void Auth::CountWrong(const std::string& source) {
  std::lock_guard lock(mu_);
  const int64_t now = Now();
  if (wrong_.size() >= kSweepSources) {
    const int64_t since = now - options_.wrong_secret_window.count();
    std::erase_if(wrong_, [&](const auto& entry) { return entry.second.back() <= since; });
  }
  wrong_[source].push_back(now);
}

Result<Identity> Auth::IdentityOf(const std::string& user_id, std::string vm_id) {
  VMCTL_ASSIGN_OR_RETURN(User user, store_.GetUser(user_id));
  return Identity{user.id, user.email, std::move(vm_id)};
}

Result<LoginLink> Auth::CreateLoginLink(const std::string& user_id) {
  VMCTL_TRY(store_.GetUser(user_id));
  const int64_t now = Now();
  // Logins are rare: a good moment to sweep what has expired.
  VMCTL_TRY(store_.DeleteExpiredWebAuth(now));
  VMCTL_ASSIGN_OR_RETURN(std::string secret, NewSecret());
  LoginLinkRecord link{Hash(secret), user_id, now, now + options_.login_link_lifetime.count()};
  VMCTL_TRY(store_.InsertLoginLink(link));
  return LoginLink{options_.web_url + "/login/" + secret, link.expires_at};
}

Result<SessionGrant> Auth::RedeemLoginLink(std::string_view secret, const std::string& source) {
  VMCTL_TRY(CheckSource(source));
  auto refuse = [&] {
    CountWrong(source);
    return Unauthenticated(std::string(kBadLink));
  };
  if (!IsWellFormedSecret(secret)) return refuse();
  auto link = store_.TakeLoginLink(Hash(secret));
  if (!link.ok()) return IsNotFound(link.error()) ? refuse() : link.error();
  if (link->expires_at <= Now()) return refuse();
  return StartSession(link->user_id, options_.domain, "",
                      Now() + options_.session_lifetime.count());
}

Result<SessionGrant> Auth::StartSession(const std::string& user_id, const std::string& host,
                                        const std::string& parent_hash, int64_t expires_at) {
  VMCTL_ASSIGN_OR_RETURN(Identity identity, IdentityOf(user_id, ""));
  VMCTL_ASSIGN_OR_RETURN(std::string secret, NewSecret());
  const int64_t now = Now();
  VMCTL_TRY(store_.InsertWebSession(
      WebSession{Hash(secret), user_id, host, parent_hash, now, expires_at, now, false}));
  return SessionGrant{std::move(secret), expires_at, std::move(identity)};
}

Result<WebSession> Auth::LiveSession(std::string_view session_id, std::string_view host) {
  auto refuse = [] { return Unauthenticated(std::string(kBadSession)); };
  if (!IsWellFormedSecret(session_id)) return refuse();
  auto session = store_.GetWebSession(Hash(session_id));
  if (!session.ok()) return IsNotFound(session.error()) ? refuse() : session.error();
  if (session->revoked || session->expires_at <= Now() || session->host != host) return refuse();
  return session;
}

Result<Identity> Auth::AuthenticateSession(std::string_view session_id, std::string_view host) {
  VMCTL_ASSIGN_OR_RETURN(WebSession session, LiveSession(session_id, host));
  const int64_t now = Now();
  if (now - session.last_seen_at >= kTouchInterval) {
    VMCTL_TRY(store_.TouchWebSession(session.id_hash, now));
  }
  return IdentityOf(session.user_id, "");
}

Result<std::string> Auth::CreateHostTicket(std::string_view session_id, std::string_view host) {
  if (!IsHostName(host) || host == options_.domain) {
    return InvalidArgument("a host ticket is only for a VM's host name");
  }
  VMCTL_ASSIGN_OR_RETURN(WebSession session, LiveSession(session_id, options_.domain));
  VMCTL_ASSIGN_OR_RETURN(std::string ticket, NewSecret());
  const int64_t now = Now();
  VMCTL_TRY(store_.InsertHostTicket(HostTicket{Hash(ticket), session.id_hash, std::string(host),
                                               now, now + options_.host_ticket_lifetime.count()}));
  return ticket;
}

Result<SessionGrant> Auth::RedeemHostTicket(std::string_view ticket, std::string_view host,
                                            const std::string& source) {
  VMCTL_TRY(CheckSource(source));
  auto refuse = [&] {
    CountWrong(source);
    return Unauthenticated(std::string(kBadTicket));
  };
  if (!IsWellFormedSecret(ticket)) return refuse();
  auto taken = store_.TakeHostTicket(Hash(ticket));
  if (!taken.ok()) return IsNotFound(taken.error()) ? refuse() : taken.error();
  if (taken->expires_at <= Now() || taken->host != host) return refuse();
  // The domain session may have ended since the ticket was made.
  auto parent = store_.GetWebSession(taken->session_hash);
  if (!parent.ok()) return IsNotFound(parent.error()) ? refuse() : parent.error();
  if (parent->revoked || parent->expires_at <= Now()) return refuse();
  return StartSession(parent->user_id, taken->host, parent->id_hash, parent->expires_at);
}

Result<void> Auth::Logout(std::string_view session_id) {
  auto refuse = [] { return Unauthenticated(std::string(kBadSession)); };
  if (!IsWellFormedSecret(session_id)) return refuse();
  auto revoked = store_.RevokeWebSession(Hash(session_id), Now());
  if (!revoked.ok()) return IsNotFound(revoked.error()) ? refuse() : revoked.error();
  return Ok();
}

Result<int> Auth::LogoutEverywhere(const std::string& user_id) {
  VMCTL_TRY(store_.GetUser(user_id));
  return store_.RevokeUserWebSessions(user_id, Now());
}

Result<NewToken> Auth::CreateToken(const std::string& user_id, const std::string& vm,
                                   std::chrono::seconds lifetime) {
  if (lifetime.count() < 0) return InvalidArgument("a token's lifetime cannot be negative");
  VMCTL_TRY(store_.GetUser(user_id));
  std::string vm_id;
  if (!vm.empty()) {
    VMCTL_ASSIGN_OR_RETURN(VmRecord record, store_.GetVmByName(user_id, vm));
    vm_id = record.id;
  }
  VMCTL_ASSIGN_OR_RETURN(std::string id, NewTokenId());
  VMCTL_ASSIGN_OR_RETURN(std::string body, NewSecret());
  std::string secret = std::string(kTokenPrefix) + body;
  const int64_t now = Now();
  ApiToken token{
      id, Hash(secret), user_id, vm_id, now, lifetime.count() == 0 ? 0 : now + lifetime.count(), 0};
  VMCTL_TRY(store_.InsertApiToken(token));
  return NewToken{TokenInfo{id, vm, now, token.expires_at, 0}, std::move(secret)};
}

Result<TokenInfo> Auth::Info(const ApiToken& token) {
  TokenInfo info{token.id, "", token.created_at, token.expires_at, token.last_used_at};
  if (!token.vm_id.empty()) {
    VMCTL_ASSIGN_OR_RETURN(VmRecord vm, store_.GetVm(token.vm_id));
    info.vm = vm.name;
  }
  return info;
}

Result<std::vector<TokenInfo>> Auth::Tokens(const std::string& user_id) {
  VMCTL_TRY(store_.GetUser(user_id));
  VMCTL_ASSIGN_OR_RETURN(auto tokens, store_.ListApiTokens(user_id));
  std::vector<TokenInfo> infos;
  for (const auto& token : tokens) {
    VMCTL_ASSIGN_OR_RETURN(TokenInfo info, Info(token));
    infos.push_back(std::move(info));
  }
  return infos;
}

Result<void> Auth::RemoveToken(const std::string& user_id, const std::string& token_id) {
  return store_.DeleteApiToken(user_id, token_id);
}

Result<Identity> Auth::AuthenticateToken(std::string_view secret, const std::string& source) {
  VMCTL_TRY(CheckSource(source));
  auto refuse = [&] {
    CountWrong(source);
    return Unauthenticated(std::string(kBadToken));
  };
  if (!secret.starts_with(kTokenPrefix) ||
      !IsWellFormedSecret(secret.substr(kTokenPrefix.size()))) {
    return refuse();
  }
  auto token = store_.GetApiTokenBySecret(Hash(secret));
  if (!token.ok()) return IsNotFound(token.error()) ? refuse() : token.error();
  const int64_t now = Now();
  if (token->expires_at != 0 && token->expires_at <= now) return refuse();
  if (now - token->last_used_at >= kTouchInterval) {
    VMCTL_TRY(store_.TouchApiToken(token->id, now));
  }
  return IdentityOf(token->user_id, token->vm_id);
}

}  // namespace vmctl::controller
