#include "ssh_gateway/key_auth.h"

#include <gtest/gtest.h>

#include <map>

namespace vmctl::ssh_gateway {
namespace {

using Reply = KeyAuth::Reply;

KeyAuth::Lookup Known(std::map<std::string, std::string> keys) {
  return [keys](const std::string& fp) -> std::optional<std::string> {
    auto it = keys.find(fp);
    if (it == keys.end()) return std::nullopt;
    return it->second;
  };
}

// What OpenSSH does: probe, sign, and after a partial success offer every key again.
TEST(KeyAuthTest, AKnownKeyOfferedAfterAnUnknownOneWins) {
  KeyAuth auth(Known({{"SHA256:b", "u1"}}));
  EXPECT_EQ(auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", false), Reply::kPkOk);
  EXPECT_EQ(auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", true), Reply::kPartial);
  EXPECT_TRUE(auth.KeyboardInteractiveOffered());
  EXPECT_EQ(auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", false), Reply::kFailure);
  EXPECT_EQ(auth.OnPublicKey("SHA256:b", "ssh-ed25519 B", false), Reply::kPkOk);
  EXPECT_EQ(auth.OnPublicKey("SHA256:b", "ssh-ed25519 B", true), Reply::kSuccess);
  EXPECT_EQ(auth.user_id(), "u1");
}

TEST(KeyAuthTest, OnlyUnknownKeysLandInTheLobbyWithTheFirstProvenKey) {
  KeyAuth auth(Known({}));
  EXPECT_EQ(auth.OnKeyboardInteractive(), Reply::kFailure) << "nothing proven yet";
  EXPECT_FALSE(auth.KeyboardInteractiveOffered());
  auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", false);
  EXPECT_EQ(auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", true), Reply::kPartial);
  auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", false);
  auth.OnPublicKey("SHA256:c", "ssh-ed25519 C", false);
  EXPECT_EQ(auth.OnPublicKey("SHA256:c", "ssh-ed25519 C", true), Reply::kPartial);
  EXPECT_EQ(auth.OnPublicKey("SHA256:a", "ssh-ed25519 A", false), Reply::kFailure);
  EXPECT_EQ(auth.OnPublicKey("SHA256:c", "ssh-ed25519 C", false), Reply::kFailure);
  EXPECT_EQ(auth.OnKeyboardInteractive(), Reply::kSuccess);
  EXPECT_EQ(auth.user_id(), "");
  EXPECT_EQ(auth.registration_key(), "ssh-ed25519 A");
  EXPECT_EQ(auth.registration_fingerprint(), "SHA256:a");
}

TEST(KeyAuthTest, AnUnsignedProbeNeverAuthenticates) {
  KeyAuth auth(Known({{"SHA256:b", "u1"}}));
  EXPECT_EQ(auth.OnPublicKey("SHA256:b", "ssh-ed25519 B", false), Reply::kPkOk);
  EXPECT_EQ(auth.user_id(), "");
  EXPECT_FALSE(auth.KeyboardInteractiveOffered());
}

TEST(KeyAuthTest, TooManyKeysAreRefused) {
  KeyAuth auth(Known({{"SHA256:known", "u1"}}));
  for (int i = 0; i < KeyAuth::kMaxKeys; ++i) {
    std::string fp = "SHA256:" + std::to_string(i);
    auth.OnPublicKey(fp, "k", true);
  }
  EXPECT_EQ(auth.OnPublicKey("SHA256:known", "k", true), Reply::kFailure);
}

}  // namespace
}  // namespace vmctl::ssh_gateway
