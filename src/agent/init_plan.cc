#include "agent/init_plan.h"

#include <charconv>
#include <optional>
#include <sstream>

namespace vmctl::agent {
namespace {

using nlohmann::json;

std::optional<unsigned> Number(std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The lines of a passwd- or group-style file, split at ':'.
std::vector<std::vector<std::string>> Entries(std::string_view text) {
  std::vector<std::vector<std::string>> entries;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::stringstream split(line);
    std::string field;
    while (std::getline(split, field, ':')) fields.push_back(field);
    if (line.ends_with(':')) fields.emplace_back();
    entries.push_back(std::move(fields));
  }
  return entries;
}

Result<std::vector<std::string>> Strings(const json& object, const char* key) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end()) return out;
  if (!it->is_array()) return InvalidArgument("'" + std::string(key) + "' must be an array");
  for (const auto& s : *it) {
    if (!s.is_string()) return InvalidArgument("'" + std::string(key) + "' must hold strings");
    out.push_back(s.get<std::string>());
  }
  return out;
}

// An optional member of one type; a member of another type is an error, not an exception.
template <typename T>
Result<void> Member(const json& object, const char* key, T* out) {
  auto it = object.find(key);
  if (it == object.end()) return Ok();
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return InvalidArgument("'" + std::string(key) + "' must be a boolean");
  } else {
    if (!it->is_string()) return InvalidArgument("'" + std::string(key) + "' must be a string");
  }
  *out = it->template get<T>();
  return Ok();
}

}  // namespace

json ToJson(const InitPlan& plan) {
  json services = json::array();
  for (const auto& s : plan.services) {
    services.push_back({{"name", s.name},
                        {"argv", s.argv},
                        {"env", s.env},
                        {"user", s.user},
                        {"cwd", s.cwd},
                        {"restart", s.restart},
                        {"wait", s.wait}});
  }
  return {{"services", services}};
}

Result<InitPlan> ParseInitPlan(std::string_view text) {
  json root = json::parse(text, nullptr, false);
  if (!root.is_object() || !root.contains("services") || !root["services"].is_array()) {
    return InvalidArgument("init plan: expected an object with a 'services' array");
  }
  InitPlan plan;
  for (const auto& s : root["services"]) {
    if (!s.is_object()) return InvalidArgument("init plan: each service must be an object");
    Service service;
    if (auto name = Member(s, "name", &service.name); !name.ok()) {
      return name.error().WithContext("init plan service");
    }
    auto fields = [&]() -> Result<void> {
      VMCTL_ASSIGN_OR_RETURN(service.argv, Strings(s, "argv"));
      VMCTL_ASSIGN_OR_RETURN(service.env, Strings(s, "env"));
      VMCTL_TRY(Member(s, "user", &service.user));
      VMCTL_TRY(Member(s, "cwd", &service.cwd));
      VMCTL_TRY(Member(s, "restart", &service.restart));
      return Member(s, "wait", &service.wait);
    }();
    if (!fields.ok()) return fields.error().WithContext("init plan service '" + service.name + "'");
    if (service.name.empty() || service.argv.empty() || service.argv[0].empty()) {
      return InvalidArgument("init plan: every service needs a name and a command");
    }
    plan.services.push_back(std::move(service));
  }
  return plan;
}

Result<ResolvedUser> ResolveUser(std::string_view spec, std::string_view passwd,
                                 std::string_view group) {
  ResolvedUser user;
  if (spec.empty()) spec = "root";
  std::string_view name = spec.substr(0, spec.find(':'));
  std::optional<std::string_view> group_name;
  if (auto colon = spec.find(':'); colon != std::string_view::npos) {
    group_name = spec.substr(colon + 1);
  }
  const auto users = Entries(passwd);
  // By name, or by uid: a numeric uid needs no entry, but one it has lends its group and home.
  auto uid = Number(name);
  const std::vector<std::string>* entry = nullptr;
  for (const auto& f : users) {
    if (f.size() >= 6 && Number(f[2]) && Number(f[3]) &&
        (uid ? Number(f[2]) == uid : f[0] == name)) {
      entry = &f;
      break;
    }
  }
  if (entry) {
    user.uid = *Number((*entry)[2]);
    user.gid = *Number((*entry)[3]);
    if (!(*entry)[5].empty()) user.home = (*entry)[5];
  } else if (uid) {
    user.uid = user.gid = *uid;
  } else {
    return NotFound("the image has no user '" + std::string(name) + "' in /etc/passwd");
  }
  if (group_name) {
    if (auto gid = Number(*group_name)) {
      user.gid = *gid;
    } else {
      bool found = false;
      for (const auto& f : Entries(group)) {
        if (f.size() >= 3 && f[0] == *group_name && Number(f[2])) {
          user.gid = *Number(f[2]);
          found = true;
          break;
        }
      }
      if (!found) {
        return NotFound("the image has no group '" + std::string(*group_name) + "' in /etc/group");
      }
    }
  }
  return user;
}

}  // namespace vmctl::agent
