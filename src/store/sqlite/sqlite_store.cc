#include "store/sqlite/sqlite_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "store/sqlite/migrations.h"

namespace vmctl {
namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Maps a failed SQLite call (extended result codes are on) to the store's error vocabulary.
// Callers that know which row a constraint protects replace the message with one naming it.
Error SqliteError(sqlite3* db, int rc) {
  std::string message = sqlite3_errmsg(db);
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return AlreadyExists(std::move(message));
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return NotFound(std::move(message));  // a referenced row is missing
    case SQLITE_CONSTRAINT_CHECK:
      return InvalidArgument(std::move(message));
    default:
      if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
        return Unavailable("sqlite: " + message);  // extended codes: SQLITE_BUSY_SNAPSHOT...
      }
      return Internal("sqlite: " + message);
  }
}

template <typename R>
struct ResultValue;
template <typename T>
struct ResultValue<Result<T>> {
  using type = T;
};

// A prepared statement with its parameters bound. Also the row accessor handed to readers.
class Statement {
 public:
  Statement(sqlite3* db, StmtPtr stmt) : db_(db), stmt_(std::move(stmt)) {}

  std::string Text(int col) const {
    const unsigned char* text = sqlite3_column_text(stmt_.get(), col);
    return text ? reinterpret_cast<const char*>(text) : "";
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }

  // Steps to completion; returns how many rows the statement changed.
  Result<int64_t> Run() {
    int rc;
    while ((rc = sqlite3_step(stmt_.get())) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) return SqliteError(db_, rc);
    return static_cast<int64_t>(sqlite3_changes64(db_));
  }

  // Every row, converted by read(const Statement&) -> Result<T>.
  template <typename Read,
            typename T = typename ResultValue<std::invoke_result_t<Read, const Statement&>>::type>
  Result<std::vector<T>> All(Read read) {
    std::vector<T> rows;
    for (;;) {
      int rc = sqlite3_step(stmt_.get());
      if (rc == SQLITE_DONE) return rows;
      if (rc != SQLITE_ROW) return SqliteError(db_, rc);
      VMCTL_ASSIGN_OR_RETURN(T row, read(*this));
      rows.push_back(std::move(row));
    }
  }

  // The first row, if any.
  template <typename Read,
            typename T = typename ResultValue<std::invoke_result_t<Read, const Statement&>>::type>
  Result<std::optional<T>> One(Read read) {
    int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_DONE) return std::optional<T>();
    if (rc != SQLITE_ROW) return SqliteError(db_, rc);
    VMCTL_ASSIGN_OR_RETURN(T row, read(*this));
    return std::optional<T>(std::move(row));
  }

 private:
  sqlite3* db_;
  StmtPtr stmt_;
};

template <typename T>
int BindOne(sqlite3_stmt* stmt, int index, const T& value) {
  if constexpr (std::is_integral_v<T>) {
    return sqlite3_bind_int64(stmt, index, static_cast<sqlite3_int64>(value));
  } else {
    std::string_view text(value);
    // TRANSIENT: SQLite copies, so arguments may be temporaries that die before the step.
    return sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()),
                             SQLITE_TRANSIENT);
  }
}

// Prepares sql and binds args to its parameters in order.
template <typename... Args>
Result<Statement> Prepare(sqlite3* db, std::string_view sql, const Args&... args) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return SqliteError(db, rc);
  if constexpr (sizeof...(Args) > 0) {
    int index = 0;
    ((rc = rc == SQLITE_OK ? BindOne(raw, ++index, args) : rc), ...);
    if (rc != SQLITE_OK) return SqliteError(db, rc);
  }
  return Statement(db, std::move(stmt));
}

Result<User> ReadUser(const Statement& s) {
  return User{s.Text(0), s.Text(1), s.Text(2), s.Int(3)};
}

Result<SshKey> ReadSshKey(const Statement& s) {
  return SshKey{s.Text(0), s.Text(1), s.Text(2), s.Int(3)};
}

Result<PendingRegistration> ReadPending(const Statement& s) {
  return PendingRegistration{s.Text(0), s.Text(1), s.Text(2), s.Text(3),
                             s.Text(4), s.Int(5),  s.Int(6),  static_cast<int>(s.Int(7))};
}

Result<Share> ReadShare(const Statement& s) { return Share{s.Text(0), s.Text(1), s.Int(2)}; }

Result<Event> ReadEvent(const Statement& s) {
  return Event{s.Int(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Int(5)};
}

// Host keys are one per line in their column (a key line holds no newline).
std::string JoinLines(const std::vector<std::string>& lines) {
  std::string text;
  for (const auto& line : lines) text += line + "\n";
  return text;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    if (end > start) lines.push_back(text.substr(start, end - start));
  }
  return lines;
}

constexpr std::string_view kVmColumns =
    "id, owner, name, image, state, cpus, memory_mib, root_disk_mib, backend, pid, "
    "pid_start_time, api_socket, agent_socket, runtime_dir, root_disk, error, created_at, "
    "updated_at, tap, mac, address, bandwidth_kbit, data_disk_mib, data_disk, storage, image_dir, "
    "ssh_address, ssh_host_keys";

