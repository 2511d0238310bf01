#include "store/sqlite/sqlite_store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <latch>
#include <thread>

#include "store/sqlite/migrations.h"

namespace vmctl {
namespace {

namespace fs = std::filesystem;

// A second, raw connection to the database file: sees what is on disk, not what the store says.
class RawDb {
 public:
  explicit RawDb(const fs::path& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // The first column of every row, as text, joined by ",".
  std::string Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    std::string out;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (!out.empty()) out += ",";
      out += text ? reinterpret_cast<const char*>(text) : "NULL";
    }
    EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

VmRecord Vm(const std::string& id, const std::string& name, const std::string& owner = "u1") {
  VmRecord vm;
  vm.id = id;
  vm.owner = owner;
  vm.name = name;
  vm.image = "default";
  vm.backend = "qemu";
  vm.created_at = vm.updated_at = 100;
  return vm;
}

void ExpectSameVm(const VmRecord& a, const VmRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.image, b.image);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.cpus, b.cpus);
  EXPECT_EQ(a.memory_mib, b.memory_mib);
  EXPECT_EQ(a.root_disk_mib, b.root_disk_mib);
  EXPECT_EQ(a.data_disk_mib, b.data_disk_mib);
  EXPECT_EQ(a.data_disk, b.data_disk);
  EXPECT_EQ(a.storage, b.storage);
  EXPECT_EQ(a.image_dir, b.image_dir);
  EXPECT_EQ(a.ssh_address, b.ssh_address);
  EXPECT_EQ(a.ssh_host_keys, b.ssh_host_keys);
  EXPECT_EQ(a.backend, b.backend);
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.pid_start_time, b.pid_start_time);
  EXPECT_EQ(a.api_socket, b.api_socket);
  EXPECT_EQ(a.agent_socket, b.agent_socket);
  EXPECT_EQ(a.runtime_dir, b.runtime_dir);
  EXPECT_EQ(a.root_disk, b.root_disk);
  EXPECT_EQ(a.error, b.error);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.updated_at, b.updated_at);
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "store_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_path_ = dir_ / "vmctl.db";
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    ASSERT_TRUE(store_->CreateUser(User{"u1", "alice", "alice@example.com", 1}).ok());
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  std::unique_ptr<Store> Open() {
    auto store = OpenSqliteStore(db_path_);
    EXPECT_TRUE(store.ok()) << store.error().message();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  fs::path dir_;
  fs::path db_path_;
  std::unique_ptr<Store> store_;
};

// Schema and migrations.

TEST_F(SqliteStoreTest, AFreshDatabaseGetsEveryMigration) {
  RawDb raw(db_path_);
  std::string expected;
  for (size_t v = 1; v <= sqlite::Migrations().size(); ++v) {
    expected += (expected.empty() ? "" : ",") + std::to_string(v);
  }
  EXPECT_EQ(raw.Query("SELECT version FROM schema_migrations ORDER BY version"), expected);
  EXPECT_EQ(raw.Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                      "'sqlite_%' ORDER BY name"),
            "api_tokens,custom_domains,events,host_tickets,images,login_links,"
            "pending_registrations,quotas,schema_migrations,share_links,shares,ssh_keys,users,vms,"
            "web_sessions");
}

TEST_F(SqliteStoreTest, ReopeningAnUpToDateDatabaseAppliesNothing) {
  RawDb raw(db_path_);
  std::string before = raw.Query("SELECT version || ':' || applied_at FROM schema_migrations");
  std::string schema = raw.Query("SELECT sql FROM sqlite_master ORDER BY name");
  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(raw.Query("SELECT version || ':' || applied_at FROM schema_migrations"), before);
  EXPECT_EQ(raw.Query("SELECT sql FROM sqlite_master ORDER BY name"), schema);
  EXPECT_EQ(store_->GetUserByName("alice")->id, "u1");
}

TEST_F(SqliteStoreTest, ADatabaseFromANewerVersionIsRefused) {
  store_.reset();
  int64_t future = static_cast<int64_t>(sqlite::Migrations().size()) + 1;
  RawDb raw(db_path_);
  raw.Query("INSERT INTO schema_migrations VALUES (" + std::to_string(future) + ", 0)");
  auto opened = OpenSqliteStore(db_path_);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(opened.error().message().find(fmt::format("schema version {}", future)),
            std::string::npos)
      << opened.error().message();
  EXPECT_NE(opened.error().message().find("newer vmctl"), std::string::npos);
  EXPECT_EQ(raw.Query("SELECT MAX(version) FROM schema_migrations"), std::to_string(future));
}

TEST_F(SqliteStoreTest, VmsFromBeforeStorageKeepTheirDiskSizeAndImageBuild) {
  fs::path old = dir_ / "v2.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(old.c_str(), &db), SQLITE_OK);
    std::string sql =
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT "
        "NULL);";
    for (size_t v = 0; v < 2; ++v) sql += std::string(sqlite::Migrations()[v]);
    sql +=
        "INSERT INTO schema_migrations VALUES (1, 0), (2, 0);"
        "INSERT INTO users VALUES ('u1', 'alice', '', 0);"
        "INSERT INTO images VALUES ('default', 'h', '/cache/b1', '/cache/b1/vmlinux', "
        "'/cache/b1/initramfs.cpio.gz', '/cache/b1/rootfs.ext4', '6.1', 'debian:bookworm', 1, 0);"
        "INSERT INTO vms (id, owner, name, image, state, cpus, memory_mib, disk_mib, backend, "
        "root_disk, created_at, updated_at) VALUES ('0123456789ab', 'u1', 'old', 'default', "
        "'stopped', 1, 512, 3072, 'qemu', '/s/vms/0123456789ab/root.qcow2', 0, 0);";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto store = OpenSqliteStore(old);
  ASSERT_TRUE(store.ok()) << store.error().message();
  auto vm = (*store)->GetVm("0123456789ab");
  ASSERT_TRUE(vm.ok()) << vm.error().message();
  EXPECT_EQ(vm->root_disk_mib, 3072);
  EXPECT_EQ(vm->data_disk_mib, 0);
  EXPECT_EQ(vm->data_disk, "");
  EXPECT_EQ(vm->storage, "qcow2");
  EXPECT_EQ(vm->image_dir, "/cache/b1");
  EXPECT_TRUE((*store)->GetImage("default")->config.empty());
}

