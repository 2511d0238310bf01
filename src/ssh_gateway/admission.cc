#include "ssh_gateway/admission.h"

#include <algorithm>

namespace vmctl::ssh_gateway {

Admission::Arrival Admission::Arrive(uint64_t id, const std::string& source, Clock::time_point now,
                                     Actions& actions) {
  if (per_source_[source] < limits_.max_per_source) {
    // kEnding until it counts, so that it cannot push itself out.
    Entry& entry = entries_[id] = {source, Phase::kEnding, now};
    StartHandshake(entry, now, actions);
    return Arrival::kStart;
  }
  if (static_cast<int>(queue_.size()) >= limits_.max_queued) return Arrival::kRefuse;
  entries_[id] = {source, Phase::kQueued, now};
  queue_.insert(id);
  return Arrival::kQueue;
}

void Admission::StartHandshake(Entry& entry, Clock::time_point now, Actions& actions) {
  if (handshakes_ >= limits_.max_handshakes) {
    // The oldest handshake of the source that holds the most: a single connection from one
    // address is pushed out only once every source holds one at most (and it is the oldest).
    int most = 0;
    for (const auto& [source, count] : handshakes_of_) most = std::max(most, count);
    for (auto& [other, e] : entries_) {
      if (e.phase == Phase::kHandshake && handshakes_of_[e.source] == most) {
        Release(e);
        actions.end.push_back(other);
        break;
      }
    }
  }
  entry.phase = Phase::kHandshake;
  entry.since = now;
  ++handshakes_;
  ++handshakes_of_[entry.source];
  ++per_source_[entry.source];
}

void Admission::Release(Entry& entry) {
  switch (entry.phase) {
    case Phase::kHandshake:
      --handshakes_;
      if (--handshakes_of_[entry.source] == 0) handshakes_of_.erase(entry.source);
      [[fallthrough]];
    case Phase::kLobby:
      if (--per_source_[entry.source] == 0) per_source_.erase(entry.source);
      break;
    case Phase::kQueued:
    case Phase::kUser:
    case Phase::kEnding:
      break;
  }
  if (entry.phase == Phase::kLobby || entry.phase == Phase::kUser) --sessions_;
  entry.phase = Phase::kEnding;
}

bool Admission::LoggedIn(uint64_t id, bool registered, Clock::time_point now, Actions& actions) {
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.phase != Phase::kHandshake) return false;
  Entry& entry = it->second;
  std::string source = entry.source;
  if (sessions_ >= limits_.max_sessions) {
    Release(entry);
    StartQueued(source, now, actions);
    return false;
  }
  --handshakes_;
  if (--handshakes_of_[source] == 0) handshakes_of_.erase(source);
  ++sessions_;
  entry.since = now;
  if (registered) {
    entry.phase = Phase::kUser;
    if (--per_source_[source] == 0) per_source_.erase(source);
    StartQueued(source, now, actions);
  } else {
    entry.phase = Phase::kLobby;
  }
  return true;
}

void Admission::Leave(uint64_t id, Clock::time_point now, Actions& actions) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  std::string source = it->second.source;
  if (it->second.phase == Phase::kQueued) queue_.erase(id);
  Release(it->second);
  entries_.erase(it);
  StartQueued(source, now, actions);
}

void Admission::StartQueued(const std::string& source, Clock::time_point now, Actions& actions) {
  for (auto it = queue_.begin();
       it != queue_.end() && per_source_[source] < limits_.max_per_source;) {
    Entry& entry = entries_.at(*it);
    if (entry.source != source) {
      ++it;
      continue;
    }
    actions.start.push_back(*it);
    entry.phase = Phase::kEnding;  // as in Arrive
    StartHandshake(entry, now, actions);
    it = queue_.erase(it);
  }
  if (per_source_[source] == 0) per_source_.erase(source);
}

void Admission::Expire(Clock::time_point now, Actions& actions) {
  bool pressure = 2 * handshakes_ >= limits_.max_handshakes;
  auto handshake_limit = pressure ? std::min(limits_.pressure_timeout, limits_.handshake_timeout)
                                  : limits_.handshake_timeout;
  std::vector<std::string> freed;
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& entry = it->second;
    auto age = now - entry.since;
    if (entry.phase == Phase::kQueued && age >= limits_.handshake_timeout) {
      actions.close.push_back(it->first);
      queue_.erase(it->first);
      it = entries_.erase(it);
      continue;
    }
    if (entry.phase == Phase::kHandshake && age >= handshake_limit) {
      freed.push_back(entry.source);
      Release(entry);
      actions.end.push_back(it->first);
    }
    ++it;
  }
  for (const auto& source : freed) StartQueued(source, now, actions);
}

}  // namespace vmctl::ssh_gateway
