#ifndef VMCTL_BENCH_STATS_H_
#define VMCTL_BENCH_STATS_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

namespace vmctl::bench {

inline double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// The nearest-rank percentile p (0..100] of v; 0 for no samples.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

}  // namespace vmctl::bench

#endif  // VMCTL_BENCH_STATS_H_
