#include "acme/renewal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace vmctl::acme {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;

SystemTime T0() { return SystemTime(std::chrono::seconds(1700000000)); }

TEST(RenewalTimeTest, AThirdOfTheLifetimeBeforeExpiry) {
  EXPECT_EQ(RenewalTime(T0(), T0() + hours(24 * 90)), T0() + hours(24 * 60));
  EXPECT_EQ(RenewalTime(T0(), T0() + hours(24 * 6)), T0() + hours(24 * 4));
  EXPECT_EQ(RenewalTime(T0(), T0()), T0());
}

TEST(BackoffDelayTest, DoublesFromAMinuteToSixHours) {
  BackoffPolicy p;
  EXPECT_EQ(BackoffDelay(p, 1, 0.5), minutes(1));
  EXPECT_EQ(BackoffDelay(p, 2, 0.5), minutes(2));
  EXPECT_EQ(BackoffDelay(p, 5, 0.5), minutes(16));
  EXPECT_EQ(BackoffDelay(p, 9, 0.5), minutes(256));
  EXPECT_EQ(BackoffDelay(p, 10, 0.5), hours(6));
  EXPECT_EQ(BackoffDelay(p, 1000000, 0.5), hours(6));
  EXPECT_EQ(BackoffDelay(p, 1, 0.0), milliseconds(54000));
  EXPECT_EQ(BackoffDelay(p, 1, 1.0), milliseconds(66000));
}

class ManualClock : public Clock {
 public:
  SystemTime Now() override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void Set(SystemTime t) {
    std::lock_guard lock(mu_);
    now_ = t;
  }

 private:
  std::mutex mu_;
  SystemTime now_ = T0();
};

template <typename F>
bool Eventually(F f) {
  for (int i = 0; i < 500; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return false;
}

IssuedCertificate Cert(SystemTime from, std::string name) {
  return {std::move(name), "key", from, from + hours(24 * 90)};
}

TEST(RenewerTest, IssuesAtOnceThenAtTheRenewalTimeAndBacksOffOnFailure) {
  ManualClock clock;
  std::atomic<int> calls = 0;
  std::atomic<bool> fail = false;
  std::mutex mu;
  std::vector<std::string> installed;
  Renewer renewer(
      [&]() -> Result<IssuedCertificate> {
        int n = ++calls;
        if (fail) return Unavailable("ca down");
        return Cert(clock.Now(), "cert" + std::to_string(n));
      },
      [&](const IssuedCertificate& c) {
        std::lock_guard lock(mu);
        installed.push_back(c.chain_pem);
      },
      clock, {BackoffPolicy{}, milliseconds(5)}, std::nullopt);
  renewer.Start();
  ASSERT_TRUE(Eventually([&] { return renewer.status().not_after.has_value(); }));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(renewer.status().next_attempt, T0() + hours(24 * 60));

  clock.Set(T0() + hours(24 * 59));
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_EQ(calls, 1);

  fail = true;
  clock.Set(T0() + hours(24 * 60));
  ASSERT_TRUE(Eventually([&] { return renewer.status().failures == 1; }));
  Renewer::Status s = renewer.status();
  EXPECT_EQ(s.last_error, "ca down");
  EXPECT_EQ(s.not_after, T0() + hours(24 * 90));  // the old certificate stays
  EXPECT_GE(s.next_attempt, T0() + hours(24 * 60) + milliseconds(54000));
  EXPECT_LE(s.next_attempt, T0() + hours(24 * 60) + milliseconds(66000));

  clock.Set(s.next_attempt);
  ASSERT_TRUE(Eventually([&] { return renewer.status().failures == 2; }));
  EXPECT_GE(renewer.status().next_attempt - s.next_attempt, milliseconds(108000));

  fail = false;
  clock.Set(renewer.status().next_attempt);
  ASSERT_TRUE(Eventually([&] { return renewer.status().failures == 0; }));
  renewer.Stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(installed, (std::vector<std::string>{"cert1", "cert4"}));
}

TEST(RenewerTest, StartsFromTheInstalledCertificateAndStopsPromptly) {
  ManualClock clock;
  std::atomic<int> calls = 0;
  Renewer renewer([&]() -> Result<IssuedCertificate> { return ++calls, Cert(T0(), "x"); },
                  [](const IssuedCertificate&) {}, clock, {BackoffPolicy{}, hours(1)},
                  Cert(T0() - hours(24), "old"));
  renewer.Start();
  auto start = std::chrono::steady_clock::now();
  renewer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace vmctl::acme
