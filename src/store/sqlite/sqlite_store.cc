#include "store/sqlite/sqlite_store.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <mutex>

#include "store/sqlite/migrations.h"

namespace vmctl {
namespace {

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

// A prepared statement; binds by position (1-based, in argument order) and steps.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  template <typename... Args>
  Stmt& Bind(const Args&... args) {
    int i = 0;
    (BindOne(++i, args), ...);
    return *this;
  }

  // true: a row is available; false: done. Errors are kept and reported by status().
  bool Step() {
    if (rc_ != SQLITE_OK && rc_ != SQLITE_ROW && rc_ != SQLITE_DONE) return false;
    rc_ = sqlite3_step(stmt_);
    return rc_ == SQLITE_ROW;
  }
  Result<void> Run() {
    while (Step()) {
    }
    return status();
  }
  Result<void> status() const {
    if (rc_ == SQLITE_OK || rc_ == SQLITE_ROW || rc_ == SQLITE_DONE) return Ok();
    int extended = sqlite3_extended_errcode(db_);
    std::string msg = sqlite3_errmsg(db_);
    if (extended == SQLITE_CONSTRAINT_UNIQUE || extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return AlreadyExists(msg);
    }
    if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) return FailedPrecondition(msg);
    if ((rc_ & 0xff) == SQLITE_CONSTRAINT) return InvalidArgument(msg);
    return Internal("database: " + msg);
  }

