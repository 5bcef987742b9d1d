// The truncation and draw step of sampling, shared by the host backends (ref, cpu) so the rule exists once:
// given the kept candidates' probabilities sorted in descending order (normalized over the first n),
// apply top-p and min-p and draw with the uniform u in [0, 1). Returns the position of the pick.
#pragma once
#include <cstdint>
#include <vector>

namespace mambart {

inline int64_t pick_candidate(const std::vector<double>& prob, int64_t n, float top_p, float min_p, double u) {
  // top-p: smallest prefix whose mass reaches top_p (at least one token)
  if (top_p < 1.f) {
    double cum = 0;
    for (int64_t i = 0; i < n; ++i) {
      cum += prob[size_t(i)];
      if (cum >= top_p) {
        n = i + 1;
        break;
      }
    }
  }
  // min-p: drop tokens whose probability is below min_p * max probability
  if (min_p > 0.f) {
    int64_t keep = 1;
    while (keep < n && prob[size_t(keep)] >= min_p * prob[0]) ++keep;
    n = keep;
  }
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += prob[size_t(i)];
  double target = u * total, cum = 0;
  for (int64_t i = 0; i < n; ++i) {
    cum += prob[size_t(i)];
    if (target < cum) return i;
  }
  return n - 1;
}

}  // namespace mambart
