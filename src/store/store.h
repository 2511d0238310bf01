#ifndef VMCTL_STORE_STORE_H_
#define VMCTL_STORE_STORE_H_

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/event.h"
#include "model/image.h"
#include "model/sharing.h"
#include "model/user.h"
#include "model/vm.h"
#include "model/web_auth.h"

namespace vmctl {

// Durable control-plane state. The SQLite implementation (store/sqlite) is the only one today; a
// PostgreSQL one can follow behind this interface.
//
// Threading: implementations are thread-safe; every method is atomic (one transaction).
// Errors: kNotFound for a missing row, kAlreadyExists for a unique-key clash, kFailedPrecondition
// for an illegal or stale state transition, kInternal for database failures (message carries
// the database's own text).
class Store {
 public:
  virtual ~Store() = default;

  // Users, keys, quotas, shares.
  virtual Result<User> CreateUser(const User& user) = 0;
  virtual Result<User> GetUser(std::string_view id) = 0;
  virtual Result<User> GetUserByName(std::string_view name) = 0;
  virtual Result<User> GetUserByEmail(std::string_view email) = 0;
  virtual Result<SshKey> GetSshKey(std::string_view fingerprint) = 0;
  virtual Result<void> AddSshKey(const SshKey& key) = 0;
  virtual Result<std::vector<SshKey>> ListSshKeys(std::string_view user_id) = 0;
  virtual Result<void> RemoveSshKey(std::string_view fingerprint) = 0;
  // Creates the user holding `key` and drops the key's pending registration, if any, in one
  // transaction: kAlreadyExists (id, name, email or key taken) changes nothing.
  virtual Result<void> CreateUserWithKey(const User& user, const SshKey& key) = 0;
  // Registrations waiting for an email confirmation, keyed by fingerprint. Put inserts or
  // replaces; Get is kNotFound for none; DeleteExpired drops those with expires_at <= now.
  virtual Result<void> PutPendingRegistration(const PendingRegistration& pending) = 0;
  virtual Result<PendingRegistration> GetPendingRegistration(std::string_view fingerprint) = 0;
  virtual Result<void> DeletePendingRegistration(std::string_view fingerprint) = 0;
  virtual Result<void> DeleteExpiredPendingRegistrations(int64_t now) = 0;
  // A user without a quota row gets the defaults of Quota.
  virtual Result<Quota> GetQuota(std::string_view user_id) = 0;
  virtual Result<void> SetQuota(const Quota& quota) = 0;
  virtual Result<void> AddShare(const Share& share) = 0;
  virtual Result<void> RemoveShare(std::string_view vm_id, std::string_view user_id) = 0;
  virtual Result<std::vector<Share>> ListShares(std::string_view vm_id) = 0;

  // VMs. InsertVm fails with kAlreadyExists when (owner, name) is taken; the message names it.
  virtual Result<void> InsertVm(const VmRecord& vm) = 0;
  virtual Result<VmRecord> GetVm(std::string_view id) = 0;
  virtual Result<VmRecord> GetVmByName(std::string_view owner, std::string_view name) = 0;
  // All VMs, or only one owner's when owner is set; ordered by created_at.
  virtual Result<std::vector<VmRecord>> ListVms(std::optional<std::string> owner) = 0;
  // Writes every mutable column of the row (not the state: use TransitionVm for that).
  virtual Result<void> UpdateVm(const VmRecord& vm) = 0;
  // Compare-and-set of the state: fails with kFailedPrecondition if the stored state is not
  // `from` (someone else moved it) or if from -> to is illegal (CheckTransition). Sets `error`
  // to error_message (cleared when empty) and appends a "state" event. Returns the new row.
  virtual Result<VmRecord> TransitionVm(std::string_view id, VmState from, VmState to,
                                        std::string_view error_message = "") = 0;
  // Gives the VM an address from the pool, atomically: `pick` sees every address held by any VM
  // and returns a free one (or an error such as kResourceExhausted, passed through). Returns the
  // VM's address unchanged when it already has one. The address is released when the row is
  // deleted; UpdateVm never changes it.
  using AddressPicker =
      std::function<Result<std::string>(const std::set<std::string>& addresses_in_use)>;
  virtual Result<std::string> AssignAddress(std::string_view id, const AddressPicker& pick) = 0;
  // Deletes the row, its shares, share links, custom domains and events.
  virtual Result<void> DeleteVm(std::string_view id) = 0;