  std::string Text(int col) const {
    auto p = sqlite3_column_text(stmt_, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  void BindOne(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindOne(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindOne(int i, const char* v) { BindOne(i, std::string_view(v)); }
  void BindOne(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindOne(int i, int v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindOne(int i, uint64_t v) { sqlite3_bind_int64(stmt_, i, static_cast<int64_t>(v)); }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

constexpr std::string_view kVmColumns =
    "id, owner, name, image, state, cpus, memory_mib, disk_mib, backend, pid, pid_start_time, "
    "api_socket, agent_socket, runtime_dir, root_disk, error, created_at, updated_at";

VmRecord ReadVm(const Stmt& s) {
  VmRecord vm;
  vm.id = s.Text(0);
  vm.owner = s.Text(1);
  vm.name = s.Text(2);
  vm.image = s.Text(3);
  vm.state = VmStateFromName(s.Text(4)).value();  // the CHECK constraint guarantees a valid name
  vm.cpus = static_cast<int>(s.Int(5));
  vm.memory_mib = s.Int(6);
  vm.disk_mib = s.Int(7);
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
  return vm;
}

constexpr std::string_view kImageColumns =
    "name, input_hash, dir, kernel, initramfs, rootfs, kernel_version, source, size_bytes, "
    "created_at";

ImageRecord ReadImage(const Stmt& s) {
  return ImageRecord{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4),
                     s.Text(5), s.Text(6), s.Text(7), s.Int(8),  s.Int(9)};
}

class SqliteStore : public Store {
 public:
  explicit SqliteStore(DbPtr db) : db_(std::move(db)) {}

  Result<void> Exec(std::string_view sql) {
    char* err = nullptr;
    std::string s(sql);
    if (sqlite3_exec(db_.get(), s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      return Internal("database: " + msg);
    }
    return Ok();
  }

  // Runs fn inside BEGIN IMMEDIATE ... COMMIT, rolling back if it fails. Caller holds mu_.
  template <typename Fn>
  auto Transaction(Fn fn) -> decltype(fn()) {
    VMCTL_TRY(Exec("BEGIN IMMEDIATE"));
    auto result = fn();
    if (!result.ok()) {
      (void)Exec("ROLLBACK");
      return result;
    }
    if (auto c = Exec("COMMIT"); !c.ok()) {
      (void)Exec("ROLLBACK");
      return c.error();
    }
    return result;
  }

  Result<void> Migrate() {
    std::lock_guard lock(mu_);
    VMCTL_TRY(
        Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
             "applied_at INTEGER NOT NULL)"));
    Stmt q(db_.get(), "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    q.Step();
    VMCTL_TRY(q.status());
    int64_t current = q.Int(0);
    auto steps = sqlite::Migrations();
    if (current > static_cast<int64_t>(steps.size())) {
      return FailedPrecondition(
          fmt::format("the database has schema version {}, newer than this vmctl understands ({}); "
                      "upgrade vmctl",
                      current, steps.size()));
    }
    for (size_t v = static_cast<size_t>(current); v < steps.size(); ++v) {
      VMCTL_TRY(Transaction([&]() -> Result<void> {
        VMCTL_TRY(Exec(steps[v]));
        return Stmt(db_.get(), "INSERT INTO schema_migrations VALUES (?, ?)")
            .Bind(static_cast<int64_t>(v + 1), NowMillis())
            .Run();
      }));
    }
    return Ok();
  }

  // Users, keys, quotas, shares.
  Result<User> CreateUser(const User& user) override {
    std::lock_guard lock(mu_);
    auto r = Stmt(db_.get(), "INSERT INTO users (id, name, email, created_at) VALUES (?,?,?,?)")
                 .Bind(user.id, user.name, user.email, user.created_at)
                 .Run();
    if (!r.ok() && r.error().code() == ErrorCode::kAlreadyExists) {
      return AlreadyExists(fmt::format("a user named '{}' already exists", user.name));
    }
    if (!r.ok()) return r.error();
    return user;
  }
  Result<User> GetUser(std::string_view id) override { return GetUserWhere("id", id); }
  Result<User> GetUserByName(std::string_view name) override { return GetUserWhere("name", name); }
  Result<void> AddSshKey(const SshKey& key) override {
    std::lock_guard lock(mu_);
    auto r = Stmt(db_.get(),
                  "INSERT INTO ssh_keys (fingerprint, user_id, public_key, created_at) "
                  "VALUES (?,?,?,?)")
                 .Bind(key.fingerprint, key.user_id, key.public_key, key.created_at)
                 .Run();
    if (!r.ok() && r.error().code() == ErrorCode::kAlreadyExists) {
      return AlreadyExists(fmt::format("the key {} is already registered", key.fingerprint));
    }
    return r;
  }
  Result<std::vector<SshKey>> ListSshKeys(std::string_view user_id) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(),
           "SELECT fingerprint, user_id, public_key, created_at FROM ssh_keys WHERE user_id = ? "
           "ORDER BY created_at, fingerprint");
    s.Bind(user_id);
    std::vector<SshKey> out;
    while (s.Step()) out.push_back(SshKey{s.Text(0), s.Text(1), s.Text(2), s.Int(3)});
    VMCTL_TRY(s.status());
    return out;
  }
  Result<void> RemoveSshKey(std::string_view fingerprint) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(
        Stmt(db_.get(), "DELETE FROM ssh_keys WHERE fingerprint = ?").Bind(fingerprint).Run());
    if (sqlite3_changes(db_.get()) == 0) {
      return NotFound(fmt::format("no key {}", fingerprint));
    }
    return Ok();
  }
  Result<Quota> GetQuota(std::string_view user_id) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(),
           "SELECT max_vms, max_cpus, max_memory_mib, max_disk_mib FROM quotas WHERE user_id = ?");
    s.Bind(user_id);
    Quota q;
    q.user_id = std::string(user_id);
    if (s.Step()) {
      q.max_vms = static_cast<int>(s.Int(0));
      q.max_cpus = static_cast<int>(s.Int(1));
      q.max_memory_mib = s.Int(2);
      q.max_disk_mib = s.Int(3);
    }
    VMCTL_TRY(s.status());
    return q;
  }
  Result<void> SetQuota(const Quota& q) override {
    std::lock_guard lock(mu_);
    return Stmt(db_.get(),
                "INSERT INTO quotas (user_id, max_vms, max_cpus, max_memory_mib, max_disk_mib) "
                "VALUES (?,?,?,?,?) ON CONFLICT(user_id) DO UPDATE SET max_vms=excluded.max_vms, "
                "max_cpus=excluded.max_cpus, max_memory_mib=excluded.max_memory_mib, "
                "max_disk_mib=excluded.max_disk_mib")
        .Bind(q.user_id, q.max_vms, q.max_cpus, q.max_memory_mib, q.max_disk_mib)
        .Run();
  }
  Result<void> AddShare(const Share& share) override {
    std::lock_guard lock(mu_);
    auto r = Stmt(db_.get(), "INSERT INTO shares (vm_id, user_id, created_at) VALUES (?,?,?)")
                 .Bind(share.vm_id, share.user_id, share.created_at)
                 .Run();
    if (!r.ok() && r.error().code() == ErrorCode::kAlreadyExists) {
      return AlreadyExists("the VM is already shared with that user");
    }
    return r;
  }
  Result<void> RemoveShare(std::string_view vm_id, std::string_view user_id) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Stmt(db_.get(), "DELETE FROM shares WHERE vm_id = ? AND user_id = ?")
                  .Bind(vm_id, user_id)
                  .Run());
    if (sqlite3_changes(db_.get()) == 0) return NotFound("the VM is not shared with that user");
    return Ok();
  }
  Result<std::vector<Share>> ListShares(std::string_view vm_id) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(),
           "SELECT vm_id, user_id, created_at FROM shares WHERE vm_id = ? ORDER BY created_at");
    s.Bind(vm_id);
    std::vector<Share> out;
    while (s.Step()) out.push_back(Share{s.Text(0), s.Text(1), s.Int(2)});
    VMCTL_TRY(s.status());
    return out;
  }

  // VMs.
  Result<void> InsertVm(const VmRecord& vm) override {
    std::lock_guard lock(mu_);
    auto r = Stmt(db_.get(), fmt::format("INSERT INTO vms ({}) VALUES "
                                         "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                         kVmColumns))
                 .Bind(vm.id, vm.owner, vm.name, vm.image, VmStateName(vm.state), vm.cpus,
                       vm.memory_mib, vm.disk_mib, vm.backend, vm.pid, vm.pid_start_time,
                       vm.api_socket, vm.agent_socket, vm.runtime_dir, vm.root_disk, vm.error,
                       vm.created_at, vm.updated_at)
                 .Run();
    if (!r.ok() && r.error().code() == ErrorCode::kAlreadyExists) {
      return AlreadyExists(fmt::format("a VM named '{}' already exists", vm.name));
    }
    if (!r.ok() && r.error().code() == ErrorCode::kFailedPrecondition) {
      return NotFound(fmt::format("no user '{}'", vm.owner));
    }
    if (r.ok())
      r = AppendEventLocked(Event{0, vm.id, vm.name, "state", "-> creating", NowMillis()});
    return r;
  }
  Result<VmRecord> GetVm(std::string_view id) override {
    std::lock_guard lock(mu_);
    return GetVmLocked(id);
  }
  Result<VmRecord> GetVmByName(std::string_view owner, std::string_view name) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(), fmt::format("SELECT {} FROM vms WHERE owner = ? AND name = ?", kVmColumns));
    s.Bind(owner, name);
    if (s.Step()) return ReadVm(s);
    VMCTL_TRY(s.status());
    return NotFound(fmt::format("no VM named '{}'", name));
  }
  Result<std::vector<VmRecord>> ListVms(std::optional<std::string> owner) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(),
           owner ? fmt::format("SELECT {} FROM vms WHERE owner = ? ORDER BY "
                               "created_at, name",
                               kVmColumns)
                 : fmt::format("SELECT {} FROM vms ORDER BY created_at, name", kVmColumns));
    if (owner) s.Bind(*owner);
    std::vector<VmRecord> out;
    while (s.Step()) out.push_back(ReadVm(s));
    VMCTL_TRY(s.status());
    return out;
  }
  Result<void> UpdateVm(const VmRecord& vm) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Stmt(db_.get(),
                   "UPDATE vms SET image=?, cpus=?, memory_mib=?, disk_mib=?, backend=?, pid=?, "
                   "pid_start_time=?, api_socket=?, agent_socket=?, runtime_dir=?, root_disk=?, "
                   "error=?, updated_at=? WHERE id=?")
                  .Bind(vm.image, vm.cpus, vm.memory_mib, vm.disk_mib, vm.backend, vm.pid,
                        vm.pid_start_time, vm.api_socket, vm.agent_socket, vm.runtime_dir,
                        vm.root_disk, vm.error, NowMillis() / 1000, vm.id)
                  .Run());
    if (sqlite3_changes(db_.get()) == 0) return NotFound(fmt::format("no VM with id {}", vm.id));
    return Ok();
  }
  Result<VmRecord> TransitionVm(std::string_view id, VmState from, VmState to,
                                std::string_view error_message) override {
    std::lock_guard lock(mu_);
    return Transaction([&]() -> Result<VmRecord> {
      VMCTL_ASSIGN_OR_RETURN(VmRecord vm, GetVmLocked(id));
      if (vm.state != from) {
        return FailedPrecondition(fmt::format("VM '{}' is {}, expected {}", vm.name,
                                              VmStateName(vm.state), VmStateName(from)));
      }
      VMCTL_TRY(CheckTransition(from, to));
      VMCTL_TRY(Stmt(db_.get(), "UPDATE vms SET state=?, error=?, updated_at=? WHERE id=?")
                    .Bind(VmStateName(to), error_message, NowMillis() / 1000, id)
                    .Run());
      std::string detail = fmt::format("{} -> {}", VmStateName(from), VmStateName(to));
      if (!error_message.empty()) detail += fmt::format(": {}", error_message);
      VMCTL_TRY(AppendEventLocked(Event{0, vm.id, vm.name, "state", detail, NowMillis()}));
      return GetVmLocked(id);
    });
  }
  Result<void> DeleteVm(std::string_view id) override {
    std::lock_guard lock(mu_);
    return Transaction([&]() -> Result<void> {
      VMCTL_TRY(Stmt(db_.get(), "DELETE FROM vms WHERE id = ?").Bind(id).Run());
      if (sqlite3_changes(db_.get()) == 0) return NotFound(fmt::format("no VM with id {}", id));
      return Stmt(db_.get(), "DELETE FROM events WHERE vm_id = ?").Bind(id).Run();
    });
  }

  // Images.
  Result<void> PutImage(const ImageRecord& i) override {
    std::lock_guard lock(mu_);
    return Stmt(db_.get(), fmt::format("INSERT OR REPLACE INTO images ({}) VALUES "
                                       "(?,?,?,?,?,?,?,?,?,?)",
                                       kImageColumns))
        .Bind(i.name, i.input_hash, i.dir, i.kernel, i.initramfs, i.rootfs, i.kernel_version,
              i.source, i.size_bytes, i.created_at)
        .Run();
  }
  Result<ImageRecord> GetImage(std::string_view name) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(), fmt::format("SELECT {} FROM images WHERE name = ?", kImageColumns));
    s.Bind(name);
    if (s.Step()) return ReadImage(s);
    VMCTL_TRY(s.status());
    return NotFound(fmt::format("image '{}' not found", name));
  }
  Result<std::vector<ImageRecord>> ListImages() override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(), fmt::format("SELECT {} FROM images ORDER BY name", kImageColumns));
    std::vector<ImageRecord> out;
    while (s.Step()) out.push_back(ReadImage(s));
    VMCTL_TRY(s.status());
    return out;
  }
  Result<void> DeleteImage(std::string_view name) override {
    std::lock_guard lock(mu_);
    VMCTL_TRY(Stmt(db_.get(), "DELETE FROM images WHERE name = ?").Bind(name).Run());
    if (sqlite3_changes(db_.get()) == 0) return NotFound(fmt::format("image '{}' not found", name));
    return Ok();
  }

  // Events.
  Result<void> AppendEvent(const Event& event) override {
    std::lock_guard lock(mu_);
    return AppendEventLocked(event);
  }
  Result<std::vector<Event>> ListEvents(std::string_view vm_id, int limit) override {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(), vm_id.empty()
                          ? "SELECT id, vm_id, vm_name, kind, detail, at FROM (SELECT * FROM "
                            "events ORDER BY id DESC LIMIT ?) ORDER BY id"
                          : "SELECT id, vm_id, vm_name, kind, detail, at FROM (SELECT * FROM "
                            "events WHERE vm_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id");
    if (vm_id.empty()) {
      s.Bind(limit);
    } else {
      s.Bind(vm_id, limit);
    }
    std::vector<Event> out;
    while (s.Step()) {
      out.push_back(Event{s.Int(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4), s.Int(5)});
    }
    VMCTL_TRY(s.status());
    return out;
  }

 private:
  Result<User> GetUserWhere(std::string_view column, std::string_view value) {
    std::lock_guard lock(mu_);
    Stmt s(db_.get(),
           fmt::format("SELECT id, name, email, created_at FROM users WHERE {} = ?", column));
    s.Bind(value);
    if (s.Step()) return User{s.Text(0), s.Text(1), s.Text(2), s.Int(3)};
    VMCTL_TRY(s.status());
    return NotFound(fmt::format("no user '{}'", value));
  }
  Result<VmRecord> GetVmLocked(std::string_view id) {
    Stmt s(db_.get(), fmt::format("SELECT {} FROM vms WHERE id = ?", kVmColumns));
    s.Bind(id);
    if (s.Step()) return ReadVm(s);
    VMCTL_TRY(s.status());
    return NotFound(fmt::format("no VM with id {}", id));
  }
  Result<void> AppendEventLocked(const Event& e) {
    return Stmt(db_.get(),
                "INSERT INTO events (vm_id, vm_name, kind, detail, at) VALUES (?,?,?,?,?)")
        .Bind(e.vm_id, e.vm_name, e.kind, e.detail, e.at ? e.at : NowMillis())
        .Run();
  }

  // One connection; SQLite serializes writers anyway, and a mutex keeps statements and
  // transactions of different threads from interleaving on it.
  std::mutex mu_;
  DbPtr db_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& db_path) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(db_path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return Internal(fmt::format("cannot open {}: {}", db_path.string(),
                                raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  auto store = std::make_unique<SqliteStore>(std::move(db));
  // WAL: readers (CLI inspection, tests) never block the daemon's writes and a crash loses at
  // most uncommitted transactions. synchronous=NORMAL is durable across process crashes in WAL
  // mode (only an OS crash can lose the last commits), which is the failure the daemon must
  // survive (kill -9) at a fraction of FULL's fsync cost.
  VMCTL_TRY(store->Exec("PRAGMA journal_mode=WAL"));
  VMCTL_TRY(store->Exec("PRAGMA synchronous=NORMAL"));
  VMCTL_TRY(store->Exec("PRAGMA foreign_keys=ON"));
  VMCTL_TRY(store->Exec("PRAGMA busy_timeout=5000"));
  VMCTL_TRY(store->Migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace vmctl
