#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "base/process.h"

namespace vmctl {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("store_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = Open();
    ASSERT_TRUE(store_->CreateUser(User{"u1", "alice", "a@example.com", 1}).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Store> Open() {
    auto s = OpenSqliteStore(dir_ / "vmctl.db");
    EXPECT_TRUE(s.ok()) << s.error().message();
    return std::move(s).value();
  }
  static VmRecord Vm(const std::string& id, const std::string& name) {
    VmRecord vm;
    vm.id = id;
    vm.owner = "u1";
    vm.name = name;
    vm.image = "default";
    vm.backend = "qemu";
    vm.created_at = vm.updated_at = 100;
    return vm;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, WalAndForeignKeysAreOn) {
  auto mode = RunCommand({"sqlite3", (dir_ / "vmctl.db").string(), "PRAGMA journal_mode"});
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(mode->out, "wal\n");
  VmRecord orphan = Vm("v0", "orphan");
  orphan.owner = "nobody";
  auto r = store_->InsertVm(orphan);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, VmCrudAndUniqueNames) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  auto dup = store_->InsertVm(Vm("v2", "web"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(dup.error().message(), "a VM named 'web' already exists");

  auto vm = store_->GetVmByName("u1", "web");
  ASSERT_TRUE(vm.ok());
  EXPECT_EQ(vm->state, VmState::kCreating);
  vm->pid = 42;
  vm->pid_start_time = 7;
  vm->api_socket = "/x/qmp.sock";
  ASSERT_TRUE(store_->UpdateVm(*vm).ok());
  EXPECT_EQ(store_->GetVm("v1")->pid, 42);
  EXPECT_EQ(store_->GetVm("v1")->pid_start_time, 7u);
  EXPECT_EQ(store_->ListVms("u1")->size(), 1u);
  EXPECT_EQ(store_->ListVms(std::nullopt)->size(), 1u);
  EXPECT_EQ(store_->ListVms("other")->size(), 0u);
  EXPECT_EQ(store_->GetVmByName("u1", "nope").error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_EQ(store_->GetVm("v1").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->ListEvents("v1", 100)->empty());
  EXPECT_EQ(store_->DeleteVm("v1").error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, TransitionsAreCheckedCompareAndSet) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  auto starting = store_->TransitionVm("v1", VmState::kCreating, VmState::kStarting);
  ASSERT_TRUE(starting.ok());
  EXPECT_EQ(starting->state, VmState::kStarting);

  auto stale = store_->TransitionVm("v1", VmState::kCreating, VmState::kStarting);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(stale.error().message().find("is starting, expected creating"), std::string::npos);

  auto illegal = store_->TransitionVm("v1", VmState::kStarting, VmState::kCreating);
  ASSERT_FALSE(illegal.ok());
  EXPECT_EQ(store_->GetVm("v1")->state, VmState::kStarting);

  auto failed = store_->TransitionVm("v1", VmState::kStarting, VmState::kFailed, "boom");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->error, "boom");
  auto events = store_->ListEvents("v1", 10);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 3u);
  EXPECT_EQ(events->back().detail, "starting -> failed: boom");
  auto again = store_->TransitionVm("v1", VmState::kFailed, VmState::kStarting);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->error, "");
}

TEST_F(SqliteStoreTest, UsersKeysQuotasSharesImages) {
  EXPECT_EQ(store_->CreateUser(User{"u2", "alice", "", 1}).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->GetUserByName("alice")->id, "u1");
  EXPECT_EQ(store_->GetUser("zz").error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->AddSshKey(SshKey{"SHA256:a", "u1", "ssh-ed25519 AAA", 1}).ok());
  EXPECT_EQ(store_->AddSshKey(SshKey{"SHA256:a", "u1", "x", 1}).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->ListSshKeys("u1")->size(), 1u);
  ASSERT_TRUE(store_->RemoveSshKey("SHA256:a").ok());
  EXPECT_EQ(store_->RemoveSshKey("SHA256:a").error().code(), ErrorCode::kNotFound);

  Quota defaults = *store_->GetQuota("u1");
  EXPECT_EQ(defaults.max_vms, Quota{}.max_vms);
  ASSERT_TRUE(store_->SetQuota(Quota{"u1", 2, 4, 1024, 4096}).ok());
  ASSERT_TRUE(store_->SetQuota(Quota{"u1", 3, 4, 1024, 4096}).ok());
  EXPECT_EQ(store_->GetQuota("u1")->max_vms, 3);

  ASSERT_TRUE(store_->CreateUser(User{"u2", "bob", "", 1}).ok());
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  ASSERT_TRUE(store_->AddShare(Share{"v1", "u2", 5}).ok());
  EXPECT_EQ(store_->AddShare(Share{"v1", "u2", 5}).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->ListShares("v1")->size(), 1u);
  ASSERT_TRUE(store_->DeleteVm("v1").ok());
  EXPECT_TRUE(store_->ListShares("v1")->empty()) << "shares cascade with the VM";

  ImageRecord image{"default", "h1", "/d", "/d/k", "/d/i", "/d/r", "6.1", "debian", 10, 1};
  ASSERT_TRUE(store_->PutImage(image).ok());
  image.input_hash = "h2";
  ASSERT_TRUE(store_->PutImage(image).ok());
  EXPECT_EQ(store_->GetImage("default")->input_hash, "h2");
  EXPECT_EQ(store_->ListImages()->size(), 1u);
  ASSERT_TRUE(store_->DeleteImage("default").ok());
  EXPECT_EQ(store_->GetImage("default").error().code(), ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndAppliesNoMigration) {
  ASSERT_TRUE(store_->InsertVm(Vm("v1", "web")).ok());
  store_.reset();
  store_ = Open();
  EXPECT_EQ(store_->GetVm("v1")->name, "web");
  auto versions = RunCommand(
      {"sqlite3", (dir_ / "vmctl.db").string(), "select count(*) from schema_migrations"});
  EXPECT_EQ(versions->out, "1\n");
}

TEST_F(SqliteStoreTest, RefusesDatabaseFromNewerVersion) {
  store_.reset();
  ASSERT_EQ(RunCommand({"sqlite3", (dir_ / "vmctl.db").string(),
                        "insert into schema_migrations values (99, 0)"})
                ->exit_code,
            0);
  auto s = OpenSqliteStore(dir_ / "vmctl.db");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(s.error().message().find("newer"), std::string::npos);
}

TEST_F(SqliteStoreTest, ConcurrentWritersStayConsistent) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        std::string id = "t" + std::to_string(t) + "i" + std::to_string(i);
        ASSERT_TRUE(store_->InsertVm(Vm(id, id)).ok());
        ASSERT_TRUE(store_->TransitionVm(id, VmState::kCreating, VmState::kStarting).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  auto vms = store_->ListVms(std::nullopt);
  ASSERT_EQ(vms->size(), 160u);
  for (const auto& vm : *vms) EXPECT_EQ(vm.state, VmState::kStarting);
}

TEST_F(SqliteStoreTest, CommittedDataSurvivesAProcessCrash) {
  store_.reset();
  pid_t child = ::fork();
  if (child == 0) {
    auto s = OpenSqliteStore(dir_ / "vmctl.db");
    if (!s.ok() || !(*s)->InsertVm(Vm("v1", "web")).ok() ||
        !(*s)->TransitionVm("v1", VmState::kCreating, VmState::kStarting).ok()) {
      _exit(1);
    }
    _exit(0);  // no destructor, no close: like kill -9 right after the commit
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  store_ = Open();
  EXPECT_EQ(store_->GetVm("v1")->state, VmState::kStarting);
}

}  // namespace
}  // namespace vmctl
