#ifndef VMCTL_BENCH_HOST_H_
#define VMCTL_BENCH_HOST_H_

#include <sys/types.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "base/io.h"

namespace vmctl::bench {

// A "Field:  N ..." line of /proc/PID/FILE (status, smaps_rollup), e.g. VmRSS in KiB or Threads;
// 0 if the process or the field is missing.
inline int64_t ProcField(pid_t pid, const std::string& file, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + file);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return 0;
}

// The 1, 5 and 15 minute load averages, "0.93 1.78 2.41" ("?" if unreadable): other work on
// the machine during a run shows in them.
inline std::string LoadAverage() {
  auto load = ReadFile("/proc/loadavg");
  if (!load.ok()) return "?";
  std::istringstream in(*load);
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

}  // namespace vmctl::bench

#endif  // VMCTL_BENCH_HOST_H_
