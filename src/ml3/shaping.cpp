// Shaping of ML3 meta-training (src/ml3/shaping.h).
#include "src/ml3/shaping.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/rng.h"
#include "envs/demos.h"

namespace ml3::ml3meta {

Shaping::Shaping(const ShapingSection& s, const LossSection& l, const LearnedLoss& loss, const EnvSpec& env,
                 uint64_t seed)
    : sec_(s), prefit_steps_(l.target_prefit_steps), seed_(seed), labels_(s.expert_labels) {
  if (!sec_.demos.empty()) {  // every (state, action) row of the demonstrations, checked against the env
    const Demonstrations d = load_demos(sec_.demos, &env);
    std::vector<float> obs, act;
    for (const auto& e : d.episodes) {
      obs.insert(obs.end(), e.observations.begin(), e.observations.end());
      act.insert(act.end(), e.actions.begin(), e.actions.end());
    }
    const int64_t rows = static_cast<int64_t>(act.size()) / d.act_dim;
    demo_obs_ = torch::from_blob(obs.data(), {rows, d.obs_dim}, torch::kFloat32).clone();
    demo_act_ = torch::from_blob(act.data(), {rows, d.act_dim}, torch::kFloat32).clone();
  }
  if (sec_.target_labels && (labels_ || !demo_obs_.defined() || !loss.has_target() ||
                             (sec_.target_fit_steps == 0 && prefit_steps_ == 0)))
    throw Error("config: key 'shaping.target_labels' true needs shaping.demos, loss.target: true, "
                "shaping.target_fit_steps > 0 or loss.target_prefit_steps > 0, and shaping.expert_labels: false");
  if (sec_.target_fit_steps > 0 && !loss.has_target())
    throw Error("config: key 'shaping.target_fit_steps' needs loss.target: true");
  if (sec_.target_fit_steps > 0 && !labels_ && !demo_obs_.defined())
    throw Error("config: key 'shaping.target_fit_steps' needs shaping.demos or shaping.expert_labels");
  if (!sec_.target_meta_gradient && (!loss.has_target() || (sec_.target_fit_steps == 0 && prefit_steps_ == 0)))
    throw Error("config: key 'shaping.target_meta_gradient' false needs loss.target: true and "
                "shaping.target_fit_steps > 0 or loss.target_prefit_steps > 0 (nothing else would train T)");
}

// Behaviour cloning of the target network on the demonstrations (Adam,
// shaping.target_fit_lr, minibatches of shaping.demo_rows): the loss then
// starts out as "imitate what the demonstrations did", and meta-training
// refines it.
void Shaping::init_target(const LearnedLoss& loss, Params& phi) {
  if (loss.has_target()) target_adam_ = Adam(loss.target_params(phi), 1e-8);
  if (prefit_steps_ <= 0) return;
  if (!loss.has_target()) throw Error("config: key 'loss.target_prefit_steps' needs loss.target: true");
  if (!demo_obs_.defined()) throw Error("config: key 'loss.target_prefit_steps' needs shaping.demos");
  double err = 0;
  for (int step = 1; step <= prefit_steps_; ++step) err = target_step(mix_seed(seed_, 900000 + step), loss, phi);
  std::fprintf(stderr, "target network pre-fitted to the demonstrations: %d steps, squared action error %.4f\n",
               prefit_steps_, err);
}

std::string Shaping::kind() const {
  return labels_ ? "expert_labels" : sec_.target_labels ? "demos_target_labels" : demo_obs_.defined() ? "demos" : "none";
}

double Shaping::weight(int it) const {
  if (sec_.anneal_iterations <= 0) return sec_.imitation_weight;
  return sec_.imitation_weight * std::max(0.0, 1.0 - static_cast<double>(it - 1) / sec_.anneal_iterations);
}

void Shaping::remember(const Minibatch& mb) {
  torch::NoGradGuard ng;
  const int64_t cap = sec_.buffer_rows, n = mb.obs.size(0);
  if (!buf_obs_.defined()) {
    buf_obs_ = torch::zeros({cap, mb.obs.size(1)}, torch::kFloat32);
    buf_act_ = torch::zeros({cap, mb.expert.size(1)}, torch::kFloat32);
  }
  const int64_t keep = std::min(cap, n);  // the last rows when the batch alone overflows the buffer
  const Tensor idx = (torch::arange(keep, torch::kInt64) + buf_pos_).remainder(cap);
  buf_obs_.index_copy_(0, idx, mb.obs.slice(0, n - keep));
  buf_act_.index_copy_(0, idx, mb.expert.slice(0, n - keep));
  buf_pos_ = (buf_pos_ + keep) % cap;
  buf_n_ = std::min(cap, buf_n_ + keep);
}

// shaping.demo_rows random demonstrated rows (with replacement), from Rng(seed).
Tensor Shaping::demo_rows(uint64_t seed) const {
  Rng rng(seed);
  std::vector<int64_t> idx(static_cast<size_t>(sec_.demo_rows));
  for (auto& i : idx) i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(demo_obs_.size(0)));
  return torch::from_blob(idx.data(), {static_cast<int64_t>(idx.size())}, torch::kInt64).clone();
}

