#pragma once
// OpenAI-ES (Salimans et al. 2017, arXiv 1703.03864) on a flat parameter
// vector: antithetic pairs, centred-rank fitness shaping, Adam ascent on the
// gradient estimate (core/adam.h's kernel), optional weight decay. The
// perturbations are common random numbers: member i of generation g is
// regenerated from (seed, g, i / 2) alone, so workers that share the seed
// exchange only fitness values (ranks of a distributed run, docs/
// distributed.md). The building block of ES over whole training lifetimes
// (issue 24); LibTorch-free and dependency-free.
#include <cstdint>
#include <string>
#include <vector>

namespace ml3 {

class Archive;

struct EsSettings {
  int population = 32;      // members per generation, an even number (antithetic pairs)
  double sigma = 0.02;      // perturbation scale
  double lr = 0.01;         // Adam learning rate of the mean (ascent)
  double weight_decay = 0;  // L2 pull of the mean toward 0, added to the estimate: - weight_decay * mean
  bool rank_shaping = true; // centred ranks in [-0.5, 0.5] instead of raw fitness
  uint64_t seed = 0;        // of every perturbation
};

class OpenAiEs {
 public:
  // Throws ml3::Error on an odd or empty population or a non-positive sigma.
  OpenAiEs(std::vector<double> mean, const EsSettings& s);
  // Parameters of member i (0 <= i < population) of the current generation:
  // mean + sigma * eps_{i/2} for even i, mean - sigma * eps_{i/2} for odd i.
  std::vector<double> member(int i) const;
  // The ES gradient estimate from every member's fitness (higher is better,
  // in member order): sum_k w_k eps_k (w_{2k} - w_{2k+1}) / (population * sigma)
  // with w the shaped fitness; minus weight_decay * mean.
  std::vector<double> gradient(const std::vector<double>& fitness) const;
  // gradient(), one Adam ascent step of the mean, next generation; returns
  // the estimate. Throws ml3::Error on a wrong count or a non-finite fitness.
  std::vector<double> step(const std::vector<double>& fitness);

  const std::vector<double>& mean() const { return mean_; }
  int64_t generation() const { return generation_; }
  const EsSettings& settings() const { return s_; }
  // The whole state (mean, Adam's moments, generation) under `prefix`.
  void save(Archive& a, const std::string& prefix) const;
  void load(const Archive& a, const std::string& prefix);

 private:
  std::vector<double> noise(int pair) const;  // eps of antithetic pair `pair` in this generation
  EsSettings s_;
  std::vector<double> mean_, m_, v_;
  int64_t generation_ = 0;
};

// Centred ranks of `f` in [-0.5, 0.5] (ties get their mean rank): the
// fitness shaping of OpenAI-ES, invariant to any monotone change of f.
std::vector<double> centered_ranks(const std::vector<double>& f);

}  // namespace ml3
