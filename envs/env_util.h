#pragma once
// Small helpers the environments share: planar distance, squared norm, and
// the annulus-sector goal regions of the splits.
#include <cmath>

#include "envs/env.h"

namespace ml3 {

constexpr double kPi = 3.14159265358979323846;

inline double dist2d(const double* a, const double* b) { return std::hypot(a[0] - b[0], a[1] - b[1]); }

inline double dist3d(const double* a, const double* b) {
  return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

inline double sq_norm(const double* a, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * a[i];
  return s;
}

// In-distribution goals (train and test splits) come from a sector; the ood
// split holds the complementary wedge, never seen in training.
inline GoalRegion sector(double cx, double cy, double r_min, double r_max, bool ood) {
  GoalRegion g;
  g.center[0] = cx, g.center[1] = cy;
  g.r_min = r_min, g.r_max = r_max;
  g.theta_min = ood ? 0.75 * kPi : -0.75 * kPi;
  g.theta_max = ood ? 1.25 * kPi : 0.75 * kPi;
  return g;
}

}  // namespace ml3
