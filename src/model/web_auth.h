#ifndef VMCTL_MODEL_WEB_AUTH_H_
#define VMCTL_MODEL_WEB_AUTH_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl {

// Rows of the web authentication tables. Every secret (login link, session id, host ticket,
// token) is stored only as its SHA-256 hash, in lowercase hex; times are seconds since the epoch.

// A one-time login URL not yet used.
struct LoginLinkRecord {
  std::string secret_hash;
  std::string user_id;
  int64_t created_at = 0;
  int64_t expires_at = 0;
};

// A browser session, good on one host only. A session of the domain's own host comes from a
// login link; a VM host's session derives from such a session (parent_hash) through a host ticket
// and is revoked with it.
struct WebSession {
  std::string id_hash;
  std::string user_id;
  std::string host;
  std::string parent_hash;  // empty for a session of the domain's own host
  int64_t created_at = 0;
  int64_t expires_at = 0;
  int64_t last_seen_at = 0;
  bool revoked = false;
};

// Carries a domain session to a VM host, once.
struct HostTicket {
  std::string ticket_hash;
  std::string session_hash;  // the domain session it was made from
  std::string host;          // the only host it can be redeemed on
  int64_t created_at = 0;
  int64_t expires_at = 0;
};

struct ApiToken {
  std::string id;  // public handle (`token rm ID`)
  std::string secret_hash;
  std::string user_id;
  std::string vm_id;  // empty: every VM the user may use
  int64_t created_at = 0;
  int64_t expires_at = 0;  // 0: never
  int64_t last_used_at = 0;
};

// A lifetime as typed: a positive whole number and a unit, s (seconds), m (minutes), h (hours) or
// d (days): "90m", "12h", "30d"; at most 10 years. kInvalidArgument otherwise. Pure.
Result<std::chrono::seconds> ParseDuration(std::string_view text);
// "5 minutes", "30 days", "90 seconds": the largest unit that divides it exactly. Pure.
std::string FormatDuration(std::chrono::seconds duration);

}  // namespace vmctl

#endif  // VMCTL_MODEL_WEB_AUTH_H_