Tensor Shaping::imitation_error(const GaussianPolicy& policy, const LearnedLoss& loss, const Params& phi,
                                const Params& theta, const Minibatch& visited, uint64_t seed) const {
  if (labels_)  // |mean_theta(s) - expert(s)|^2 on the visited states
    return squared_action_error(policy.mean(visited.obs, theta), visited.expert);
  if (sec_.target_labels) {  // |mean_theta(s) - T(s)|^2, T a constant label (no meta-gradient through it)
    Tensor labels;
    {
      torch::NoGradGuard ng;
      labels = loss.target(visited.obs, phi);
    }
    return squared_action_error(policy.mean(visited.obs, theta), labels);
  }
  const Tensor rows = demo_rows(seed);  // |mean_theta(s) - a|^2 on demonstrated rows
  return squared_action_error(policy.mean(demo_obs_.index_select(0, rows), theta), demo_act_.index_select(0, rows));
}

// One Adam step of the target network on shaping.demo_rows random labelled
// rows (demonstrations and expert-labelled visited states, uniformly);
// returns the squared action error before the step.
double Shaping::target_step(uint64_t seed, const LearnedLoss& loss, Params& phi) {
  const int64_t d = demo_obs_.defined() ? demo_obs_.size(0) : 0, total = d + buf_n_;
  Rng rng(seed);
  std::vector<int64_t> di, bi;
  for (int r = 0; r < sec_.demo_rows; ++r) {
    const int64_t i = static_cast<int64_t>(rng.next() % static_cast<uint64_t>(total));
    (i < d ? di : bi).push_back(i < d ? i : i - d);
  }
  auto idx = [](std::vector<int64_t>& v) {
    return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kInt64).clone();
  };
  std::vector<Tensor> obs, act;
  if (!di.empty()) obs.push_back(demo_obs_.index_select(0, idx(di))), act.push_back(demo_act_.index_select(0, idx(di)));
  if (!bi.empty()) obs.push_back(buf_obs_.index_select(0, idx(bi))), act.push_back(buf_act_.index_select(0, idx(bi)));
  Params tp = loss.target_params(phi);
  const Tensor err = squared_action_error(loss.target(torch::cat(obs), phi), torch::cat(act));
  auto g = torch::autograd::grad({err}, tp);
  target_adam_.step(tp, g, sec_.target_fit_lr);
  return err.item<double>();
}

double Shaping::fit_target(int it, const LearnedLoss& loss, Params& phi) {
  double err = NAN;
  if (buf_n_ == 0 && !demo_obs_.defined()) return err;
  for (int step = 1; step <= sec_.target_fit_steps; ++step)
    err = target_step(mix_seed(seed_, 800000000ull + static_cast<uint64_t>(it) * 1000 + step), loss, phi);
  return err;
}

void Shaping::save(Archive& a, const LearnedLoss& loss) const {
  if (loss.has_target()) target_adam_.save(a, "target_adam/");
  if (!labels_) return;
  a.meta()["buffer_rows"] = buf_n_;
  a.meta()["buffer_pos"] = buf_pos_;
  put_params(a, "buffer/", {buf_obs_, buf_act_});
}

void Shaping::load(const Archive& a, const LearnedLoss& loss, const Params& phi) {
  if (loss.has_target()) {
    target_adam_ = Adam(loss.target_params(phi), 1e-8);
    target_adam_.load(a, "target_adam/");
  }
  if (!labels_) return;
  const Params buf = get_params(a, "buffer/", 2);
  buf_obs_ = buf[0], buf_act_ = buf[1];
  buf_n_ = a.meta().at("buffer_rows").get<int64_t>();
  buf_pos_ = a.meta().at("buffer_pos").get<int64_t>();
}

}  // namespace ml3::ml3meta