TEST_F(SqliteStoreTest, EmailDomainsAreLowercasedUnlessThatWouldClash) {
  fs::path old = dir_ / "v5.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(old.c_str(), &db), SQLITE_OK);
    std::string sql =
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT "
        "NULL);";
    for (size_t v = 0; v < 5; ++v) sql += std::string(sqlite::Migrations()[v]);
    sql +=
        "INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);"
        "INSERT INTO users VALUES ('u1', 'alice', 'Alice@Example.COM', 0);"
        "INSERT INTO users VALUES ('u2', 'bob', 'bob@example.org', 0);"
        "INSERT INTO users VALUES ('u3', 'bob2', 'bob@EXAMPLE.org', 0);"
        "INSERT INTO users VALUES ('admin', 'admin', '', 0);";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto store = OpenSqliteStore(old);
  ASSERT_TRUE(store.ok()) << store.error().message();
  EXPECT_EQ((*store)->GetUser("u1")->email, "Alice@example.com");
  EXPECT_EQ((*store)->GetUser("u2")->email, "bob@example.org");
  EXPECT_EQ((*store)->GetUser("u3")->email, "bob@EXAMPLE.org");
  EXPECT_EQ((*store)->GetUser("admin")->email, "");
}

TEST_F(SqliteStoreTest, AUserAndTheirKeyAreCreatedTogetherOrNotAtAll) {
  PendingRegistration pending{
      "SHA256:k1", "ssh-ed25519 AAAA", "bob@example.org", "CODE", "127.0.0.1", 10, 100, 0};
  ASSERT_TRUE(store_->PutPendingRegistration(pending).ok());
  ASSERT_TRUE(store_
                  ->CreateUserWithKey(User{"u2", "bob", "bob@example.org", 5},
                                      SshKey{"SHA256:k1", "u2", "ssh-ed25519 AAAA", 5})
                  .ok());
  EXPECT_EQ(store_->GetSshKey("SHA256:k1")->user_id, "u2");
  EXPECT_EQ(store_->GetPendingRegistration("SHA256:k1").error().code(), ErrorCode::kNotFound);

  // Taken email, name or key: nothing is written.
  for (const auto& [user, fp] :
       {std::pair{User{"u3", "carol", "bob@example.org", 5}, std::string("SHA256:k3")},
        std::pair{User{"u3", "bob", "carol@example.org", 5}, std::string("SHA256:k3")},
        std::pair{User{"u3", "carol", "carol@example.org", 5}, std::string("SHA256:k1")}}) {
    auto r = store_->CreateUserWithKey(user, SshKey{fp, "u3", "ssh-ed25519 BBBB", 5});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kAlreadyExists) << r.error().message();
    EXPECT_FALSE(store_->GetUser("u3").ok());
  }
  EXPECT_FALSE(store_->GetSshKey("SHA256:k3").ok());
}

TEST_F(SqliteStoreTest, PendingRegistrationsArePutReplacedAndExpire) {
  PendingRegistration a{"SHA256:a", "ssh-ed25519 A", "a@example.org", "C1", "10.0.0.9", 10, 100, 0};
  PendingRegistration b{"SHA256:b", "ssh-ed25519 B", "b@example.org", "C2", "10.0.0.9", 10, 200, 0};
  ASSERT_TRUE(store_->PutPendingRegistration(a).ok());
  ASSERT_TRUE(store_->PutPendingRegistration(b).ok());
  a.code = "C3";
  a.failed_attempts = 2;
  ASSERT_TRUE(store_->PutPendingRegistration(a).ok());
  auto got = store_->GetPendingRegistration("SHA256:a");
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(got->code, "C3");
  EXPECT_EQ(got->failed_attempts, 2);
  EXPECT_EQ(got->email, "a@example.org");
  EXPECT_EQ(got->source, "10.0.0.9");
  EXPECT_EQ(got->expires_at, 100);
  ASSERT_TRUE(store_->DeleteExpiredPendingRegistrations(100).ok());
  EXPECT_FALSE(store_->GetPendingRegistration("SHA256:a").ok());
  EXPECT_TRUE(store_->GetPendingRegistration("SHA256:b").ok());
  ASSERT_TRUE(store_->DeletePendingRegistration("SHA256:b").ok());
  EXPECT_FALSE(store_->GetPendingRegistration("SHA256:b").ok());
}

