#include "model/web_auth.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace vmctl {
namespace {

constexpr int64_t kMaxDuration = int64_t{10} * 366 * 24 * 3600;

constexpr std::array<std::pair<char, int64_t>, 4> kUnits = {
    {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 24 * 3600}}};

// The text as typed, quoted, if it is short printable ASCII; else nothing of it (an error
// message never carries control bytes or broken UTF-8 to a terminal).
std::string Quoted(std::string_view text) {
  bool printable = text.size() <= 32;
  for (char c : text) printable = printable && c >= 0x20 && c < 0x7f;
  return printable ? fmt::format(" '{}'", text) : "";
}

}  // namespace

Result<std::chrono::seconds> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return InvalidArgument(fmt::format(
        "invalid duration{}: use a whole number and s, m, h or d, such as 90m, 12h or 30d",
        Quoted(text)));
  };
  if (text.size() < 2 || text.size() > 12) return bad();
  int64_t unit = 0;
  for (auto [name, seconds] : kUnits) {
    if (text.back() == name) unit = seconds;
  }
  if (unit == 0) return bad();
  int64_t count = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return bad();
    count = count * 10 + (c - '0');  // at most 11 digits: no overflow
  }
  if (count == 0) return bad();
  if (count > kMaxDuration / unit) {
    return InvalidArgument(fmt::format("duration{} is longer than 10 years", Quoted(text)));
  }
  return std::chrono::seconds(count * unit);
}

std::string FormatDuration(std::chrono::seconds duration) {
  static constexpr std::array<std::pair<std::string_view, int64_t>, 3> kNames = {
      {{"day", 24 * 3600}, {"hour", 3600}, {"minute", 60}}};
  auto count = [](int64_t n, std::string_view name) {
    return fmt::format("{} {}{}", n, name, n == 1 ? "" : "s");
  };
  const int64_t total = duration.count();
  for (auto [name, seconds] : kNames) {
    if (total != 0 && total % seconds == 0) return count(total / seconds, name);
  }
  return count(total, "second");
}

}  // namespace vmctl
