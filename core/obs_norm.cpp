#include "core/obs_norm.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ml3 {

void RunningMoments::update(const double* rows, int64_t n) {
  const size_t dim = mean.size();
  if (n == 0) return;
  std::vector<double> bm(dim, 0.0), bm2(dim, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) bm[j] += rows[i * dim + j];
  for (size_t j = 0; j < dim; ++j) bm[j] /= n;
  for (int64_t i = 0; i < n; ++i)
    for (size_t j = 0; j < dim; ++j) {
      const double d = rows[i * dim + j] - bm[j];
      bm2[j] += d * d;
    }
  const double total = count + n;
  for (size_t j = 0; j < dim; ++j) {
    const double delta = bm[j] - mean[j];
    mean[j] += delta * n / total;
    m2[j] += bm2[j] + delta * delta * count * n / total;
  }
  count = total;
}

ObsNormalizer::ObsNormalizer(int dim, bool enabled, double clip)
    : dim_(dim), enabled_(enabled), clip_(clip), moments_(dim) {}

void ObsNormalizer::update(const double* rows, int64_t n) {
  if (enabled_) moments_.update(rows, n);
}

double ObsNormalizer::scale(int j) const { return std::sqrt(moments_.variance(j) + 1e-8); }

void ObsNormalizer::normalize(const double* in, float* out, int64_t n) const {
  for (int64_t i = 0; i < n; ++i)
    for (int j = 0; j < dim_; ++j) {
      double v = in[i * dim_ + j];
      if (active()) {
        v = (v - center(j)) / scale(j);
        v = std::min(clip_, std::max(-clip_, v));
      }
      out[i * dim_ + j] = static_cast<float>(v);
    }
}

void ObsNormalizer::save(Archive& a, const std::string& prefix) const {
  a.put_f64(prefix + "mean", moments_.mean);
  a.put_f64(prefix + "m2", moments_.m2);
  a.put_f64(prefix + "state", {moments_.count, clip_, enabled_ ? 1.0 : 0.0, static_cast<double>(dim_)});
}

void ObsNormalizer::load(const Archive& a, const std::string& prefix) {
  const auto st = a.get_f64(prefix + "state");
  if (st.size() != 4 || static_cast<int>(st[3]) != dim_)
    throw Error(a.path() + ": observation normaliser has dimension " + std::to_string(st.size() == 4 ? st[3] : -1) +
                ", the environment has " + std::to_string(dim_));
  moments_.count = st[0], clip_ = st[1], enabled_ = st[2] != 0.0;
  moments_.mean = a.get_f64(prefix + "mean");
  moments_.m2 = a.get_f64(prefix + "m2");
}

}  // namespace ml3