TEST_F(SqliteStoreTest, ConcurrentFirstOpensApplyEachMigrationOnce) {
  constexpr int kOpeners = 6;
  fs::path fresh = dir_ / "fresh.db";
  std::atomic<int> failures = 0;
  std::latch start(kOpeners);
  std::vector<std::thread> threads;
  for (int i = 0; i < kOpeners; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      auto store = OpenSqliteStore(fresh);
      if (!store.ok()) {
        ADD_FAILURE() << store.error().message();
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(RawDb(fresh).Query("SELECT COUNT(*) FROM schema_migrations"),
            std::to_string(sqlite::Migrations().size()));
}

TEST_F(SqliteStoreTest, WalModeIsOn) {
  RawDb raw(db_path_);
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, ForeignKeysAreEnforced) {
  auto orphan = store_->InsertVm(Vm("v0", "orphan", "nobody"));
  ASSERT_FALSE(orphan.ok());
  EXPECT_EQ(orphan.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(orphan.error().message(), "no user 'nobody'");
  EXPECT_EQ(
      store_->AddSshKey(SshKey{"SHA256:k", "nobody", "ssh-ed25519 AAAA", 1}).error().message(),
      "no user 'nobody'");
  EXPECT_EQ(store_->SetQuota(Quota{"nobody", 1, 1, 128, 512}).error().message(),
            "no user 'nobody'");
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  EXPECT_EQ(store_->AddShare(Share{"v9", "u1", 1}).error().message(), "no VM 'v9'");
  EXPECT_EQ(store_->AddShare(Share{"v1", "nobody", 1}).error().message(), "no user 'nobody'");
  EXPECT_TRUE(store_->ListVms(std::nullopt)->size() == 1u);
}

TEST_F(SqliteStoreTest, CheckConstraintsRejectBadRows) {
  VmRecord vm = Vm("v1", "web");
  vm.cpus = 0;
  EXPECT_EQ(store_->InsertVm(vm).error().code(), ErrorCode::kInvalidArgument);
  vm = Vm("v1", "web");
  vm.memory_mib = -1;
  EXPECT_EQ(store_->InsertVm(vm).error().code(), ErrorCode::kInvalidArgument);
  vm = Vm("v1", "web");
  vm.root_disk_mib = 0;
  EXPECT_EQ(store_->InsertVm(vm).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store_->ListVms(std::nullopt)->empty());
}

// Users, keys, quotas, shares.

TEST_F(SqliteStoreTest, UsersAreUniqueByIdAndName) {
  auto user = store_->CreateUser(User{"u2", "bob", "bob@example.com", 2});
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->name, "bob");
  auto by_id = store_->GetUser("u2");
  ASSERT_TRUE(by_id.ok());
  EXPECT_EQ(by_id->email, "bob@example.com");
  EXPECT_EQ(by_id->created_at, 2);
  EXPECT_EQ(store_->GetUserByName("bob")->id, "u2");

  auto same_name = store_->CreateUser(User{"u3", "alice", "", 1});
  ASSERT_FALSE(same_name.ok());
  EXPECT_EQ(same_name.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(same_name.error().message(), "a user named 'alice' already exists");
  auto same_id = store_->CreateUser(User{"u1", "carol", "", 1});
  EXPECT_EQ(same_id.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(same_id.error().message(), "a user with id 'u1' already exists");

  EXPECT_EQ(store_->GetUser("zz").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetUserByName("zz").error().message(), "no user 'zz'");

  // An email belongs to one user; users without one do not clash.
  EXPECT_EQ(store_->GetUserByEmail("bob@example.com")->id, "u2");
  EXPECT_EQ(store_->GetUserByEmail("").error().code(), ErrorCode::kNotFound);
  auto same_email = store_->CreateUser(User{"u4", "robert", "bob@example.com", 3});
  EXPECT_EQ(same_email.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(same_email.error().message(), "the email bob@example.com is already registered");
  ASSERT_TRUE(store_->CreateUser(User{"u5", "dave", "", 4}).ok());
  ASSERT_TRUE(store_->CreateUser(User{"u6", "erin", "", 5}).ok());
}

TEST_F(SqliteStoreTest, SshKeysAreAddedListedAndRemoved) {
  ASSERT_TRUE(store_->AddSshKey(SshKey{"SHA256:b", "u1", "ssh-ed25519 BBBB", 2}).ok());
  ASSERT_TRUE(store_->AddSshKey(SshKey{"SHA256:a", "u1", "ssh-ed25519 AAAA", 1}).ok());
  auto dup = store_->AddSshKey(SshKey{"SHA256:a", "u1", "other", 3});
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(dup.error().message(), "the SSH key SHA256:a is already registered");

  auto keys = store_->ListSshKeys("u1");
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].fingerprint, "SHA256:a");
  EXPECT_EQ((*keys)[0].public_key, "ssh-ed25519 AAAA");
  EXPECT_EQ((*keys)[1].fingerprint, "SHA256:b");
  EXPECT_TRUE(store_->ListSshKeys("u2")->empty());

  EXPECT_EQ(store_->GetSshKey("SHA256:b")->user_id, "u1");
  EXPECT_EQ(store_->GetSshKey("SHA256:zz").error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->RemoveSshKey("SHA256:a").ok());
  EXPECT_EQ(store_->RemoveSshKey("SHA256:a").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListSshKeys("u1")->size(), 1u);
}

TEST_F(SqliteStoreTest, QuotasDefaultUntilSet) {
  auto defaults = store_->GetQuota("u1");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->user_id, "u1");
  EXPECT_EQ(defaults->max_vms, Quota{}.max_vms);
  EXPECT_EQ(defaults->max_disk_mib, Quota{}.max_disk_mib);

  ASSERT_TRUE(store_->SetQuota(Quota{"u1", 2, 4, 1024, 4096}).ok());
  ASSERT_TRUE(store_->SetQuota(Quota{"u1", 3, 5, 2048, 8192}).ok());
  auto quota = store_->GetQuota("u1");
  ASSERT_TRUE(quota.ok());
  EXPECT_EQ(quota->max_vms, 3);
  EXPECT_EQ(quota->max_cpus, 5);
  EXPECT_EQ(quota->max_memory_mib, 2048);
  EXPECT_EQ(quota->max_disk_mib, 8192);
}

TEST_F(SqliteStoreTest, SharesAreAddedListedRemovedAndGoWithTheVm) {
  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "", 1}).ok());
  ASSERT_TRUE(store_->CreateUser(User{"u3", "carol", "", 1}).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->AddShare(Share{"v1", "u3", 6}).ok());
  ASSERT_TRUE(store_->AddShare(Share{"v1", "u2", 5}).ok());
  auto dup = store_->AddShare(Share{"v1", "u2", 7});
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(dup.error().message(), "VM 'v1' is already shared with user 'u2'");

  auto shares = store_->ListShares("v1");
  ASSERT_TRUE(shares.ok());
  ASSERT_EQ(shares->size(), 2u);
  EXPECT_EQ((*shares)[0].user_id, "u2");
  EXPECT_EQ((*shares)[0].created_at, 5);
  EXPECT_EQ((*shares)[1].user_id, "u3");

  ASSERT_TRUE(store_->RemoveShare("v1", "u3").ok());
  EXPECT_EQ(store_->RemoveShare("v1", "u3").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListShares("v1")->size(), 1u);

  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_TRUE(store_->ListShares("v1")->empty());
  EXPECT_EQ(RawDb(db_path_).Query("SELECT COUNT(*) FROM shares"), "0");
}

// VMs.

