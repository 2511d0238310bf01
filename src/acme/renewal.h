#ifndef VMCTL_ACME_RENEWAL_H_
#define VMCTL_ACME_RENEWAL_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "acme/certificate.h"
#include "base/result.h"

namespace vmctl::acme {

using SystemTime = std::chrono::system_clock::time_point;

// When to renew: once a third of the lifetime is left (as certmagic does; a 90-day certificate
// renews 30 days ahead, a 6-day one 2 days ahead). Pure.
SystemTime RenewalTime(SystemTime not_before, SystemTime not_after);

struct BackoffPolicy {
  std::chrono::milliseconds first = std::chrono::minutes(1);
  std::chrono::milliseconds max = std::chrono::hours(6);
  double jitter = 0.1;  // each delay is scaled by a factor in [1 - jitter, 1 + jitter]
};

// The delay after the `failures`-th failure in a row (1 = first): first, doubled each time, capped
// at max, then scaled by jitter with `random` in [0, 1). Pure.
std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int failures, double random);

// The time source, injectable so tests can run years of renewals in milliseconds.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime Now() = 0;
};

class SystemClock : public Clock {
 public:
  SystemTime Now() override { return std::chrono::system_clock::now(); }
};

struct RenewerOptions {
  BackoffPolicy backoff;
  // How long the thread sleeps at most before it looks at the clock again; a real clock can
  // jump (suspend, NTP) and a test clock is moved by hand.
  std::chrono::milliseconds max_sleep = std::chrono::minutes(1);
};

// Keeps one certificate fresh. A thread calls `issue` when there is no certificate or its renewal
// time has come, hands each new certificate to `install`, and on failure retries with backoff
// while whatever certificate is installed keeps being served. `issue` and `install` run on the
// renewer's thread only; `install` must not block for long. Stop() (and the destructor) wakes
// the thread and joins it; an `issue` in progress is waited for.
class Renewer {
 public:
  using Issue = std::function<Result<IssuedCertificate>()>;
  using Install = std::function<void(const IssuedCertificate&)>;

  // `current` is the certificate already installed (loaded from disk), if any.
  Renewer(Issue issue, Install install, Clock& clock, RenewerOptions options,
          std::optional<IssuedCertificate> current);
  ~Renewer();
  Renewer(const Renewer&) = delete;
  Renewer& operator=(const Renewer&) = delete;

  void Start();
  void Stop();
  // Re-reads the clock now (after a test moved it).
  void Poke();

  struct Status {
    std::optional<SystemTime> not_after;  // of the installed certificate
    SystemTime next_attempt;
    int failures = 0;  // in a row
    std::string last_error;
  };
  Status status() const;

 private:
  void Loop();
  void Attempt();

  Issue issue_;
  Install install_;
  Clock& clock_;
  RenewerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool poked_ = false;
  Status status_;
  std::thread thread_;
};

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_RENEWAL_H_
