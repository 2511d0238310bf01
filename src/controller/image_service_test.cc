// ImageService with a real SQLite store, the real copy volume backend and a builder that writes a
// tiny fake image: default recipe resolution, atomic failed builds, refusal while VMs use an
// image, and pruning of builds that nothing refers to.
#include "controller/image_service.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/io.h"
#include "storage/backends.h"
#include "store/sqlite/sqlite_store.h"

namespace vmctl::controller {
namespace {

namespace fs = std::filesystem;

class ImageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path("/tmp") / ("imgsvc-" + std::to_string(::getpid()) + "-" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "cache");
    store_ = std::move(OpenSqliteStore(dir_ / "vmctl.db")).value();
    volumes_ = storage::NewCopyBackend(dir_ / "disks");
    service_ = std::make_unique<ImageService>(
        *store_, *volumes_,
        [this](const ImageBuildRequest& r, const Progress&) { return FakeBuild(r); },
        dir_ / "images");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // One cache directory per distinct source, as the real builder keys its cache by inputs.
  Result<ImageRecord> FakeBuild(const ImageBuildRequest& r) {
    seen_.push_back(*r.source);
    if (fail_next_) {
      fail_next_ = false;
      return Unavailable("mmdebstrap failed: network unreachable");
    }
    std::string id = "build-" + DescribeImageSource(*r.source).substr(0, 6) +
                     std::to_string(r.source->packages.size());
    fs::path d = dir_ / "cache" / id;
    fs::create_directories(d);
    for (const char* f : {kImageKernelFile, kImageInitramfsFile, kImageRootfsFile}) {
      VMCTL_TRY(WriteFileAtomic(d / f, std::string(4096, 'x')));
    }
    return ImageRecord{r.name,
                       id,
                       d.string(),
                       (d / kImageKernelFile).string(),
                       (d / kImageInitramfsFile).string(),
                       (d / kImageRootfsFile).string(),
                       "6.1",
                       DescribeImageSource(*r.source),
                       3 * 4096,
                       1};
  }

  VmRecord VmUsing(const ImageRecord& image, const std::string& name) {
    VmRecord vm;
    vm.id = "0123456789a" + name.substr(0, 1);
    vm.owner = "admin";
    vm.name = name;
    vm.image = image.name;
    vm.image_dir = image.dir;
    return vm;
  }

  fs::path dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<storage::VolumeBackend> volumes_;
  std::unique_ptr<ImageService> service_;
  std::vector<ImageSource> seen_;
  bool fail_next_ = false;
};

TEST_F(ImageServiceTest, OnlyTheDefaultImageHasARecipeWithoutASource) {
  auto custom = service_->Build({"custom", std::nullopt}, nullptr);
  ASSERT_FALSE(custom.ok());
  EXPECT_EQ(custom.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(custom.error().message().find("no recipe for image 'custom'"), std::string::npos);
  EXPECT_TRUE(seen_.empty());
  auto def = service_->Build({kDefaultImageName, std::nullopt}, nullptr);
  ASSERT_TRUE(def.ok()) << def.error().message();
  ASSERT_EQ(seen_.size(), 1u);
  EXPECT_EQ(seen_[0].kind, ImageSource::Kind::kDebian);
  EXPECT_EQ(seen_[0].suite, "bookworm");
  EXPECT_EQ(fs::path(def->dir).parent_path(), dir_ / "images");
  EXPECT_TRUE(fs::exists(def->rootfs));
}

TEST_F(ImageServiceTest, BadNamesAndFailedBuildsRegisterNothing) {
  auto bad = service_->Build({"Bad/Name", ImageSource{}}, nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  fail_next_ = true;
  auto failed = service_->Build({"app", ImageSource{}}, nullptr);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(service_->List()->empty());
  EXPECT_FALSE(fs::exists(dir_ / "images") && !fs::is_empty(dir_ / "images"));
}

TEST_F(ImageServiceTest, RemoveIsRefusedWhileUsedAndRebuildsKeepTheOldBuildForItsVms) {
  ImageSource plain;
  auto first = service_->Build({"app", plain}, nullptr);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(store_->CreateUser(User{"admin", "admin", "", 1}).ok());
  ASSERT_TRUE(store_->InsertVm(VmUsing(*first, "web")).ok());

  ImageSource with_curl;
  with_curl.packages = {"curl"};
  auto second = service_->Build({"app", with_curl}, nullptr);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->dir, first->dir);
  EXPECT_TRUE(fs::exists(first->rootfs)) << "the VM still boots the first build";

  auto refused = service_->Remove("app", nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(refused.error().message().find("in use by 1 VM (web)"), std::string::npos)
      << refused.error().message();
  EXPECT_TRUE(store_->GetImage("app").ok());

  ASSERT_TRUE(store_->DeleteVm(VmUsing(*first, "web").id).ok());
  std::vector<std::string> notes;
  ASSERT_TRUE(service_->Remove("app", [&](const std::string& l) { notes.push_back(l); }).ok());
  EXPECT_EQ(notes.size(), 2u) << "both builds are pruned once nothing refers to them";
  EXPECT_FALSE(fs::exists(first->dir));
  EXPECT_FALSE(fs::exists(second->dir));
  EXPECT_FALSE(store_->GetImage("app").ok());
  auto missing = service_->Remove("app", nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace vmctl::controller