TEST_F(SqliteStoreTest, AVmRoundTripsAndUpdatesEveryMutableColumn) {
  VmRecord vm = Vm("v1", "web");
  vm.cpus = 2;
  vm.memory_mib = 1024;
  vm.root_disk_mib = 4096;
  vm.runtime_dir = "/run/vmctl/v1";
  ASSERT_TRUE(store_->InsertVm(vm).ok());
  auto stored = store_->GetVm("v1");
  ASSERT_TRUE(stored.ok()) << stored.error().message();
  ExpectSameVm(*stored, vm);

  vm.image = "other";
  vm.cpus = 4;
  vm.memory_mib = 2048;
  vm.root_disk_mib = 8192;
  vm.backend = "cloud-hypervisor";
  vm.pid = 4242;
  vm.pid_start_time = uint64_t{1} << 40;
  vm.api_socket = "/run/vmctl/v1/api.sock";
  vm.agent_socket = "/run/vmctl/v1/agent.sock";
  vm.root_disk = "/run/vmctl/v1/root.qcow2";
  vm.data_disk_mib = 512;
  vm.data_disk = "/disks/v1/data.qcow2";
  vm.storage = "qcow2";
  vm.image_dir = "/cache/abc";
  vm.ssh_address = "127.0.1.7";
  vm.ssh_host_keys = {"ssh-ed25519 AAAAC3 root@web", "ssh-rsa AAAAB3 root@web"};
  vm.error = "it broke";
  vm.state = VmState::kRunning;  // ignored: states change only through TransitionVm
  ASSERT_TRUE(store_->UpdateVm(vm).ok());

  auto updated = store_->GetVmByName("u1", "web");
  ASSERT_TRUE(updated.ok());
  EXPECT_EQ(updated->state, VmState::kCreating);
  EXPECT_GT(updated->updated_at, 100);
  vm.state = VmState::kCreating;
  vm.updated_at = updated->updated_at;
  ExpectSameVm(*updated, vm);

  EXPECT_EQ(store_->UpdateVm(Vm("v9", "ghost")).error().message(), "no VM 'v9'");
  EXPECT_EQ(store_->GetVm("v9").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetVmByName("u1", "nope").error().message(), "no VM 'nope'");
}

TEST_F(SqliteStoreTest, VmNamesAreUniqueAcrossOwners) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  auto dup = store_->InsertVm(Vm("v2", "web"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(dup.error().message(), "a VM named 'web' already exists");
  auto same_id = store_->InsertVm(Vm("v1", "db"));
  EXPECT_EQ(same_id.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(same_id.error().message(), "a VM with id 'v1' already exists");

  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "", 1}).ok());
  EXPECT_EQ(store_->InsertVm(Vm("v3", "web", "u2")).error().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(store_->InsertVm(Vm("v4", "db", "u2")).ok());
  EXPECT_EQ(store_->GetVmByName("u1", "web")->id, "v1");
  EXPECT_EQ(store_->GetVmByName("u1", "db").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetVmByHostName("db")->id, "v4");
  EXPECT_EQ(store_->GetVmByHostName("nope").error().message(), "no VM 'nope'");
}

TEST_F(SqliteStoreTest, ListVmsIsInCreationOrderAndFiltersByOwner) {
  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "", 1}).ok());
  VmRecord late = Vm("v1", "late");
  late.created_at = 300;
  ASSERT_TRUE(store_->InsertVm(late).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v2", "zeta")).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v3", "alpha")).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v4", "bobs", "u2")).ok());

  auto all = store_->ListVms(std::nullopt);
  ASSERT_TRUE(all.ok());
  std::vector<std::string> ids;
  for (const auto& vm : *all) ids.push_back(vm.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"v2", "v3", "v4", "v1"}));
  auto alice = store_->ListVms("u1");
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->size(), 3u);
  EXPECT_EQ(store_->ListVms("u2")->size(), 1u);
  EXPECT_TRUE(store_->ListVms("nobody")->empty());
}

TEST_F(SqliteStoreTest, ALegalTransitionMovesTheStateAndLogsIt) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  auto starting = store_->TransitionVm("v1", VmState::kCreating, VmState::kStarting);
  ASSERT_TRUE(starting.ok()) << starting.error().message();
  EXPECT_EQ(starting->state, VmState::kStarting);
  EXPECT_GT(starting->updated_at, 100);
  EXPECT_EQ(store_->GetVm("v1")->state, VmState::kStarting);
  auto events = store_->ListEvents("v1", 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ(events->back().kind, "state");
  EXPECT_EQ(events->back().vm_name, "web");
  EXPECT_EQ(events->back().detail, "creating -> starting");
  EXPECT_GT(events->back().at, 0);
}

TEST_F(SqliteStoreTest, AnIllegalTransitionChangesNothing) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  auto illegal = store_->TransitionVm("v1", VmState::kCreating, VmState::kRunning);
  ASSERT_FALSE(illegal.ok());
  EXPECT_EQ(illegal.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(illegal.error().message(), "cannot go from creating to running");
  EXPECT_EQ(store_->GetVm("v1")->state, VmState::kCreating);
  EXPECT_TRUE(store_->ListEvents("v1", 10)->empty());
}

TEST_F(SqliteStoreTest, AStaleTransitionIsRefused) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->TransitionVm("v1", VmState::kCreating, VmState::kStarting).ok());
  auto stale = store_->TransitionVm("v1", VmState::kCreating, VmState::kFailed, "late");
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(stale.error().message(), "VM 'web' is starting, expected creating");
  auto vm = store_->GetVm("v1");
  EXPECT_EQ(vm->state, VmState::kStarting);
  EXPECT_EQ(vm->error, "");
  EXPECT_EQ(store_->ListEvents("v1", 10)->size(), 1u);
  EXPECT_EQ(store_->TransitionVm("v9", VmState::kCreating, VmState::kStarting).error().code(),
            ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, AFailureRecordsItsErrorUntilTheNextTransition) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  auto failed = store_->TransitionVm("v1", VmState::kCreating, VmState::kFailed, "disk full");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state, VmState::kFailed);
  EXPECT_EQ(failed->error, "disk full");
  EXPECT_EQ(store_->ListEvents("v1", 10)->back().detail, "creating -> failed: disk full");
  auto retried = store_->TransitionVm("v1", VmState::kFailed, VmState::kStarting);
  ASSERT_TRUE(retried.ok());
  EXPECT_EQ(retried->error, "");
}

TEST_F(SqliteStoreTest, DeleteVmRemovesTheRowItsSharesAndItsEventsOnly) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v2", "db")).ok());
  ASSERT_TRUE(store_->TransitionVm("v1", VmState::kCreating, VmState::kStarting).ok());
  ASSERT_TRUE(store_->TransitionVm("v2", VmState::kCreating, VmState::kStarting).ok());
  ASSERT_TRUE(store_->AppendEvent(Event{0, "", "", "serve", "daemon started", 1}).ok());

  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_EQ(store_->GetVm("v1").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->ListEvents("v1", 10)->empty());
  EXPECT_EQ(store_->ListEvents("v2", 10)->size(), 1u);
  EXPECT_EQ(store_->ListEvents("", 10)->size(), 2u);
  EXPECT_EQ(store_->DeleteVm("v1").error().message(), "no VM 'v1'");
}