  // Images, keyed by name.
  virtual Result<void> PutImage(const ImageRecord& image) = 0;  // insert or replace
  virtual Result<ImageRecord> GetImage(std::string_view name) = 0;
  virtual Result<std::vector<ImageRecord>> ListImages() = 0;
  virtual Result<void> DeleteImage(std::string_view name) = 0;

  // Operations log.
  virtual Result<void> AppendEvent(const Event& event) = 0;
  // Newest last; at most `limit` events; all VMs when vm_id is empty.
  virtual Result<std::vector<Event>> ListEvents(std::string_view vm_id, int limit) = 0;

  // Web authentication (model/web_auth.h): rows are found by the hash of their secret. Take*
  // returns a row and deletes it in one transaction, so a secret is redeemed at most once even
  // by racing callers (kNotFound for none).
  virtual Result<void> InsertLoginLink(const LoginLinkRecord& link) = 0;
  virtual Result<LoginLinkRecord> TakeLoginLink(std::string_view secret_hash) = 0;
  virtual Result<void> InsertWebSession(const WebSession& session) = 0;
  virtual Result<WebSession> GetWebSession(std::string_view id_hash) = 0;
  virtual Result<void> TouchWebSession(std::string_view id_hash, int64_t last_seen_at) = 0;
  // Revokes the session and the sessions derived from it; returns how many were live (not
  // revoked, expires_at > now). kNotFound for an unknown session.
  virtual Result<int> RevokeWebSession(std::string_view id_hash, int64_t now) = 0;
  // Revokes every session of the user; returns how many were live.
  virtual Result<int> RevokeUserWebSessions(std::string_view user_id, int64_t now) = 0;
  virtual Result<void> InsertHostTicket(const HostTicket& ticket) = 0;
  virtual Result<HostTicket> TakeHostTicket(std::string_view ticket_hash) = 0;
  // kNotFound for an unknown user or VM.
  virtual Result<void> InsertApiToken(const ApiToken& token) = 0;
  virtual Result<ApiToken> GetApiTokenBySecret(std::string_view secret_hash) = 0;
  // Ordered by created_at.
  virtual Result<std::vector<ApiToken>> ListApiTokens(std::string_view user_id) = 0;
  // kNotFound unless the user has a token with that id.
  virtual Result<void> DeleteApiToken(std::string_view user_id, std::string_view id) = 0;
  virtual Result<void> TouchApiToken(std::string_view id, int64_t last_used_at) = 0;
  // Drops login links, host tickets, sessions and tokens with 0 < expires_at <= now.
  virtual Result<void> DeleteExpiredWebAuth(int64_t now) = 0;
  // ---- Sharing: web visibility and port, share links, custom domains. ----
  // VM names are host names, unique across users: the VM of that name, whoever owns it.
  virtual Result<VmRecord> GetVmByHostName(std::string_view name) = 0;
  virtual Result<VmWebSettings> GetVmWebSettings(std::string_view vm_id) = 0;
  virtual Result<void> SetVmPublic(std::string_view vm_id, bool is_public) = 0;
  // 0 goes back to the image's default; otherwise 1-65535 (kInvalidArgument).
  virtual Result<void> SetVmWebPort(std::string_view vm_id, int port) = 0;
  // kAlreadyExists for a clash of id or secret hash, kNotFound for no such VM.
  virtual Result<void> AddShareLink(const ShareLinkRecord& link) = 0;
  // Oldest first.
  virtual Result<std::vector<ShareLinkRecord>> ListShareLinks(std::string_view vm_id) = 0;
  virtual Result<void> RemoveShareLink(std::string_view vm_id, std::string_view link_id) = 0;
  // In one transaction: deletes the link with that secret hash and shares its VM with `user_id`
  // unless they own it or have a share already. kNotFound for no such link. Returns the VM.
  virtual Result<VmRecord> RedeemShareLink(std::string_view secret_hash, std::string_view user_id,
                                           int64_t now) = 0;
  // kAlreadyExists when any VM has the domain, kNotFound for no such VM.
  virtual Result<void> AddCustomDomain(const CustomDomain& domain) = 0;
  virtual Result<void> RemoveCustomDomain(std::string_view vm_id, std::string_view domain) = 0;
  // Sorted by domain.
  virtual Result<std::vector<CustomDomain>> ListCustomDomains(std::string_view vm_id) = 0;
  virtual Result<CustomDomain> GetCustomDomain(std::string_view domain) = 0;
};

}  // namespace vmctl

#endif  // VMCTL_STORE_STORE_H_
