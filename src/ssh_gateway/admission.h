#ifndef VMCTL_SSH_GATEWAY_ADMISSION_H_
#define VMCTL_SSH_GATEWAY_ADMISSION_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace vmctl::ssh_gateway {

// Who gets a connection slot before authentication, so that a flood of connections that never
// authenticate cannot lock users out (docs/ssh-gateway.md, "Limits"):
// - a connection in its handshake (key exchange and authentication) holds one of
//   `max_handshakes` slots; a new one arriving at a full pool takes the slot of the oldest
//   handshake of the source holding the most of them, so an attacker must own more addresses
//   than there are slots before a user's single connection can be pushed out;
// - one source address has at most `max_per_source` connections that are not logged in as a
//   registered user (handshakes and registration lobbies); more wait in a queue (no thread, no
//   key exchange: just the socket) for one of its slots, and are refused when `max_queued`
//   connections already wait;
// - a handshake lasts at most `handshake_timeout`, or `pressure_timeout` while at least half of
//   the pool is taken; a queued connection waits at most `handshake_timeout`;
// - logged-in connections (users and registration lobbies) number at most `max_sessions`.
//
// Pure bookkeeping: the caller does the I/O (starting, closing) the answers ask for, passes the
// time in, and serializes calls (not thread-safe).
class Admission {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    int max_handshakes = 256;
    int max_per_source = 32;
    int max_queued = 256;
    int max_sessions = 512;
    std::chrono::milliseconds handshake_timeout{20000};
    std::chrono::milliseconds pressure_timeout{5000};
  };
  explicit Admission(Limits limits) : limits_(limits) {}

  // What the caller must do after a call, besides the call's own answer.
  struct Actions {
    std::vector<uint64_t> start;  // queued connections to start their handshake now
    std::vector<uint64_t> end;    // handshakes to end (pushed out or past their deadline); the
                                  // caller calls Leave for each once it has ended
    std::vector<uint64_t> close;  // queued connections to close (forgotten already)
  };

  enum class Arrival { kStart, kQueue, kRefuse };
  // A new connection `id` (unique, never reused) from `source`.
  Arrival Arrive(uint64_t id, const std::string& source, Clock::time_point now, Actions& actions);

  // Handshake `id` authenticated, as a registered user or into the registration lobby. False if
  // `max_sessions` are logged in already: the caller ends it (and calls Leave).
  bool LoggedIn(uint64_t id, bool registered, Clock::time_point now, Actions& actions);

  // Connection `id` ended (one that started, or one `end` named).
  void Leave(uint64_t id, Clock::time_point now, Actions& actions);

  // Ends the handshakes and queued connections past their deadline at `now`.
  void Expire(Clock::time_point now, Actions& actions);

  int handshakes() const { return handshakes_; }
  int queued() const { return static_cast<int>(queue_.size()); }
  int sessions() const { return sessions_; }

 private:
  enum class Phase { kQueued, kHandshake, kLobby, kUser, kEnding };
  struct Entry {
    std::string source;
    Phase phase;
    Clock::time_point since;  // of the current phase
  };
  // Gives `id` a handshake slot, pushing out another handshake if the pool is full.
  void StartHandshake(Entry& entry, Clock::time_point now, Actions& actions);
  // Takes `entry` out of its counts; a handshake's thread still runs until the caller ends it.
  void Release(Entry& entry);
  // Starts the queued connections of `source` that now fit under its limit.
  void StartQueued(const std::string& source, Clock::time_point now, Actions& actions);

  Limits limits_;
  std::map<uint64_t, Entry> entries_;
  std::set<uint64_t> queue_;                  // in arrival order: ids grow
  std::map<std::string, int> per_source_;     // handshakes and lobbies of each source
  std::map<std::string, int> handshakes_of_;  // handshakes of each source
  int handshakes_ = 0;
  int sessions_ = 0;
};

}  // namespace vmctl::ssh_gateway

#endif  // VMCTL_SSH_GATEWAY_ADMISSION_H_