// Images.

TEST_F(SqliteStoreTest, ImagesArePutReplacedListedAndDeleted) {
  ImageRecord image{"default",
                    "h1",
                    "/img/default",
                    "/img/default/vmlinux",
                    "/img/default/initrd",
                    "/img/default/rootfs.ext4",
                    "6.1.0-13",
                    "debian:bookworm",
                    1 << 30,
                    5};
  ASSERT_TRUE(store_->PutImage(image).ok());
  ASSERT_TRUE(store_
                  ->PutImage(ImageRecord{"alpine", "h9", "/a", "/a/k", "/a/i", "/a/r", "6.6",
                                         "alpine:3.19", 10, 6})
                  .ok());
  image.input_hash = "h2";
  image.size_bytes = 2;
  image.config = {{"user", "app"}, {"exposed_ports", {"80/tcp"}}};
  ASSERT_TRUE(store_->PutImage(image).ok());

  auto stored = store_->GetImage("default");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->input_hash, "h2");
  EXPECT_EQ(stored->size_bytes, 2);
  EXPECT_EQ(stored->rootfs, "/img/default/rootfs.ext4");
  EXPECT_EQ(stored->kernel_version, "6.1.0-13");
  EXPECT_EQ(stored->source, "debian:bookworm");
  EXPECT_EQ(stored->config, image.config);
  auto images = store_->ListImages();
  ASSERT_TRUE(images.ok());
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].name, "alpine");

  ASSERT_TRUE(store_->DeleteImage("default").ok());
  EXPECT_EQ(store_->GetImage("default").error().message(), "no image 'default'");
  EXPECT_EQ(store_->DeleteImage("default").error().code(), ErrorCode::kNotFound);
}

// Events.

TEST_F(SqliteStoreTest, EventsComeNewestLastWithinTheLimit) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(
        store_->AppendEvent(Event{0, "v1", "web", "exec", "run " + std::to_string(i), 10 + i})
            .ok());
    ASSERT_TRUE(store_->AppendEvent(Event{0, "v2", "db", "exec", "run", 0}).ok());
  }
  auto last3 = store_->ListEvents("v1", 3);
  ASSERT_TRUE(last3.ok());
  ASSERT_EQ(last3->size(), 3u);
  EXPECT_EQ((*last3)[0].detail, "run 2");
  EXPECT_EQ((*last3)[2].detail, "run 4");
  EXPECT_EQ((*last3)[2].at, 14);
  EXPECT_LT((*last3)[0].id, (*last3)[1].id);

  auto all = store_->ListEvents("", 100);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 10u);
  EXPECT_GT(all->back().at, 1000) << "at 0 means now";
  EXPECT_EQ(store_->ListEvents("", 4)->size(), 4u);
  EXPECT_TRUE(store_->ListEvents("v1", 0)->empty());
  EXPECT_TRUE(store_->ListEvents("v1", -1)->empty());
  EXPECT_TRUE(store_->ListEvents("v9", 10)->empty());
}

// Durability and concurrency.

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  VmRecord vm = Vm("v1", "web");
  vm.pid = 99;
  vm.api_socket = "/run/v1/api.sock";
  ASSERT_TRUE(store_->InsertVm(vm).ok());
  ASSERT_TRUE(store_->AddSshKey(SshKey{"SHA256:a", "u1", "ssh-ed25519 AAAA", 1}).ok());
  ASSERT_TRUE(store_->SetQuota(Quota{"u1", 2, 4, 1024, 4096}).ok());
  ASSERT_TRUE(store_->AddShare(Share{"v1", "u1", 3}).ok());
  ASSERT_TRUE(store_
                  ->PutImage(ImageRecord{"default", "h", "/d", "/d/k", "/d/i", "/d/r", "6.1",
                                         "debian", 10, 1})
                  .ok());
  auto running = store_->TransitionVm("v1", VmState::kCreating, VmState::kStarting);
  ASSERT_TRUE(running.ok());

  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  ExpectSameVm(*store_->GetVm("v1"), *running);
  EXPECT_EQ(store_->GetUser("u1")->email, "alice@example.com");
  EXPECT_EQ(store_->ListSshKeys("u1")->size(), 1u);
  EXPECT_EQ(store_->GetQuota("u1")->max_vms, 2);
  EXPECT_EQ(store_->ListShares("v1")->size(), 1u);
  EXPECT_EQ(store_->GetImage("default")->input_hash, "h");
  EXPECT_EQ(store_->ListEvents("v1", 10)->size(), 1u);
}

TEST_F(SqliteStoreTest, ThreadsSharingOneStoreStayConsistent) {
  constexpr int kThreads = 8;
  constexpr int kVmsPerThread = 25;
  std::atomic<int> failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kVmsPerThread; ++i) {
        std::string id = fmt::format("t{}i{}", t, i);
        bool ok = store_->InsertVm(Vm(id, id)).ok() &&
                  store_->TransitionVm(id, VmState::kCreating, VmState::kStarting).ok() &&
                  store_->TransitionVm(id, VmState::kStarting, VmState::kRunning).ok() &&
                  store_->ListVms("u1").ok();
        if (!ok) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  auto vms = store_->ListVms(std::nullopt);
  ASSERT_TRUE(vms.ok());
  ASSERT_EQ(vms->size(), size_t{kThreads * kVmsPerThread});
  for (const auto& vm : *vms) EXPECT_EQ(vm.state, VmState::kRunning) << vm.id;
  EXPECT_EQ(store_->ListEvents("", 10000)->size(), size_t{2 * kThreads * kVmsPerThread});
}