Result<VmRecord> ReadVm(const Statement& s) {
  VmRecord vm;
  vm.id = s.Text(0);
  vm.owner = s.Text(1);
  vm.name = s.Text(2);
  vm.image = s.Text(3);
  VMCTL_ASSIGN_OR_RETURN(vm.state, VmStateFromName(s.Text(4)));
  vm.cpus = static_cast<int>(s.Int(5));
  vm.memory_mib = s.Int(6);
  vm.root_disk_mib = s.Int(7);
  vm.backend = s.Text(8);
  vm.pid = s.Int(9);
  vm.pid_start_time = static_cast<uint64_t>(s.Int(10));
  vm.api_socket = s.Text(11);
  vm.agent_socket = s.Text(12);
  vm.runtime_dir = s.Text(13);
  vm.root_disk = s.Text(14);
  vm.error = s.Text(15);
  vm.created_at = s.Int(16);
  vm.updated_at = s.Int(17);
  vm.tap = s.Text(18);
  vm.mac = s.Text(19);
  vm.address = s.Text(20);
  vm.bandwidth_kbit = s.Int(21);
  vm.data_disk_mib = s.Int(22);
  vm.data_disk = s.Text(23);
  vm.storage = s.Text(24);
  vm.image_dir = s.Text(25);
  vm.ssh_address = s.Text(26);
  vm.ssh_host_keys = SplitLines(s.Text(27));
  return vm;
}

constexpr std::string_view kImageColumns =
    "name, input_hash, dir, kernel, initramfs, rootfs, kernel_version, source, size_bytes, "
    "created_at, config";

Result<ImageRecord> ReadImage(const Statement& s) {
  ImageRecord image{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4),
                    s.Text(5), s.Text(6), s.Text(7), s.Int(8),  s.Int(9)};
  image.config = nlohmann::json::parse(s.Text(10), nullptr, false);
  if (!image.config.is_object()) {
    return Internal(fmt::format("image '{}' has a corrupt config in the database", image.name));
  }
  return image;
}

constexpr std::string_view kTokenColumns =
    "id, secret_hash, user_id, COALESCE(vm_id, ''), created_at, expires_at, last_used_at";

Result<ApiToken> ReadApiToken(const Statement& s) {
  return ApiToken{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Int(4), s.Int(5), s.Int(6)};
}

Result<ShareLinkRecord> ReadShareLink(const Statement& s) {
  return ShareLinkRecord{s.Text(0), s.Text(1), s.Text(2), s.Int(3)};
}

Result<CustomDomain> ReadCustomDomain(const Statement& s) {
  return CustomDomain{s.Text(0), s.Text(1), s.Int(2)};
}

Result<int64_t> ReadInt(const Statement& s) { return s.Int(0); }

Result<std::string> ReadText(const Statement& s) { return s.Text(0); }

