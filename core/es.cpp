// OpenAI-ES on a flat vector (core/es.h).
#include "core/es.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/adam.h"
#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"

namespace ml3 {

std::vector<double> centered_ranks(const std::vector<double>& f) {
  const size_t n = f.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return f[a] < f[b]; });
  std::vector<double> r(n, 0.0);
  for (size_t i = 0; i < n;) {  // equal values share their mean rank
    size_t j = i;
    while (j + 1 < n && f[order[j + 1]] == f[order[i]]) ++j;
    const double rank = 0.5 * static_cast<double>(i + j);
    for (size_t k = i; k <= j; ++k) r[order[k]] = n > 1 ? rank / static_cast<double>(n - 1) - 0.5 : 0.0;
    i = j + 1;
  }
  return r;
}

OpenAiEs::OpenAiEs(std::vector<double> mean, const EsSettings& s)
    : s_(s), mean_(std::move(mean)), m_(mean_.size(), 0.0), v_(mean_.size(), 0.0) {
  if (s_.population < 2 || s_.population % 2 != 0)
    throw Error("es: the population must be an even number >= 2 (antithetic pairs), got " +
                std::to_string(s_.population));
  if (!(s_.sigma > 0)) throw Error("es: sigma must be positive");
  if (mean_.empty()) throw Error("es: nothing to optimise (empty parameter vector)");
}

std::vector<double> OpenAiEs::noise(int pair) const {
  Rng rng(mix_seed(mix_seed(s_.seed, static_cast<uint64_t>(generation_)), static_cast<uint64_t>(pair)));
  std::vector<double> eps(mean_.size());
  for (auto& e : eps) e = rng.normal();
  return eps;
}

std::vector<double> OpenAiEs::member(int i) const {
  if (i < 0 || i >= s_.population) throw Error("es: no member " + std::to_string(i));
  const std::vector<double> eps = noise(i / 2);
  const double sign = i % 2 == 0 ? 1.0 : -1.0;
  std::vector<double> p(mean_);
  for (size_t j = 0; j < p.size(); ++j) p[j] += sign * s_.sigma * eps[j];
  return p;
}

std::vector<double> OpenAiEs::gradient(const std::vector<double>& fitness) const {
  if (fitness.size() != static_cast<size_t>(s_.population))
    throw Error("es: " + std::to_string(fitness.size()) + " fitness values for a population of " +
                std::to_string(s_.population));
  for (const double f : fitness)
    if (!std::isfinite(f)) throw Error("es: a member's fitness is not finite");
  const std::vector<double> w = s_.rank_shaping ? centered_ranks(fitness) : fitness;
  std::vector<double> g(mean_.size(), 0.0);
  for (int k = 0; k < s_.population / 2; ++k) {
    const double d = w[2 * k] - w[2 * k + 1];
    if (d == 0) continue;
    const std::vector<double> eps = noise(k);
    for (size_t j = 0; j < g.size(); ++j) g[j] += d * eps[j];
  }
  const double scale = 1.0 / (s_.population * s_.sigma);
  for (size_t j = 0; j < g.size(); ++j) g[j] = g[j] * scale - s_.weight_decay * mean_[j];
  return g;
}

std::vector<double> OpenAiEs::step(const std::vector<double>& fitness) {
  const std::vector<double> g = gradient(fitness);
  std::vector<double> descent(g.size());
  for (size_t j = 0; j < g.size(); ++j) descent[j] = -g[j];  // Adam descends; ES ascends the fitness
  ++generation_;
  adam_step(mean_.data(), descent.data(), m_.data(), v_.data(), mean_.size(), AdamHyper{}, generation_, s_.lr);
  return g;
}

void OpenAiEs::save(Archive& a, const std::string& prefix) const {
  a.put_f64(prefix + "mean", mean_);
  a.put_f64(prefix + "adam_m", m_);
  a.put_f64(prefix + "adam_v", v_);
  a.put_f64(prefix + "generation", {static_cast<double>(generation_)});
}

void OpenAiEs::load(const Archive& a, const std::string& prefix) {
  std::vector<double> mean = a.get_f64(prefix + "mean"), m = a.get_f64(prefix + "adam_m"),
                      v = a.get_f64(prefix + "adam_v");
  if (mean.size() != mean_.size() || m.size() != mean_.size() || v.size() != mean_.size())
    throw Error(a.path() + ": the ES state has " + std::to_string(mean.size()) + " parameters, this run " +
                std::to_string(mean_.size()));
  mean_ = std::move(mean), m_ = std::move(m), v_ = std::move(v);
  generation_ = static_cast<int64_t>(a.get_f64(prefix + "generation").at(0));
}

}  // namespace ml3