TEST_F(SqliteStoreTest, SeparateConnectionsQueueInsteadOfFailing) {
  constexpr int kConnections = 4;
  constexpr int kVmsPerConnection = 20;
  std::atomic<int> failures = 0;
  std::vector<std::thread> threads;
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {
      auto store = OpenSqliteStore(db_path_);
      if (!store.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < kVmsPerConnection; ++i) {
        std::string id = fmt::format("c{}i{}", c, i);
        if (!(*store)->InsertVm(Vm(id, id)).ok() ||
            !(*store)->TransitionVm(id, VmState::kCreating, VmState::kStarting).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(store_->ListVms(std::nullopt)->size(), size_t{kConnections * kVmsPerConnection});
}

TEST_F(SqliteStoreTest, ConcurrentCompareAndSetHasExactlyOneWinner) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  constexpr int kRacers = 8;
  std::atomic<int> won = 0, lost = 0, open_failures = 0;
  std::latch start(kRacers);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRacers; ++r) {
    threads.emplace_back([&, r] {
      // Half share the fixture's connection, half race from their own, like a second process.
      std::unique_ptr<Store> own;
      if (r % 2 == 1) {
        auto opened = OpenSqliteStore(db_path_);
        if (opened.ok()) {
          own = std::move(opened).value();
        } else {
          ++open_failures;
        }
      }
      Store* store = own ? own.get() : store_.get();
      start.arrive_and_wait();
      auto moved = store->TransitionVm("v1", VmState::kCreating, VmState::kStarting);
      if (moved.ok()) {
        ++won;
      } else if (moved.error().code() == ErrorCode::kFailedPrecondition) {
        ++lost;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(open_failures, 0);
  EXPECT_EQ(won, 1);
  EXPECT_EQ(lost, kRacers - 1);
  EXPECT_EQ(store_->ListEvents("v1", 100)->size(), 1u);
}

TEST_F(SqliteStoreTest, CommittedDataSurvivesAProcessCrash) {
  store_.reset();  // SQLite connections must not cross fork()
  pid_t child = ::fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    auto store = OpenSqliteStore(db_path_);
    bool ok = store.ok() && (*store)->InsertVm(Vm("v1", "web")).ok() &&
              (*store)->TransitionVm("v1", VmState::kCreating, VmState::kStarting).ok();
    _exit(ok ? 0 : 1);  // no destructors, no sqlite3_close: as if killed right after the commit
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The connection was never closed, so the commits are still only in the write-ahead log.
  EXPECT_GT(fs::file_size(fs::path(db_path_) += "-wal"), 0u);

  store_ = Open();
  ASSERT_NE(store_, nullptr);
  auto vm = store_->GetVm("v1");
  ASSERT_TRUE(vm.ok()) << vm.error().message();
  EXPECT_EQ(vm->state, VmState::kStarting);
  EXPECT_EQ(store_->ListEvents("v1", 10)->back().detail, "creating -> starting");
}

// Web authentication.

WebSession Session(const std::string& hash, const std::string& host,
                   const std::string& parent = "") {
  return WebSession{hash, "u1", host, parent, 10, 1000, 10, false};
}

TEST_F(SqliteStoreTest, ALoginLinkIsTakenOnce) {
  ASSERT_TRUE(store_->InsertLoginLink(LoginLinkRecord{"h1", "u1", 10, 310}).ok());
  auto taken = store_->TakeLoginLink("h1");
  ASSERT_TRUE(taken.ok()) << taken.error().message();
  EXPECT_EQ(taken->user_id, "u1");
  EXPECT_EQ(taken->expires_at, 310);
  EXPECT_EQ(store_->TakeLoginLink("h1").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->InsertLoginLink(LoginLinkRecord{"h2", "nobody", 10, 310}).error().message(),
            "no user 'nobody'");
}

TEST_F(SqliteStoreTest, WebSessionsRoundTripAndTouch) {
  ASSERT_TRUE(store_->InsertWebSession(Session("s1", "vmctl.localhost")).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("s2", "web.vmctl.localhost", "s1")).ok());
  auto child = store_->GetWebSession("s2");
  ASSERT_TRUE(child.ok()) << child.error().message();
  EXPECT_EQ(child->host, "web.vmctl.localhost");
  EXPECT_EQ(child->parent_hash, "s1");
  EXPECT_FALSE(child->revoked);
  ASSERT_TRUE(store_->TouchWebSession("s2", 99).ok());
  EXPECT_EQ(store_->GetWebSession("s2")->last_seen_at, 99);
  EXPECT_EQ(store_->GetWebSession("s1")->parent_hash, "");
  EXPECT_EQ(store_->GetWebSession("nope").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->InsertWebSession(Session("s3", "x.vmctl.localhost", "nope")).error().code(),
            ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, RevokingASessionRevokesItsDerivedOnes) {
  ASSERT_TRUE(store_->InsertWebSession(Session("p1", "vmctl.localhost")).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("c1", "a.vmctl.localhost", "p1")).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("c2", "b.vmctl.localhost", "p1")).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("p2", "vmctl.localhost")).ok());
  auto revoked = store_->RevokeWebSession("p1", 20);
  ASSERT_TRUE(revoked.ok()) << revoked.error().message();
  EXPECT_EQ(*revoked, 3);
  for (auto hash : {"p1", "c1", "c2"}) EXPECT_TRUE(store_->GetWebSession(hash)->revoked) << hash;
  EXPECT_FALSE(store_->GetWebSession("p2")->revoked);
  EXPECT_EQ(*store_->RevokeWebSession("p1", 20), 0);
  EXPECT_EQ(store_->RevokeWebSession("nope", 20).error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, RevokingAUsersSessionsCountsOnlyLiveOnes) {
  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "bob@example.com", 1}).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("a", "vmctl.localhost")).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("b", "x.vmctl.localhost", "a")).ok());
  WebSession old = Session("c", "vmctl.localhost");
  old.expires_at = 15;
  ASSERT_TRUE(store_->InsertWebSession(old).ok());
  WebSession bobs = Session("d", "vmctl.localhost");
  bobs.user_id = "u2";
  ASSERT_TRUE(store_->InsertWebSession(bobs).ok());
  EXPECT_EQ(*store_->RevokeUserWebSessions("u1", 20), 2);
  EXPECT_TRUE(store_->GetWebSession("c")->revoked);
  EXPECT_FALSE(store_->GetWebSession("d")->revoked);
  EXPECT_EQ(*store_->RevokeUserWebSessions("nobody", 20), 0);
}

