#include "acme/on_demand.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <random>
#include <utility>

namespace vmctl::acme {

OnDemandCertificates::OnDemandCertificates(OnDemandOptions options, tls::CertStore& store,
                                           Issue issue, VmOf vm_of, Clock& clock)
    : options_(std::move(options)),
      store_(store),
      issue_(std::move(issue)),
      vm_of_(std::move(vm_of)),
      clock_(clock) {}

OnDemandCertificates::~OnDemandCertificates() { Stop(); }

void OnDemandCertificates::Start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stop_) return;
  thread_ = std::thread([this] { Loop(); });
}

void OnDemandCertificates::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Handshakes still waiting go on without a certificate.
  std::map<std::string, Pending, std::less<>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(pending_);
    queue_.clear();
  }
  for (auto& [name, pending] : left) {
    for (auto& ready : pending.waiters) ready();
  }
}

void OnDemandCertificates::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  wake_.notify_all();
}

std::shared_ptr<SSL_CTX> OnDemandCertificates::ForServerName(std::string_view server_name) {
  return store_.ForServerName(server_name);
}

bool OnDemandCertificates::IsCustom(std::string_view name) const {
  const std::string& domain = options_.domain;
  if (name.empty() || name == domain) return false;
  return !(name.size() > domain.size() && name.ends_with(domain) &&
           name[name.size() - domain.size() - 1] == '.');
}

bool OnDemandCertificates::AwaitCertificate(std::string_view server_name,
                                            std::function<void()> ready) {
  if (!IsCustom(server_name)) return false;
  std::lock_guard lock(mu_);
  if (stop_) return false;
  if (auto it = pending_.find(server_name); it != pending_.end()) {
    it->second.waiters.push_back(std::move(ready));
    return true;
  }
  // The clock is read under the lock, but it is a clock, not I/O.
  if (auto it = backoff_.find(server_name);
      it != backoff_.end() && clock_.Now() < it->second.next_attempt) {
    return false;
  }
  if (queue_.size() >= options_.max_queued) return false;
  std::string name(server_name);
  queue_.push_back(name);
  pending_[name].waiters.push_back(std::move(ready));
  wake_.notify_all();
  return true;
}

void OnDemandCertificates::Loop() {
  SystemTime next_check = clock_.Now();
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (!queue_.empty()) {
      std::string name = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      Guarded("ordering a certificate for " + name, [&] { Obtain(name); });
      lock.lock();
      auto node = pending_.extract(name);
      lock.unlock();
      if (node) {
        for (auto& ready : node.mapped().waiters) ready();
      }
      lock.lock();
      continue;
    }
    if (poked_ || clock_.Now() >= next_check) {
      poked_ = false;
      lock.unlock();
      Guarded("checking custom domains' certificates", [&] { Check(); });
      lock.lock();
      next_check = clock_.Now() + options_.check_interval;
      continue;
    }
    wake_.wait_for(lock, options_.check_interval);
  }
}

// The worker thread's boundary: an exception from below (allocation, the filesystem) ends one
// step, not the daemon, and waiting handshakes are still released.
void OnDemandCertificates::Guarded(std::string_view what, const std::function<void()>& step) {
  try {
    step();
  } catch (const std::exception& e) {
    if (options_.log) options_.log(fmt::format("{} failed: {}", what, e.what()));
  }
}

void OnDemandCertificates::Obtain(const std::string& name) {
  // Another handshake's order may have served it meanwhile.
  if (store_.ForServerName(name)) return;
  auto vm = vm_of_(name);
  if (!vm.ok()) {
    Log(fmt::format("{}: cannot look the domain up: {}", name, vm.error().message()));
    return;
  }
  if (!*vm) return;  // not a registered custom domain: no order, no log line to flood
  if (!TakeOrderSlot(**vm, name)) return;
  Order(name);
}

bool OnDemandCertificates::TakeOrderSlot(const std::string& vm, const std::string& name) {
  SystemTime now = clock_.Now();
  std::deque<SystemTime>& times = orders_[vm];
  while (!times.empty() && times.front() + options_.window <= now) times.pop_front();
  if (times.size() >= static_cast<size_t>(options_.max_new_per_vm)) {
    Log(fmt::format("{}: not ordered: its VM has started {} certificate orders in the last {}",
                    name, times.size(),
                    std::chrono::duration_cast<std::chrono::minutes>(options_.window)));
    return false;
  }
  times.push_back(now);
  return true;
}

void OnDemandCertificates::Order(const std::string& name) {
  auto issued = issue_(name);
  Result<void> installed = Ok();
  if (issued.ok()) installed = store_.Install({name}, issued->chain_pem, issued->key_pem);
  if (issued.ok() && installed.ok()) {
    {
      std::lock_guard lock(mu_);
      backoff_.erase(name);
    }
    Log(fmt::format("{}: serving a new certificate", name));
    return;
  }
  const Error& error = issued.ok() ? installed.error() : issued.error();
  static thread_local std::mt19937 random(std::random_device{}());
  std::chrono::milliseconds delay;
  {
    std::lock_guard lock(mu_);
    Backoff& backoff = backoff_[name];
    ++backoff.failures;
    delay = BackoffDelay(options_.backoff, backoff.failures,
                         std::uniform_real_distribution<double>(0, 1)(random));
    backoff.next_attempt = clock_.Now() + delay;
  }
  Log(fmt::format("{}: no certificate ({}); next attempt in {}", name, error.message(),
                  std::chrono::duration_cast<std::chrono::seconds>(delay)));
}

void OnDemandCertificates::Check() {
  SystemTime now = clock_.Now();
  for (const tls::CertificateInfo& info : store_.Certificates()) {
    if (info.names.empty() || !IsCustom(info.names.front())) continue;
    const std::string& name = info.names.front();
    auto vm = vm_of_(name);
    if (!vm.ok()) continue;  // the store is unwell; decide at the next check
    if (!*vm) {
      auto removed = store_.Remove(name);
      Log(removed.ok()
              ? fmt::format("{}: no longer a custom domain; its certificate is removed", name)
              : fmt::format("{}: cannot remove its certificate: {}", name,
                            removed.error().message()));
      continue;
    }
    if (now < RenewalTime(info.not_before, info.not_after)) continue;
    {
      std::lock_guard lock(mu_);
      auto it = backoff_.find(name);
      if (it != backoff_.end() && now < it->second.next_attempt) continue;
    }
    // The old certificate is served until the new one is installed.
    Order(name);
  }
}

void OnDemandCertificates::Log(const std::string& line) const {
  if (options_.log) options_.log(line);
}

}  // namespace vmctl::acme
