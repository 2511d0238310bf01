#include "acme/renewal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace vmctl::acme {

SystemTime RenewalTime(SystemTime not_before, SystemTime not_after) {
  if (not_after <= not_before) return not_before;
  return not_after - (not_after - not_before) / 3;
}

std::chrono::milliseconds BackoffDelay(const BackoffPolicy& policy, int failures, double random) {
  double delay = static_cast<double>(policy.first.count());
  for (int i = 1; i < failures && delay < static_cast<double>(policy.max.count()); ++i) {
    delay *= 2;
  }
  delay = std::min(delay, static_cast<double>(policy.max.count()));
  delay *= 1 - policy.jitter + 2 * policy.jitter * std::clamp(random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(delay)));
}

Renewer::Renewer(Issue issue, Install install, Clock& clock, RenewerOptions options,
                 std::optional<IssuedCertificate> current)
    : issue_(std::move(issue)), install_(std::move(install)), clock_(clock), options_(options) {
  status_.next_attempt = clock_.Now();
  if (current) {
    status_.not_after = current->not_after;
    status_.next_attempt = RenewalTime(current->not_before, current->not_after);
  }
}

Renewer::~Renewer() { Stop(); }

void Renewer::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Renewer::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Renewer::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  wake_.notify_all();
}

Renewer::Status Renewer::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void Renewer::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    SystemTime now = clock_.Now();
    if (now >= status_.next_attempt) {
      lock.unlock();
      Attempt();
      lock.lock();
      continue;
    }
    auto wait = std::min<std::chrono::nanoseconds>(status_.next_attempt - now, options_.max_sleep);
    wake_.wait_for(lock, wait, [this] { return stop_ || poked_; });
    poked_ = false;
  }
}

void Renewer::Attempt() {
  Result<IssuedCertificate> cert = issue_();
  if (cert.ok()) install_(*cert);
  std::lock_guard lock(mu_);
  if (cert.ok()) {
    status_.not_after = cert->not_after;
    status_.next_attempt = RenewalTime(cert->not_before, cert->not_after);
    status_.failures = 0;
    status_.last_error.clear();
    return;
  }
  ++status_.failures;
  status_.last_error = cert.error().message();
  thread_local std::mt19937_64 random{std::random_device{}()};
  auto delay = BackoffDelay(options_.backoff, status_.failures,
                            std::uniform_real_distribution<double>(0, 1)(random));
  status_.next_attempt = clock_.Now() + delay;
  spdlog::warn("acme: certificate order failed ({} in a row), retrying in {} s: {}",
               status_.failures, delay.count() / 1000, status_.last_error);
}

}  // namespace vmctl::acme