TEST_F(SqliteStoreTest, AHostTicketIsTakenOnceAndGoesWithItsSession) {
  ASSERT_TRUE(store_->InsertWebSession(Session("s1", "vmctl.localhost")).ok());
  ASSERT_TRUE(
      store_->InsertHostTicket(HostTicket{"t1", "s1", "web.vmctl.localhost", 10, 130}).ok());
  ASSERT_TRUE(
      store_->InsertHostTicket(HostTicket{"t2", "s1", "web.vmctl.localhost", 10, 130}).ok());
  auto taken = store_->TakeHostTicket("t1");
  ASSERT_TRUE(taken.ok()) << taken.error().message();
  EXPECT_EQ(taken->session_hash, "s1");
  EXPECT_EQ(taken->host, "web.vmctl.localhost");
  EXPECT_EQ(store_->TakeHostTicket("t1").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->InsertHostTicket(HostTicket{"t3", "nope", "x", 10, 130}).error().code(),
            ErrorCode::kNotFound);
  ASSERT_TRUE(store_->DeleteExpiredWebAuth(1000).ok());  // the session expires at 1000
  EXPECT_EQ(store_->TakeHostTicket("t2").error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, ApiTokensAreListedFoundByHashAndRemovedByTheirOwner) {
  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "bob@example.com", 1}).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->InsertApiToken(ApiToken{"k2", "hash2", "u1", "v1", 20, 0, 0}).ok());
  ASSERT_TRUE(store_->InsertApiToken(ApiToken{"k1", "hash1", "u1", "", 10, 500, 0}).ok());
  EXPECT_EQ(store_->InsertApiToken(ApiToken{"k3", "hash1", "u1", "", 10, 0, 0}).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->InsertApiToken(ApiToken{"k3", "hash3", "u1", "v9", 10, 0, 0}).error().message(),
            "no VM 'v9'");
  EXPECT_EQ(store_->InsertApiToken(ApiToken{"k3", "hash3", "u9", "", 10, 0, 0}).error().message(),
            "no user 'u9'");
  auto found = store_->GetApiTokenBySecret("hash2");
  ASSERT_TRUE(found.ok()) << found.error().message();
  EXPECT_EQ(found->id, "k2");
  EXPECT_EQ(found->vm_id, "v1");
  ASSERT_TRUE(store_->TouchApiToken("k2", 77).ok());
  auto listed = store_->ListApiTokens("u1");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].id, "k1");
  EXPECT_EQ((*listed)[0].vm_id, "");
  EXPECT_EQ((*listed)[1].last_used_at, 77);
  EXPECT_EQ(store_->DeleteApiToken("u2", "k1").error().message(), "no token 'k1'");
  ASSERT_TRUE(store_->DeleteApiToken("u1", "k1").ok());
  EXPECT_EQ(store_->GetApiTokenBySecret("hash1").error().code(), ErrorCode::kNotFound);
  // A VM's tokens go with it.
  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_TRUE(store_->ListApiTokens("u1")->empty());
}

TEST_F(SqliteStoreTest, ExpiredWebAuthRowsAreDropped) {
  ASSERT_TRUE(store_->InsertLoginLink(LoginLinkRecord{"l1", "u1", 10, 100}).ok());
  ASSERT_TRUE(store_->InsertLoginLink(LoginLinkRecord{"l2", "u1", 10, 300}).ok());
  WebSession old = Session("s1", "vmctl.localhost");
  old.expires_at = 100;
  ASSERT_TRUE(store_->InsertWebSession(old).ok());
  ASSERT_TRUE(store_->InsertWebSession(Session("s2", "x.vmctl.localhost", "s1")).ok());
  ASSERT_TRUE(store_->InsertApiToken(ApiToken{"k1", "h1", "u1", "", 10, 100, 0}).ok());
  ASSERT_TRUE(store_->InsertApiToken(ApiToken{"k2", "h2", "u1", "", 10, 0, 0}).ok());
  ASSERT_TRUE(store_->DeleteExpiredWebAuth(200).ok());
  EXPECT_FALSE(store_->TakeLoginLink("l1").ok());
  EXPECT_TRUE(store_->TakeLoginLink("l2").ok());
  EXPECT_FALSE(store_->GetWebSession("s1").ok());
  EXPECT_FALSE(store_->GetWebSession("s2").ok());  // derived from s1
  auto tokens = store_->ListApiTokens("u1");
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].id, "k2");  // never expires
}

// ---- Sharing: host names, web settings, share links, custom domains. ----

TEST_F(SqliteStoreTest, DuplicateVmNamesFromBeforeHostNamesAreRenamedButTheOldest) {
  fs::path old = dir_ / "v6.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(old.c_str(), &db), SQLITE_OK);
    std::string sql =
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT "
        "NULL);";
    for (size_t v = 0; v < 6; ++v) sql += std::string(sqlite::Migrations()[v]);
    auto vm = [](const char* id, const char* owner, const char* name, int created) {
      return fmt::format(
          "INSERT INTO vms (id, owner, name, image, state, cpus, memory_mib, root_disk_mib, "
          "backend, created_at, updated_at) VALUES ('{}', '{}', '{}', 'default', 'stopped', 1, "
          "512, 2048, 'qemu', {}, 0);",
          id, owner, name, created);
    };
    sql +=
        "INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0);"
        "INSERT INTO users VALUES ('u1', 'alice', '', 0), ('u2', 'bob', '', 0), "
        "('u3', 'carol', '', 0);" +
        vm("bbbb00000001", "u2", "web", 20) + vm("aaaa00000001", "u1", "web", 10) +
        vm("cccc00000001", "u3", "web", 10) + vm("dddd00000001", "u2", "db", 5) +
        vm("eeee00000001", "u1", "abcdefghijklmnopqrstuvwxyz-bcdef", 1) +
        vm("ffff00000001", "u2", "abcdefghijklmnopqrstuvwxyz-bcdef", 2);
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  auto store = OpenSqliteStore(old);
  ASSERT_TRUE(store.ok()) << store.error().message();
  // The oldest keeps the name (insertion order breaks the tie of aaaa and cccc).
  EXPECT_EQ((*store)->GetVm("aaaa00000001")->name, "web");
  EXPECT_EQ((*store)->GetVm("cccc00000001")->name, "web-cccc");
  EXPECT_EQ((*store)->GetVm("bbbb00000001")->name, "web-bbbb");
  EXPECT_EQ((*store)->GetVm("dddd00000001")->name, "db");
  EXPECT_EQ((*store)->GetVm("eeee00000001")->name, "abcdefghijklmnopqrstuvwxyz-bcdef");
  // Cut to stay within 32 characters, without a dangling '-'.
  EXPECT_EQ((*store)->GetVm("ffff00000001")->name, "abcdefghijklmnopqrstuvwxyz-ffff");
  EXPECT_FALSE((*store)->GetVmWebSettings("aaaa00000001")->is_public);
  EXPECT_EQ((*store)->GetVmWebSettings("aaaa00000001")->web_port, 0);
}