// One connection, used under mu_ by every method: SQLite admits one writer at a time anyway, and
// the mutex keeps the statements of one thread's transaction from interleaving with another's.
// Other processes (a second daemon, a CLI) may open the same file; busy_timeout and BEGIN
// IMMEDIATE make them queue rather than fail.
class SqliteStore final : public Store {
 public:
  static Result<std::unique_ptr<SqliteStore>> Open(const std::filesystem::path& path) {
    sqlite3* raw = nullptr;
    // NOMUTEX: SQLite's own per-call locking would only duplicate mu_.
    int rc =
        sqlite3_open_v2(path.c_str(), &raw,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    DbPtr db(raw);
    if (rc != SQLITE_OK) {
      return Internal(fmt::format("cannot open the database {}: {}", path.string(),
                                  raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    }
    sqlite3_extended_result_codes(db.get(), 1);
    // Set first: switching to WAL itself needs a lock another process may briefly hold.
    sqlite3_busy_timeout(db.get(), 5000);
    auto store = std::unique_ptr<SqliteStore>(new SqliteStore(std::move(db)));
    std::lock_guard lock(store->mu_);
    // Switching a fresh file to WAL can fail with SQLITE_BUSY at once, without the busy handler
    // (SQLite's deadlock avoidance), when several processes open it together: try again.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
      auto configured = store->Configure();
      if (configured.ok()) configured = store->Migrate();
      if (configured.ok()) return store;
      if (configured.error().code() != ErrorCode::kUnavailable ||
          std::chrono::steady_clock::now() > deadline) {
        return configured.error();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Users, keys, quotas, shares.
  Result<User> CreateUser(const User& user) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute("INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)",
                            user.id, user.name, user.email, user.created_at);
    if (!inserted.ok() && inserted.error().code() == ErrorCode::kAlreadyExists) {
      VMCTL_ASSIGN_OR_RETURN(bool id_taken, Exists("SELECT 1 FROM users WHERE id = ?", user.id));
      VMCTL_ASSIGN_OR_RETURN(bool name_taken,
                             Exists("SELECT 1 FROM users WHERE name = ?", user.name));
      if (id_taken)
        return AlreadyExists(fmt::format("a user with id '{}' already exists", user.id));
      if (name_taken) {
        return AlreadyExists(fmt::format("a user named '{}' already exists", user.name));
      }
      return AlreadyExists(fmt::format("the email {} is already registered", user.email));
    }
    VMCTL_TRY(inserted);
    return user;
  }

  Result<User> GetUser(std::string_view id) override {
    std::lock_guard lock(mu_);
    return GetUserWhere("id", id);
  }

  Result<User> GetUserByName(std::string_view name) override {
    std::lock_guard lock(mu_);
    return GetUserWhere("name", name);
  }

  Result<User> GetUserByEmail(std::string_view email) override {
    std::lock_guard lock(mu_);
    if (email.empty()) return NotFound("no user with an empty email");
    return GetUserWhere("email", email);
  }

  Result<SshKey> GetSshKey(std::string_view fingerprint) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(Statement s,
                           Prepare(db_.get(),
                                   "SELECT fingerprint, user_id, public_key, created_at FROM "
                                   "ssh_keys WHERE fingerprint = ?",
                                   fingerprint));
    VMCTL_ASSIGN_OR_RETURN(auto keys, s.All(ReadSshKey));
    if (keys.empty()) return NotFound(fmt::format("no SSH key {}", fingerprint));
    return keys.front();
  }

  Result<void> AddSshKey(const SshKey& key) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute(
        "INSERT INTO ssh_keys (fingerprint, user_id, public_key, created_at) VALUES (?, ?, ?, ?)",
        key.fingerprint, key.user_id, key.public_key, key.created_at);
    if (inserted.ok()) return Ok();
    switch (inserted.error().code()) {
      case ErrorCode::kAlreadyExists:
        return AlreadyExists(fmt::format("the SSH key {} is already registered", key.fingerprint));
      case ErrorCode::kNotFound:
        return NoUser(key.user_id);
      default:
        return inserted.error();
    }
  }

  Result<std::vector<SshKey>> ListSshKeys(std::string_view user_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(Statement s,
                           Prepare(db_.get(),
                                   "SELECT fingerprint, user_id, public_key, created_at FROM "
                                   "ssh_keys WHERE user_id = ? ORDER BY created_at, fingerprint",
                                   user_id));
    return s.All(ReadSshKey);
  }

  Result<void> RemoveSshKey(std::string_view fingerprint) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(int64_t removed,
                           Execute("DELETE FROM ssh_keys WHERE fingerprint = ?", fingerprint));
    if (removed == 0) return NotFound(fmt::format("no SSH key {}", fingerprint));
    return Ok();
  }

  Result<void> CreateUserWithKey(const User& user, const SshKey& key) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<void> {
      VMCTL_ASSIGN_OR_RETURN(bool name_taken,
                             Exists("SELECT 1 FROM users WHERE name = ?", user.name));
      if (name_taken)
        return AlreadyExists(fmt::format("a user named '{}' already exists", user.name));
      VMCTL_ASSIGN_OR_RETURN(bool email_taken,
                             Exists("SELECT 1 FROM users WHERE email = ?", user.email));
      if (email_taken) {
        return AlreadyExists(fmt::format("the email {} is already registered", user.email));
      }
      VMCTL_ASSIGN_OR_RETURN(
          bool key_taken, Exists("SELECT 1 FROM ssh_keys WHERE fingerprint = ?", key.fingerprint));
      if (key_taken) {
        return AlreadyExists(fmt::format("the SSH key {} is already registered", key.fingerprint));
      }
      VMCTL_TRY(Execute("INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)",
                        user.id, user.name, user.email, user.created_at));
      VMCTL_TRY(Execute(
          "INSERT INTO ssh_keys (fingerprint, user_id, public_key, created_at) VALUES (?, ?, ?, ?)",
          key.fingerprint, user.id, key.public_key, key.created_at));
      VMCTL_TRY(
          Execute("DELETE FROM pending_registrations WHERE fingerprint = ?", key.fingerprint));
      return Ok();
    });
  }

  Result<void> PutPendingRegistration(const PendingRegistration& p) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Execute(
        "INSERT OR REPLACE INTO pending_registrations (fingerprint, public_key, email, code, "
        "source, created_at, expires_at, failed_attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        p.fingerprint, p.public_key, p.email, p.code, p.source, p.created_at, p.expires_at,
        p.failed_attempts));
    return Ok();
  }

  Result<PendingRegistration> GetPendingRegistration(std::string_view fingerprint) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s, Prepare(db_.get(),
                             "SELECT fingerprint, public_key, email, code, source, created_at, "
                             "expires_at, failed_attempts FROM pending_registrations WHERE "
                             "fingerprint = ?",
                             fingerprint));
    VMCTL_ASSIGN_OR_RETURN(auto pending, s.One(ReadPending));
    if (!pending) return NotFound(fmt::format("no registration is pending for {}", fingerprint));
    return *std::move(pending);
  }

  Result<void> DeletePendingRegistration(std::string_view fingerprint) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Execute("DELETE FROM pending_registrations WHERE fingerprint = ?", fingerprint));
    return Ok();
  }

  Result<void> DeleteExpiredPendingRegistrations(int64_t now) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Execute("DELETE FROM pending_registrations WHERE expires_at <= ?", now));
    return Ok();
  }

  Result<Quota> GetQuota(std::string_view user_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(Statement s,
                           Prepare(db_.get(),
                                   "SELECT user_id, max_vms, max_cpus, max_memory_mib, "
                                   "max_disk_mib FROM quotas WHERE user_id = ?",
                                   user_id));
    VMCTL_ASSIGN_OR_RETURN(auto quota, s.One([](const Statement& row) -> Result<Quota> {
      return Quota{row.Text(0), static_cast<int>(row.Int(1)), static_cast<int>(row.Int(2)),
                   row.Int(3), row.Int(4)};
    }));
    if (quota) return *quota;
    Quota defaults;
    defaults.user_id = std::string(user_id);
    return defaults;
  }

  Result<void> SetQuota(const Quota& q) override {
    std::lock_guard lock(mu_);
    auto set = Execute(
        "INSERT INTO quotas (user_id, max_vms, max_cpus, max_memory_mib, max_disk_mib) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET max_vms = excluded.max_vms, "
        "max_cpus = excluded.max_cpus, max_memory_mib = excluded.max_memory_mib, "
        "max_disk_mib = excluded.max_disk_mib",
        q.user_id, q.max_vms, q.max_cpus, q.max_memory_mib, q.max_disk_mib);
    if (!set.ok() && set.error().code() == ErrorCode::kNotFound) return NoUser(q.user_id);
    VMCTL_TRY(set);
    return Ok();
  }

  Result<void> AddShare(const Share& share) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute("INSERT INTO shares (vm_id, user_id, created_at) VALUES (?, ?, ?)",
                            share.vm_id, share.user_id, share.created_at);
    if (inserted.ok()) return Ok();
    switch (inserted.error().code()) {
      case ErrorCode::kAlreadyExists:
        return AlreadyExists(
            fmt::format("VM '{}' is already shared with user '{}'", share.vm_id, share.user_id));
      case ErrorCode::kNotFound: {
        VMCTL_ASSIGN_OR_RETURN(bool vm_exists,
                               Exists("SELECT 1 FROM vms WHERE id = ?", share.vm_id));
        return vm_exists ? NoUser(share.user_id) : NoVm(share.vm_id);
      }
      default:
        return inserted.error();
    }
  }

  Result<void> RemoveShare(std::string_view vm_id, std::string_view user_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        int64_t removed,
        Execute("DELETE FROM shares WHERE vm_id = ? AND user_id = ?", vm_id, user_id));
    if (removed == 0) {
      return NotFound(fmt::format("VM '{}' is not shared with user '{}'", vm_id, user_id));
    }
    return Ok();
  }

  Result<std::vector<Share>> ListShares(std::string_view vm_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(Statement s, Prepare(db_.get(),
                                                "SELECT vm_id, user_id, created_at FROM shares "
                                                "WHERE vm_id = ? ORDER BY created_at, user_id",
                                                vm_id));
    return s.All(ReadShare);
  }

  // VMs.
  Result<void> InsertVm(const VmRecord& vm) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute(
        fmt::format("INSERT INTO vms ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, NULLIF(?, ''), ?)",
                    kVmColumns),
        vm.id, vm.owner, vm.name, vm.image, VmStateName(vm.state), vm.cpus, vm.memory_mib,
        vm.root_disk_mib, vm.backend, vm.pid, vm.pid_start_time, vm.api_socket, vm.agent_socket,
        vm.runtime_dir, vm.root_disk, vm.error, vm.created_at, vm.updated_at, vm.tap, vm.mac,
        vm.address, vm.bandwidth_kbit, vm.data_disk_mib, vm.data_disk, vm.storage, vm.image_dir,
        vm.ssh_address, JoinLines(vm.ssh_host_keys));
    if (inserted.ok()) return Ok();
    switch (inserted.error().code()) {
      case ErrorCode::kAlreadyExists: {
        VMCTL_ASSIGN_OR_RETURN(bool id_taken, Exists("SELECT 1 FROM vms WHERE id = ?", vm.id));
        return AlreadyExists(id_taken ? fmt::format("a VM with id '{}' already exists", vm.id)
                                      : fmt::format("a VM named '{}' already exists", vm.name));
      }
      case ErrorCode::kNotFound:
        return NoUser(vm.owner);
      default:
        return inserted.error();
    }
  }

  Result<VmRecord> GetVm(std::string_view id) override {
    std::lock_guard lock(mu_);
    return GetVmLocked(id);
  }

  Result<VmRecord> GetVmByName(std::string_view owner, std::string_view name) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(),
                fmt::format("SELECT {} FROM vms WHERE owner = ? AND name = ?", kVmColumns), owner,
                name));
    VMCTL_ASSIGN_OR_RETURN(auto vm, s.One(ReadVm));
    if (!vm) return NoVm(name);
    return *std::move(vm);
  }

  Result<std::vector<VmRecord>> ListVms(std::optional<std::string> owner) override {
    std::lock_guard lock(mu_);
    // rowid breaks created_at ties (same second) by insertion order.
    if (owner) {
      VMCTL_ASSIGN_OR_RETURN(
          Statement s,
          Prepare(db_.get(),
                  fmt::format("SELECT {} FROM vms WHERE owner = ? ORDER BY created_at, rowid",
                              kVmColumns),
                  *owner));
      return s.All(ReadVm);
    }
    VMCTL_ASSIGN_OR_RETURN(
        Statement s, Prepare(db_.get(), fmt::format("SELECT {} FROM vms ORDER BY created_at, rowid",
                                                    kVmColumns)));
    return s.All(ReadVm);
  }

  Result<void> UpdateVm(const VmRecord& vm) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        int64_t updated,
        Execute("UPDATE vms SET image = ?, cpus = ?, memory_mib = ?, root_disk_mib = ?, "
                "backend = ?, pid = ?, pid_start_time = ?, api_socket = ?, agent_socket = ?, "
                "runtime_dir = ?, root_disk = ?, error = ?, updated_at = ?, tap = ?, mac = ?, "
                "bandwidth_kbit = ?, data_disk_mib = ?, data_disk = ?, storage = ?, "
                "image_dir = ?, ssh_address = NULLIF(?, ''), ssh_host_keys = ? WHERE id = ?",
                vm.image, vm.cpus, vm.memory_mib, vm.root_disk_mib, vm.backend, vm.pid,
                vm.pid_start_time, vm.api_socket, vm.agent_socket, vm.runtime_dir, vm.root_disk,
                vm.error, NowSeconds(), vm.tap, vm.mac, vm.bandwidth_kbit, vm.data_disk_mib,
                vm.data_disk, vm.storage, vm.image_dir, vm.ssh_address, JoinLines(vm.ssh_host_keys),
                vm.id));
    if (updated == 0) return NoVm(vm.id);
    return Ok();
  }

  Result<std::string> AssignAddress(std::string_view id, const AddressPicker& pick) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<std::string> {
      VMCTL_ASSIGN_OR_RETURN(VmRecord vm, GetVmLocked(id));
      if (!vm.address.empty()) return vm.address;
      VMCTL_ASSIGN_OR_RETURN(
          Statement s, Prepare(db_.get(), "SELECT address FROM vms WHERE address IS NOT NULL"));
      VMCTL_ASSIGN_OR_RETURN(auto rows, s.All(ReadText));
      std::set<std::string> used(rows.begin(), rows.end());
      VMCTL_ASSIGN_OR_RETURN(std::string address, pick(used));
      VMCTL_TRY(Execute("UPDATE vms SET address = ? WHERE id = ?", address, id));
      return address;
    });
  }

  Result<VmRecord> TransitionVm(std::string_view id, VmState from, VmState to,
                                std::string_view error_message) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<VmRecord> {
      VMCTL_ASSIGN_OR_RETURN(VmRecord vm, GetVmLocked(id));
      if (vm.state != from) {
        return FailedPrecondition(fmt::format("VM '{}' is {}, expected {}", vm.name,
                                              VmStateName(vm.state), VmStateName(from)));
      }
      VMCTL_TRY(CheckTransition(from, to));
      VMCTL_TRY(Execute("UPDATE vms SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                        VmStateName(to), error_message, NowSeconds(), id));
      std::string detail = fmt::format("{} -> {}", VmStateName(from), VmStateName(to));
      if (!error_message.empty()) detail += fmt::format(": {}", error_message);
      VMCTL_TRY(AppendEventLocked(Event{0, vm.id, vm.name, "state", detail, NowMillis()}));
      return GetVmLocked(id);
    });
  }

  Result<void> DeleteVm(std::string_view id) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<void> {
      // Shares, share links and domains go with the row (ON DELETE CASCADE); events carry no
      // foreign key, so explicitly.
      VMCTL_ASSIGN_OR_RETURN(int64_t deleted, Execute("DELETE FROM vms WHERE id = ?", id));
      if (deleted == 0) return NoVm(id);
      VMCTL_TRY(Execute("DELETE FROM events WHERE vm_id = ?", id));
      return Ok();
    });
  }

  // Images.
  Result<void> PutImage(const ImageRecord& i) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Execute(
        fmt::format("INSERT INTO images ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET input_hash = excluded.input_hash, "
                    "dir = excluded.dir, kernel = excluded.kernel, initramfs = excluded.initramfs, "
                    "rootfs = excluded.rootfs, kernel_version = excluded.kernel_version, "
                    "source = excluded.source, size_bytes = excluded.size_bytes, "
                    "created_at = excluded.created_at, config = excluded.config",
                    kImageColumns),
        i.name, i.input_hash, i.dir, i.kernel, i.initramfs, i.rootfs, i.kernel_version, i.source,
        i.size_bytes, i.created_at, i.config.dump()));
    return Ok();
  }

  Result<ImageRecord> GetImage(std::string_view name) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(), fmt::format("SELECT {} FROM images WHERE name = ?", kImageColumns),
                name));
    VMCTL_ASSIGN_OR_RETURN(auto image, s.One(ReadImage));
    if (!image) return NoImage(name);
    return *std::move(image);
  }

  Result<std::vector<ImageRecord>> ListImages() override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(), fmt::format("SELECT {} FROM images ORDER BY name", kImageColumns)));
    return s.All(ReadImage);
  }

  Result<void> DeleteImage(std::string_view name) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(int64_t deleted, Execute("DELETE FROM images WHERE name = ?", name));
    if (deleted == 0) return NoImage(name);
    return Ok();
  }

  // Events.
  Result<void> AppendEvent(const Event& event) override {
    std::lock_guard lock(mu_);
    return AppendEventLocked(event);
  }

  Result<std::vector<Event>> ListEvents(std::string_view vm_id, int limit) override {
    std::lock_guard lock(mu_);
    // SQLite reads a negative LIMIT as "no limit"; the interface promises at most `limit`.
    int64_t bounded = std::max(limit, 0);
    // The newest `limit` by id, then back into chronological order.
    if (vm_id.empty()) {
      VMCTL_ASSIGN_OR_RETURN(Statement s,
                             Prepare(db_.get(),
                                     "SELECT id, vm_id, vm_name, kind, detail, at FROM "
                                     "(SELECT * FROM events ORDER BY id DESC LIMIT ?) ORDER BY id",
                                     bounded));
      return s.All(ReadEvent);
    }
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(),
                "SELECT id, vm_id, vm_name, kind, detail, at FROM "
                "(SELECT * FROM events WHERE vm_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
                vm_id, bounded));
    return s.All(ReadEvent);
  }

  // Web authentication.
  Result<void> InsertLoginLink(const LoginLinkRecord& l) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute(
        "INSERT INTO login_links (secret_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, "
        "?)",
        l.secret_hash, l.user_id, l.created_at, l.expires_at);
    if (!inserted.ok() && inserted.error().code() == ErrorCode::kNotFound) return NoUser(l.user_id);
    VMCTL_TRY(inserted);
    return Ok();
  }

  Result<LoginLinkRecord> TakeLoginLink(std::string_view secret_hash) override {
    std::lock_guard lock(mu_);
    return TakeRow(
        "login_links", "secret_hash, user_id, created_at, expires_at", "secret_hash", secret_hash,
        [](const Statement& r) -> Result<LoginLinkRecord> {
          return LoginLinkRecord{r.Text(0), r.Text(1), r.Int(2), r.Int(3)};
        },
        "no such login link");
  }

  Result<void> InsertWebSession(const WebSession& w) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute(
        "INSERT INTO web_sessions (id_hash, user_id, host, parent_hash, created_at, expires_at, "
        "last_seen_at, revoked) VALUES (?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?)",
        w.id_hash, w.user_id, w.host, w.parent_hash, w.created_at, w.expires_at, w.last_seen_at,
        w.revoked ? 1 : 0);
    if (!inserted.ok() && inserted.error().code() == ErrorCode::kNotFound) {
      return NotFound(fmt::format("no user '{}' or parent session", w.user_id));
    }
    VMCTL_TRY(inserted);
    return Ok();
  }

  Result<WebSession> GetWebSession(std::string_view id_hash) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s, Prepare(db_.get(),
                             "SELECT id_hash, user_id, host, COALESCE(parent_hash, ''), "
                             "created_at, expires_at, last_seen_at, revoked FROM web_sessions "
                             "WHERE id_hash = ?",
                             id_hash));
    VMCTL_ASSIGN_OR_RETURN(auto session, s.One([](const Statement& r) -> Result<WebSession> {
      return WebSession{r.Text(0), r.Text(1), r.Text(2), r.Text(3),
                        r.Int(4),  r.Int(5),  r.Int(6),  r.Int(7) != 0};
    }));
    if (!session) return NotFound("no such session");
    return *std::move(session);
  }

  Result<void> TouchWebSession(std::string_view id_hash, int64_t last_seen_at) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Execute("UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ?", last_seen_at,
                      id_hash));
    return Ok();
  }

  Result<int> RevokeWebSession(std::string_view id_hash, int64_t now) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<int> {
      VMCTL_ASSIGN_OR_RETURN(bool exists,
                             Exists("SELECT 1 FROM web_sessions WHERE id_hash = ?", id_hash));
      if (!exists) return NotFound("no such session");
      VMCTL_ASSIGN_OR_RETURN(
          int64_t revoked,
          Execute("UPDATE web_sessions SET revoked = 1 WHERE (id_hash = ? OR parent_hash = ?) "
                  "AND revoked = 0 AND expires_at > ?",
                  id_hash, id_hash, now));
      // Expired ones too, so nothing derived from this session is left unrevoked.
      VMCTL_TRY(Execute("UPDATE web_sessions SET revoked = 1 WHERE id_hash = ? OR parent_hash = ?",
                        id_hash, id_hash));
      return static_cast<int>(revoked);
    });
  }

  Result<int> RevokeUserWebSessions(std::string_view user_id, int64_t now) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<int> {
      VMCTL_ASSIGN_OR_RETURN(
          int64_t revoked,
          Execute("UPDATE web_sessions SET revoked = 1 WHERE user_id = ? AND revoked = 0 AND "
                  "expires_at > ?",
                  user_id, now));
      VMCTL_TRY(Execute("UPDATE web_sessions SET revoked = 1 WHERE user_id = ?", user_id));
      return static_cast<int>(revoked);
    });
  }

  Result<void> InsertHostTicket(const HostTicket& t) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute(
        "INSERT INTO host_tickets (ticket_hash, session_hash, host, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?)",
        t.ticket_hash, t.session_hash, t.host, t.created_at, t.expires_at);
    if (!inserted.ok() && inserted.error().code() == ErrorCode::kNotFound) {
      return NotFound("no such session");
    }
    VMCTL_TRY(inserted);
    return Ok();
  }

  Result<HostTicket> TakeHostTicket(std::string_view ticket_hash) override {
    std::lock_guard lock(mu_);
    return TakeRow(
        "host_tickets", "ticket_hash, session_hash, host, created_at, expires_at", "ticket_hash",
        ticket_hash,
        [](const Statement& r) -> Result<HostTicket> {
          return HostTicket{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4)};
        },
        "no such host ticket");
  }

  Result<void> InsertApiToken(const ApiToken& t) override {
    std::lock_guard lock(mu_);
    auto inserted = Execute(
        "INSERT INTO api_tokens (id, secret_hash, user_id, vm_id, created_at, expires_at, "
        "last_used_at) VALUES (?, ?, ?, NULLIF(?, ''), ?, ?, ?)",
        t.id, t.secret_hash, t.user_id, t.vm_id, t.created_at, t.expires_at, t.last_used_at);
    if (!inserted.ok() && inserted.error().code() == ErrorCode::kNotFound) {
      VMCTL_ASSIGN_OR_RETURN(bool user_exists,
                             Exists("SELECT 1 FROM users WHERE id = ?", t.user_id));
      return user_exists ? NoVm(t.vm_id) : NoUser(t.user_id);
    }
    VMCTL_TRY(inserted);
    return Ok();
  }

  Result<ApiToken> GetApiTokenBySecret(std::string_view secret_hash) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(),
                fmt::format("SELECT {} FROM api_tokens WHERE secret_hash = ?", kTokenColumns),
                secret_hash));
    VMCTL_ASSIGN_OR_RETURN(auto token, s.One(ReadApiToken));
    if (!token) return NotFound("no such token");
    return *std::move(token);
  }

  Result<std::vector<ApiToken>> ListApiTokens(std::string_view user_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(
            db_.get(),
            fmt::format("SELECT {} FROM api_tokens WHERE user_id = ? ORDER BY created_at, rowid",
                        kTokenColumns),
            user_id));
    return s.All(ReadApiToken);
  }

  Result<void> DeleteApiToken(std::string_view user_id, std::string_view id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        int64_t deleted,
        Execute("DELETE FROM api_tokens WHERE user_id = ? AND id = ?", user_id, id));
    if (deleted == 0) return NotFound(fmt::format("no token '{}'", id));
    return Ok();
  }

  Result<void> TouchApiToken(std::string_view id, int64_t last_used_at) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", last_used_at, id));
    return Ok();
  }

  Result<void> DeleteExpiredWebAuth(int64_t now) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<void> {
      VMCTL_TRY(Execute("DELETE FROM login_links WHERE expires_at <= ?", now));
      VMCTL_TRY(Execute("DELETE FROM host_tickets WHERE expires_at <= ?", now));
      // Derived sessions and their tickets go with their parent (ON DELETE CASCADE).
      VMCTL_TRY(Execute("DELETE FROM web_sessions WHERE expires_at <= ?", now));
      VMCTL_TRY(Execute("DELETE FROM api_tokens WHERE expires_at > 0 AND expires_at <= ?", now));
      return Ok();
    });
  }

  // Sharing.
  Result<VmRecord> GetVmByHostName(std::string_view name) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(), fmt::format("SELECT {} FROM vms WHERE name = ?", kVmColumns), name));
    VMCTL_ASSIGN_OR_RETURN(auto vm, s.One(ReadVm));
    if (!vm) return NoVm(name);
    return *std::move(vm);
  }

  Result<VmWebSettings> GetVmWebSettings(std::string_view vm_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s, Prepare(db_.get(), "SELECT public, web_port FROM vms WHERE id = ?", vm_id));
    VMCTL_ASSIGN_OR_RETURN(auto settings, s.One([](const Statement& row) -> Result<VmWebSettings> {
      return VmWebSettings{row.Int(0) != 0, static_cast<int>(row.Int(1))};
    }));
    if (!settings) return NoVm(vm_id);
    return *settings;
  }

  Result<void> SetVmPublic(std::string_view vm_id, bool is_public) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(int64_t changed, Execute("UPDATE vms SET public = ? WHERE id = ?",
                                                    is_public ? 1 : 0, vm_id));
    if (changed == 0) return NoVm(vm_id);
    return Ok();
  }

  Result<void> SetVmWebPort(std::string_view vm_id, int port) override {
    std::lock_guard lock(mu_);
    if (port < 0 || port > 65535) {
      return InvalidArgument(fmt::format("port {} is not between 0 and 65535", port));
    }
    VMCTL_ASSIGN_OR_RETURN(int64_t changed,
                           Execute("UPDATE vms SET web_port = ? WHERE id = ?", port, vm_id));
    if (changed == 0) return NoVm(vm_id);
    return Ok();
  }

  Result<void> AddShareLink(const ShareLinkRecord& link) override {
    std::lock_guard lock(mu_);
    auto inserted =
        Execute("INSERT INTO share_links (id, vm_id, secret_hash, created_at) VALUES (?, ?, ?, ?)",
                link.id, link.vm_id, link.secret_hash, link.created_at);
    if (inserted.ok()) return Ok();
    switch (inserted.error().code()) {
      case ErrorCode::kAlreadyExists:
        return AlreadyExists(fmt::format("share link '{}' exists already", link.id));
      case ErrorCode::kNotFound:
        return NoVm(link.vm_id);
      default:
        return inserted.error();
    }
  }

  Result<std::vector<ShareLinkRecord>> ListShareLinks(std::string_view vm_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(Statement s,
                           Prepare(db_.get(),
                                   "SELECT id, vm_id, secret_hash, created_at FROM share_links "
                                   "WHERE vm_id = ? ORDER BY created_at, rowid",
                                   vm_id));
    return s.All(ReadShareLink);
  }

  Result<void> RemoveShareLink(std::string_view vm_id, std::string_view link_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        int64_t removed,
        Execute("DELETE FROM share_links WHERE vm_id = ? AND id = ?", vm_id, link_id));
    if (removed == 0) return NotFound(fmt::format("no share link '{}'", link_id));
    return Ok();
  }

  Result<VmRecord> RedeemShareLink(std::string_view secret_hash, std::string_view user_id,
                                   int64_t now) override {
    std::lock_guard lock(mu_);
    return InTransaction([&]() -> Result<VmRecord> {
      VMCTL_ASSIGN_OR_RETURN(
          Statement s,
          Prepare(db_.get(), "SELECT vm_id FROM share_links WHERE secret_hash = ?", secret_hash));
      VMCTL_ASSIGN_OR_RETURN(auto vm_id, s.One(ReadText));
      if (!vm_id) return NotFound("no such share link");
      VMCTL_TRY(Execute("DELETE FROM share_links WHERE secret_hash = ?", secret_hash));
      VMCTL_ASSIGN_OR_RETURN(VmRecord vm, GetVmLocked(*vm_id));
      if (vm.owner != user_id) {
        VMCTL_TRY(
            Execute("INSERT OR IGNORE INTO shares (vm_id, user_id, created_at) VALUES (?, ?, ?)",
                    vm.id, user_id, now));
      }
      return vm;
    });
  }

  Result<void> AddCustomDomain(const CustomDomain& domain) override {
    std::lock_guard lock(mu_);
    auto inserted =
        Execute("INSERT INTO custom_domains (domain, vm_id, created_at) VALUES (?, ?, ?)",
                domain.domain, domain.vm_id, domain.created_at);
    if (inserted.ok()) return Ok();
    switch (inserted.error().code()) {
      case ErrorCode::kAlreadyExists:
        return AlreadyExists(fmt::format("the domain {} is taken", domain.domain));
      case ErrorCode::kNotFound:
        return NoVm(domain.vm_id);
      default:
        return inserted.error();
    }
  }

  Result<void> RemoveCustomDomain(std::string_view vm_id, std::string_view domain) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        int64_t removed,
        Execute("DELETE FROM custom_domains WHERE vm_id = ? AND domain = ?", vm_id, domain));
    if (removed == 0) return NoDomain(domain);
    return Ok();
  }

  Result<std::vector<CustomDomain>> ListCustomDomains(std::string_view vm_id) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(Statement s, Prepare(db_.get(),
                                                "SELECT domain, vm_id, created_at FROM "
                                                "custom_domains WHERE vm_id = ? ORDER BY domain",
                                                vm_id));
    return s.All(ReadCustomDomain);
  }

  Result<CustomDomain> GetCustomDomain(std::string_view domain) override {
    std::lock_guard lock(mu_);
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(), "SELECT domain, vm_id, created_at FROM custom_domains WHERE domain = ?",
                domain));
    VMCTL_ASSIGN_OR_RETURN(auto found, s.One(ReadCustomDomain));
    if (!found) return NoDomain(domain);
    return *std::move(found);
  }

 private:
  explicit SqliteStore(DbPtr db) : db_(std::move(db)) {}

  static Error NoUser(std::string_view id) { return NotFound(fmt::format("no user '{}'", id)); }
  static Error NoVm(std::string_view id_or_name) {
    return NotFound(fmt::format("no VM '{}'", id_or_name));
  }
  static Error NoDomain(std::string_view domain) {
    return NotFound(fmt::format("no domain {}", domain));
  }
  static Error NoImage(std::string_view name) {
    return NotFound(fmt::format("no image '{}'", name));
  }

  // Callers hold mu_ for everything below.

  Result<void> Configure() {
    // WAL: readers (the CLI, a backup) never block the daemon's writes nor see a half-written
    // transaction, and a killed process loses nothing it committed: the next open replays the
    // log. synchronous=NORMAL skips the fsync per commit that FULL does; in WAL mode that still
    // survives any process crash (kill -9, OOM) and risks only the last commits on power loss,
    // never corruption, which is the right trade for VM lifecycle bookkeeping.
    VMCTL_ASSIGN_OR_RETURN(Statement wal, Prepare(db_.get(), "PRAGMA journal_mode = WAL"));
    VMCTL_ASSIGN_OR_RETURN(auto mode, wal.One(ReadText));
    if (mode.value_or("") != "wal") {
      return Internal(fmt::format("the database cannot use write-ahead logging (journal mode {})",
                                  mode.value_or("unknown")));
    }
    // Foreign keys are off by default in SQLite, per connection.
    return Exec("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON");
  }

  // Applies the pending migrations, each in its own transaction. The version is read inside that
  // transaction (BEGIN IMMEDIATE holds the write lock), so processes opening a fresh database at
  // the same time apply each step exactly once.
  Result<void> Migrate() {
    VMCTL_TRY(
        Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
             "applied_at INTEGER NOT NULL)"));
    auto steps = sqlite::Migrations();
    const auto latest = static_cast<int64_t>(steps.size());
    // true once the schema is current.
    auto apply_next = [&]() -> Result<bool> {
      VMCTL_ASSIGN_OR_RETURN(
          Statement s,
          Prepare(db_.get(), "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
      VMCTL_ASSIGN_OR_RETURN(auto version, s.One(ReadInt));
      int64_t current = version.value_or(0);
      if (current > latest) {
        return FailedPrecondition(
            fmt::format("the database has schema version {} but this vmctl knows only up to {}; "
                        "it was written by a newer vmctl: upgrade vmctl",
                        current, latest));
      }
      if (current == latest) return true;
      VMCTL_TRY(Exec(steps[static_cast<size_t>(current)]));
      VMCTL_TRY(Execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        current + 1, NowSeconds()));
      return false;
    };
    for (;;) {
      VMCTL_ASSIGN_OR_RETURN(bool done, InTransaction(apply_next));
      if (done) return Ok();
    }
  }

  // Runs one or more statements without parameters.
  Result<void> Exec(std::string_view sql) {
    int rc = sqlite3_exec(db_.get(), std::string(sql).c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(db_.get(), rc);
    return Ok();
  }

  // Runs one statement; returns how many rows it changed.
  template <typename... Args>
  Result<int64_t> Execute(std::string_view sql, const Args&... args) {
    VMCTL_ASSIGN_OR_RETURN(Statement s, Prepare(db_.get(), sql, args...));
    return s.Run();
  }

  Result<bool> Exists(std::string_view sql, std::string_view key) {
    VMCTL_ASSIGN_OR_RETURN(Statement s, Prepare(db_.get(), sql, key));
    VMCTL_ASSIGN_OR_RETURN(auto row, s.One(ReadInt));
    return row.has_value();
  }

  // Runs fn between BEGIN IMMEDIATE and COMMIT, rolling back when it fails. IMMEDIATE takes the
  // write lock up front: a deferred transaction that reads and then writes could fail with
  // SQLITE_BUSY halfway instead of waiting for another writer.
  template <typename Fn>
  auto InTransaction(Fn fn) -> decltype(fn()) {
    VMCTL_TRY(Exec("BEGIN IMMEDIATE"));
    auto result = fn();
    if (result.ok()) {
      auto committed = Exec("COMMIT");
      if (committed.ok()) return result;
      result = std::move(committed).error();
    }
    (void)Exec("ROLLBACK");
    return result;
  }

  // Reads the row of `table` whose `key_column` is `key` and deletes it, in one transaction:
  // of callers racing for the same row, one gets it.
  template <typename Read,
            typename T = typename ResultValue<std::invoke_result_t<Read, const Statement&>>::type>
  Result<T> TakeRow(std::string_view table, std::string_view columns, std::string_view key_column,
                    std::string_view key, Read read, std::string_view missing) {
    return InTransaction([&]() -> Result<T> {
      VMCTL_ASSIGN_OR_RETURN(
          Statement s,
          Prepare(db_.get(),
                  fmt::format("SELECT {} FROM {} WHERE {} = ?", columns, table, key_column), key));
      VMCTL_ASSIGN_OR_RETURN(auto row, s.One(read));
      if (!row) return NotFound(std::string(missing));
      VMCTL_TRY(Execute(fmt::format("DELETE FROM {} WHERE {} = ?", table, key_column), key));
      return *std::move(row);
    });
  }

  Result<User> GetUserWhere(std::string_view column, std::string_view value) {
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(),
                fmt::format("SELECT id, name, email, created_at FROM users WHERE {} = ?", column),
                value));
    VMCTL_ASSIGN_OR_RETURN(auto user, s.One(ReadUser));
    if (!user) return NoUser(value);
    return *std::move(user);
  }

  Result<VmRecord> GetVmLocked(std::string_view id) {
    VMCTL_ASSIGN_OR_RETURN(
        Statement s,
        Prepare(db_.get(), fmt::format("SELECT {} FROM vms WHERE id = ?", kVmColumns), id));
    VMCTL_ASSIGN_OR_RETURN(auto vm, s.One(ReadVm));
    if (!vm) return NoVm(id);
    return *std::move(vm);
  }

  Result<void> AppendEventLocked(const Event& e) {
    VMCTL_TRY(
        Execute("INSERT INTO events (vm_id, vm_name, kind, detail, at) VALUES (?, ?, ?, ?, ?)",
                e.vm_id, e.vm_name, e.kind, e.detail, e.at != 0 ? e.at : NowMillis()));
    return Ok();
  }

  std::mutex mu_;
  DbPtr db_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& db_path) {
  VMCTL_ASSIGN_OR_RETURN(auto store, SqliteStore::Open(db_path));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vmctl
