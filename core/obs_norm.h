#pragma once
// Running observation statistics and the observation normaliser of policies
// (LibTorch-free: the trainer, ml3 eval and the deployment exporter share it).
#include <cstdint>
#include <string>
#include <vector>

#include "core/archive.h"

namespace ml3 {

// Running per-dimension mean and variance: batch moments merged with Chan et
// al.'s parallel update in double (order-fixed, so deterministic).
struct RunningMoments {
  RunningMoments() = default;
  explicit RunningMoments(int dim) : mean(dim, 0.0), m2(dim, 0.0) {}
  void update(const double* rows, int64_t n);  // n rows of mean.size() values
  double variance(int j) const { return count > 0 ? m2[j] / count : 1.0; }
  std::vector<double> mean, m2;
  double count = 0.0;
};

// Running mean/variance of observations (parallel Welford in double),
// applied as clip((x - mean) / sqrt(var + eps), -clip, clip).
class ObsNormalizer {
 public:
  ObsNormalizer() = default;
  ObsNormalizer(int dim, bool enabled, double clip = 10.0);
  void update(const double* rows, int64_t n);  // n rows of dim values
  void normalize(const double* in, float* out, int64_t n) const;
  bool enabled() const { return enabled_; }
  // The transform normalize() applies: when active(), value j becomes
  // clip((x - center(j)) / scale(j), -clip(), clip()); otherwise x unchanged.
  // (Deployment exports exactly these numbers.)
  bool active() const { return enabled_ && moments_.count > 0; }
  double center(int j) const { return moments_.mean[j]; }
  double scale(int j) const;
  double clip() const { return clip_; }
  int dim() const { return dim_; }
  void save(Archive& a, const std::string& prefix) const;
  void load(const Archive& a, const std::string& prefix);

 private:
  int dim_ = 0;
  bool enabled_ = false;
  double clip_ = 10.0;
  RunningMoments moments_;
};

}  // namespace ml3