TEST_F(SqliteStoreTest, WebVisibilityAndPortArePerVm) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v2", "db")).ok());
  ASSERT_TRUE(store_->SetVmPublic("v1", true).ok());
  ASSERT_TRUE(store_->SetVmWebPort("v1", 8080).ok());
  EXPECT_TRUE(store_->GetVmWebSettings("v1")->is_public);
  EXPECT_EQ(store_->GetVmWebSettings("v1")->web_port, 8080);
  EXPECT_FALSE(store_->GetVmWebSettings("v2")->is_public);
  EXPECT_EQ(store_->GetVmWebSettings("v2")->web_port, 0);
  // UpdateVm, which the lifecycle calls with rows it read earlier, leaves them alone.
  ASSERT_TRUE(store_->UpdateVm(*store_->GetVm("v1")).ok());
  EXPECT_TRUE(store_->GetVmWebSettings("v1")->is_public);
  ASSERT_TRUE(store_->SetVmPublic("v1", false).ok());
  ASSERT_TRUE(store_->SetVmWebPort("v1", 0).ok());
  EXPECT_FALSE(store_->GetVmWebSettings("v1")->is_public);
  EXPECT_EQ(store_->GetVmWebSettings("v1")->web_port, 0);
  EXPECT_EQ(store_->SetVmWebPort("v1", 65536).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->SetVmPublic("v9", true).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->SetVmWebPort("v9", 80).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetVmWebSettings("v9").error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, AShareLinkIsRedeemedOnceIntoAShare) {
  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "", 1}).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->AddShareLink(ShareLinkRecord{"l2", "v1", "h2", 6}).ok());
  ASSERT_TRUE(store_->AddShareLink(ShareLinkRecord{"l1", "v1", "h1", 5}).ok());
  ASSERT_TRUE(store_->AddShareLink(ShareLinkRecord{"l3", "v1", "h3", 7}).ok());
  EXPECT_EQ(store_->AddShareLink(ShareLinkRecord{"l4", "v1", "h1", 8}).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->AddShareLink(ShareLinkRecord{"l5", "v9", "h5", 8}).error().code(),
            ErrorCode::kNotFound);
  auto links = store_->ListShareLinks("v1");
  ASSERT_TRUE(links.ok());
  ASSERT_EQ(links->size(), 3u);
  EXPECT_EQ((*links)[0].id, "l1");
  EXPECT_EQ((*links)[0].secret_hash, "h1");
  EXPECT_EQ((*links)[1].id, "l2");

  auto vm = store_->RedeemShareLink("h1", "u2", 9);
  ASSERT_TRUE(vm.ok()) << vm.error().message();
  EXPECT_EQ(vm->id, "v1");
  ASSERT_EQ(store_->ListShares("v1")->size(), 1u);
  EXPECT_EQ(store_->ListShares("v1")->front().user_id, "u2");
  EXPECT_EQ(store_->ListShares("v1")->front().created_at, 9);
  EXPECT_EQ(store_->RedeemShareLink("h1", "u2", 10).error().code(), ErrorCode::kNotFound);
  // A second link for someone who has the share, and the owner's own: used up, nothing added.
  ASSERT_TRUE(store_->RedeemShareLink("h2", "u2", 11).ok());
  ASSERT_TRUE(store_->RedeemShareLink("h3", "u1", 12).ok());
  EXPECT_EQ(store_->ListShares("v1")->size(), 1u);
  EXPECT_TRUE(store_->ListShareLinks("v1")->empty());

  ASSERT_TRUE(store_->AddShareLink(ShareLinkRecord{"l6", "v1", "h6", 13}).ok());
  EXPECT_EQ(store_->RemoveShareLink("v2", "l6").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->RemoveShareLink("v1", "l6").ok());
  EXPECT_EQ(store_->RemoveShareLink("v1", "l6").error().message(), "no share link 'l6'");
  ASSERT_TRUE(store_->AddShareLink(ShareLinkRecord{"l7", "v1", "h7", 14}).ok());
  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_EQ(RawDb(db_path_).Query("SELECT COUNT(*) FROM share_links"), "0");
}

TEST_F(SqliteStoreTest, CustomDomainsAreUniqueAcrossVmsAndGoWithTheVm) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v2", "db")).ok());
  ASSERT_TRUE(store_->AddCustomDomain(CustomDomain{"www.example.com", "v1", 5}).ok());
  ASSERT_TRUE(store_->AddCustomDomain(CustomDomain{"example.com", "v1", 6}).ok());
  auto taken = store_->AddCustomDomain(CustomDomain{"example.com", "v2", 7});
  EXPECT_EQ(taken.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(taken.error().message(), "the domain example.com is taken");
  EXPECT_EQ(store_->AddCustomDomain(CustomDomain{"a.example", "v9", 7}).error().code(),
            ErrorCode::kNotFound);
  auto domains = store_->ListCustomDomains("v1");
  ASSERT_TRUE(domains.ok());
  ASSERT_EQ(domains->size(), 2u);
  EXPECT_EQ((*domains)[0].domain, "example.com");
  EXPECT_EQ((*domains)[1].domain, "www.example.com");
  EXPECT_EQ(store_->GetCustomDomain("www.example.com")->vm_id, "v1");
  EXPECT_EQ(store_->GetCustomDomain("nope.example").error().message(), "no domain nope.example");
  EXPECT_EQ(store_->RemoveCustomDomain("v2", "example.com").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->RemoveCustomDomain("v1", "example.com").ok());
  EXPECT_EQ(store_->ListCustomDomains("v1")->size(), 1u);
  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_EQ(store_->GetCustomDomain("www.example.com").error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace vmctl
