#include "ssh_gateway/admission.h"

#include <gtest/gtest.h>

namespace vmctl::ssh_gateway {
namespace {

using std::chrono::milliseconds;
using Actions = Admission::Actions;
using Arrival = Admission::Arrival;

Admission::Limits Small() {
  Admission::Limits limits;
  limits.max_handshakes = 4;
  limits.max_per_source = 2;
  limits.max_queued = 3;
  limits.max_sessions = 3;
  limits.handshake_timeout = milliseconds(20000);
  limits.pressure_timeout = milliseconds(5000);
  return limits;
}

const auto t0 = Admission::Clock::time_point{};

TEST(AdmissionTest, OneSourceQueuesBeyondItsLimitAndIsRefusedBeyondTheQueue) {
  Admission a(Small());
  Actions act;
  EXPECT_EQ(a.Arrive(1, "10.0.0.1", t0, act), Arrival::kStart);
  EXPECT_EQ(a.Arrive(2, "10.0.0.1", t0, act), Arrival::kStart);
  EXPECT_EQ(a.Arrive(3, "10.0.0.1", t0, act), Arrival::kQueue);
  EXPECT_EQ(a.Arrive(4, "10.0.0.1", t0, act), Arrival::kQueue);
  EXPECT_EQ(a.Arrive(5, "10.0.0.1", t0, act), Arrival::kQueue);
  EXPECT_EQ(a.Arrive(6, "10.0.0.1", t0, act), Arrival::kRefuse);
  EXPECT_TRUE(act.end.empty() && act.start.empty() && act.close.empty());
  // Another source is not held up by the first one's queue.
  EXPECT_EQ(a.Arrive(7, "10.0.0.2", t0, act), Arrival::kStart);
  EXPECT_EQ(a.handshakes(), 3);
  EXPECT_EQ(a.queued(), 3);

  // A registered login frees its source's slot: the oldest queued one starts.
  EXPECT_TRUE(a.LoggedIn(1, true, t0, act));
  EXPECT_EQ(act.start, std::vector<uint64_t>{3});
  act = {};
  // A lobby keeps its slot; leaving frees it.
  EXPECT_TRUE(a.LoggedIn(2, false, t0, act));
  EXPECT_TRUE(act.start.empty());
  a.Leave(2, t0, act);
  EXPECT_EQ(act.start, std::vector<uint64_t>{4});
  EXPECT_EQ(a.sessions(), 1);
}

TEST(AdmissionTest, AFullPoolPushesOutTheOldestHandshakeOfTheBusiestSource) {
  Admission a(Small());
  Actions act;
  for (uint64_t id = 1; id <= 4; ++id) {
    EXPECT_EQ(a.Arrive(id, id <= 2 ? "attacker-a" : "attacker-b", t0, act), Arrival::kStart);
  }
  EXPECT_TRUE(act.end.empty());
  auto arrive = [&](uint64_t id, const std::string& source) {
    act = {};
    EXPECT_EQ(a.Arrive(id, source, t0, act), Arrival::kStart);
    EXPECT_EQ(act.end.size(), 1u);
    return act.end.empty() ? 0 : act.end[0];
  };
  EXPECT_EQ(arrive(5, "user"), 1u);
  EXPECT_EQ(arrive(6, "attacker-c"), 3u) << "b holds two, a one";
  // Every source holds one now: the oldest goes, and the user's turn comes only when it is the
  // oldest (an attacker needs as many addresses as there are slots, and a fast flood).
  EXPECT_EQ(arrive(7, "attacker-d"), 2u);
  EXPECT_EQ(arrive(8, "attacker-e"), 4u);
  EXPECT_EQ(arrive(9, "attacker-f"), 5u);
  EXPECT_EQ(a.handshakes(), 4);
  // The pushed-out ones leave when their threads end; their slots were given away already.
  for (uint64_t id : {1, 2, 3, 4, 5}) a.Leave(id, t0, act);
  EXPECT_EQ(a.handshakes(), 4);
  EXPECT_FALSE(a.LoggedIn(5, true, t0, act)) << "gone";
  EXPECT_TRUE(a.LoggedIn(9, true, t0, act));
}

TEST(AdmissionTest, HandshakesExpireSoonerUnderPressure) {
  Admission a(Small());
  Actions act;
  a.Arrive(1, "x", t0, act);
  a.Expire(t0 + milliseconds(6000), act);
  EXPECT_TRUE(act.end.empty()) << "one of four: no pressure";
  a.Expire(t0 + milliseconds(20000), act);
  EXPECT_EQ(act.end, std::vector<uint64_t>{1});
  a.Leave(1, t0, act);
  act = {};

  a.Arrive(2, "x", t0, act);
  a.Arrive(3, "y", t0 + milliseconds(3000), act);
  a.Expire(t0 + milliseconds(6000), act);
  EXPECT_EQ(act.end, std::vector<uint64_t>{2}) << "half the pool: 5 s";
  EXPECT_EQ(a.handshakes(), 1);
}

TEST(AdmissionTest, QueuedConnectionsExpireAndExpiredSlotsGoToTheQueue) {
  Admission a(Small());
  Actions act;
  a.Arrive(1, "x", t0, act);
  a.Arrive(2, "x", t0, act);
  a.Arrive(3, "x", t0 + milliseconds(1000), act);
  a.Arrive(4, "x", t0 + milliseconds(19000), act);
  // 1 and 2 time out (pressure: 2 of 4), so 3 and 4 start; 3 had waited long but starts afresh.
  a.Expire(t0 + milliseconds(19500), act);
  EXPECT_EQ(act.end, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(act.start, (std::vector<uint64_t>{3, 4}));
  act = {};
  a.Arrive(5, "x", t0 + milliseconds(19500), act);
  a.Expire(t0 + milliseconds(39600), act);
  EXPECT_EQ(act.close, std::vector<uint64_t>{5}) << "queued past the handshake timeout";
  EXPECT_EQ(a.queued(), 0);
}

TEST(AdmissionTest, LoggedInSessionsAreCapped) {
  Admission a(Small());
  Actions act;
  for (uint64_t id = 1; id <= 4; ++id) a.Arrive(id, "s" + std::to_string(id), t0, act);
  EXPECT_TRUE(a.LoggedIn(1, true, t0, act));
  EXPECT_TRUE(a.LoggedIn(2, false, t0, act));
  EXPECT_TRUE(a.LoggedIn(3, true, t0, act));
  EXPECT_FALSE(a.LoggedIn(4, true, t0, act));
  EXPECT_FALSE(a.LoggedIn(4, true, t0, act)) << "once";
  a.Leave(4, t0, act);
  a.Leave(1, t0, act);
  EXPECT_EQ(a.sessions(), 2);
  EXPECT_EQ(a.handshakes(), 0);
  a.Arrive(5, "s5", t0, act);
  EXPECT_TRUE(a.LoggedIn(5, true, t0, act));
}

}  // namespace
}  // namespace vmctl::ssh_gateway
