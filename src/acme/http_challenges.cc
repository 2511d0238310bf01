#include "acme/http_challenges.h"

namespace vmctl::acme {

void HttpChallenges::Add(std::string token, std::string key_authorization) {
  std::lock_guard lock(mu_);
  answers_[std::move(token)] = std::move(key_authorization);
}

void HttpChallenges::Remove(const std::string& token) {
  std::lock_guard lock(mu_);
  answers_.erase(token);
}

std::optional<std::string> HttpChallenges::Lookup(std::string_view token) const {
  std::lock_guard lock(mu_);
  auto it = answers_.find(token);
  if (it == answers_.end()) return std::nullopt;
  return it->second;
}

}  // namespace vmctl::acme
