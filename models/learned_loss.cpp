#include "models/learned_loss.h"

#include <torch/torch.h>

#include <cmath>
#include <fmt/format.h>
#include <sstream>

#include "core/error.h"

namespace ml3 {

const std::vector<std::string>& loss_feature_names() {
  static const std::vector<std::string> names = {"obs",    "goal", "action",      "reward",
                                                 "return_to_go", "time", "policy_mean", "log_prob"};
  return names;
}

std::vector<std::string> parse_loss_features(const std::string& text) {
  if (text == "all") return loss_feature_names();
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string name;
  while (std::getline(ss, name, ',')) {
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    bool known = false;
    for (const auto& k : loss_feature_names()) known |= k == name;
    if (!known) {
      std::string all;
      for (const auto& k : loss_feature_names()) all += " " + k;
      throw Error("unknown learned-loss feature '" + name + "' (known:" + all + ")");
    }
    out.push_back(name);
  }
  if (out.empty()) throw Error("the learned loss needs at least one feature");
  bool policy_dependent = false;
  for (const auto& n : out) policy_dependent |= n == "policy_mean" || n == "log_prob";
  if (!policy_dependent)
    throw Error("learned-loss features must include policy_mean or log_prob: otherwise the loss does not depend on "
                "the policy parameters and cannot train them");
  return out;
}

namespace {
int feature_dim(const std::string& name, const LearnedLossSpec& s) {
  if (name == "obs") return s.obs_dim;
  if (name == "goal") return s.goal_dim;
  if (name == "action" || name == "policy_mean") return s.act_dim;
  return 1;
}
}  // namespace

LearnedLoss::LearnedLoss(const LearnedLossSpec& spec) : spec_(spec) {
  for (const auto& f : spec_.features) input_dim_ += feature_dim(f, spec_);
  std::vector<int> sizes{input_dim_};
  sizes.insert(sizes.end(), spec_.hidden.begin(), spec_.hidden.end());
  sizes.push_back(1);
  mlp_ = FunctionalMlp(sizes, spec_.activation);
  if (!spec_.target_hidden.empty()) {
    std::vector<int> t{spec_.obs_dim};
    t.insert(t.end(), spec_.target_hidden.begin(), spec_.target_hidden.end());
    t.push_back(spec_.act_dim);
    target_ = FunctionalMlp(t, spec_.activation);
  }
  moments_ = RunningMoments(input_dim_);
  refresh_norm();
}

Params LearnedLoss::init(uint64_t seed, bool float64) const {
  Params p = mlp_.init(seed, spec_.init_scale, float64);
  if (has_target()) {
    // The target network starts at zero output: the term then pulls the mean
    // gently toward 0, never off in a random direction.
    const Params t = target_.init(seed ^ 0x7A76u, 0.0, float64);
    p.insert(p.end(), t.begin(), t.end());
  }
  return p;
}

Tensor LearnedLoss::target(const Tensor& obs, const Params& phi) const {
  return target_.forward(obs, phi, mlp_.num_tensors());
}

Params LearnedLoss::target_params(const Params& phi) const {
  return Params(phi.begin() + static_cast<std::ptrdiff_t>(mlp_.num_tensors()), phi.end());
}

Tensor LearnedLoss::features(const LossFeatureInputs& in) const {
  std::vector<Tensor> parts;
  for (const auto& f : spec_.features) {
    if (f == "obs") parts.push_back(in.obs);
    else if (f == "goal") parts.push_back(in.goal);
    else if (f == "action") parts.push_back(in.action);
    else if (f == "reward") parts.push_back(in.reward.unsqueeze(-1));
    else if (f == "return_to_go") parts.push_back(in.rtg.unsqueeze(-1));
    else if (f == "time") parts.push_back(in.time.unsqueeze(-1));
    else if (f == "policy_mean") parts.push_back(in.mean);
    else if (f == "log_prob") parts.push_back(in.logp.unsqueeze(-1));
  }
  // Match the dtype of the differentiable inputs (float64 in gradient tests).
  const auto dtype = in.mean.defined() ? in.mean.scalar_type() : in.logp.scalar_type();
  for (auto& p : parts) p = p.to(dtype);
  return torch::cat(parts, -1);
}

Tensor LearnedLoss::loss(const Tensor& features, const Params& phi) const {
  const Tensor z = (features - norm_mean_.to(features.scalar_type())) * norm_inv_std_.to(features.scalar_type());
  return at::softplus(mlp_.forward(z, phi)).mean();
}

Tensor LearnedLoss::loss(const LossFeatureInputs& in, const Params& phi) const {
  Tensor l = loss(features(in), phi);
  if (has_target()) {
    const Tensor mean = in.mean;
    const Tensor t = target(in.obs.to(mean.scalar_type()), phi);
    l = l + spec_.target_weight * squared_action_error(mean, t);
  }
  if (spec_.anchor_weight > 0) {
    if (!in.old_logp.defined() || !in.advantages.defined())
      throw Error("internal: a learned loss with an anchor needs the batch's old log-probabilities and advantages");
    const Tensor adv = in.advantages.to(in.logp.scalar_type());
    const Tensor ratio = (in.logp - in.old_logp.to(in.logp.scalar_type())).exp();
    const Tensor surrogate =
        at::min(ratio * adv, ratio.clamp(1.0 - spec_.anchor_clip, 1.0 + spec_.anchor_clip) * adv).mean();
    l = l - spec_.anchor_weight * surrogate;
  }
  return l;
}

void LearnedLoss::update_stats(const LossFeatureInputs& in) { update_stats_rows(stat_rows(in)); }

Tensor LearnedLoss::stat_rows(const LossFeatureInputs& in) const {
  torch::NoGradGuard no_grad;
  LossFeatureInputs src = in;
  src.mean = in.action.to(in.mean.scalar_type());
  return features(src).detach().to(torch::kFloat64).reshape({-1, input_dim_}).contiguous();
}

void LearnedLoss::update_stats_rows(const Tensor& rows) {
  const Tensor f = rows.to(torch::kFloat64).reshape({-1, input_dim_}).contiguous();
  moments_.update(f.data_ptr<double>(), f.size(0));
  refresh_norm();
}

void LearnedLoss::refresh_norm() {
  norm_mean_ = torch::zeros({input_dim_}, torch::kFloat64);
  norm_inv_std_ = torch::ones({input_dim_}, torch::kFloat64);
  if (moments_.count <= 0) return;
  for (int j = 0; j < input_dim_; ++j) {
    norm_mean_[j] = moments_.mean[j];
    norm_inv_std_[j] = 1.0 / std::sqrt(moments_.variance(j) + 1e-8);
  }
}

void LearnedLoss::put(Archive& a, const std::string& prefix, const Params& phi) const {
  nlohmann::json spec = {{"features", spec_.features},
                         {"hidden", spec_.hidden},
                         {"activation", activation_name(spec_.activation)},
                         {"obs_dim", spec_.obs_dim},
                         {"act_dim", spec_.act_dim},
                         {"goal_dim", spec_.goal_dim},
                         {"target_hidden", spec_.target_hidden},
                         {"target_weight", spec_.target_weight},
                         {"anchor_weight", spec_.anchor_weight},
                         {"anchor_clip", spec_.anchor_clip}};
  a.meta()[prefix + "spec"] = spec;
  a.put_f64(prefix + "norm/mean", moments_.mean);
  a.put_f64(prefix + "norm/m2", moments_.m2);
  a.put_f64(prefix + "norm/count", {moments_.count});
  put_params(a, prefix + "phi/", phi);
}

LearnedLoss LearnedLoss::get(const Archive& a, const std::string& prefix, Params* phi) {
  const std::string& path = a.path();
  LearnedLossSpec spec;
  try {
    const auto& j = a.meta().at(prefix + "spec");
    spec.features = j.at("features").get<std::vector<std::string>>();
    spec.hidden = j.at("hidden").get<std::vector<int>>();
    spec.activation = parse_activation(j.at("activation").get<std::string>());
    spec.obs_dim = j.at("obs_dim").get<int>();
    spec.act_dim = j.at("act_dim").get<int>();
    spec.goal_dim = j.at("goal_dim").get<int>();
    spec.target_hidden = j.value("target_hidden", std::vector<int>{});
    spec.target_weight = j.value("target_weight", 1.0);
    spec.anchor_weight = j.value("anchor_weight", 0.0);
    spec.anchor_clip = j.value("anchor_clip", 0.2);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": learned-loss description is incomplete (" + e.what() + ")");
  }
  std::string joined;
  for (const auto& f : spec.features) joined += (joined.empty() ? "" : ",") + f;
  try {
    parse_loss_features(joined);
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  LearnedLoss loss(spec);
  loss.moments_.mean = a.get_f64(prefix + "norm/mean");
  loss.moments_.m2 = a.get_f64(prefix + "norm/m2");
  loss.moments_.count = a.get_f64(prefix + "norm/count").at(0);
  if (static_cast<int>(loss.moments_.mean.size()) != loss.input_dim_ ||
      loss.moments_.m2.size() != loss.moments_.mean.size())
    throw Error(path + ": normalisation statistics do not match the features");
  loss.refresh_norm();
  const Params expected = loss.init(0);
  Params p = get_params(a, prefix + "phi/", expected.size());
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i].sizes() != expected[i].sizes())
      throw Error(fmt::format("{}: learned-loss weight {} has the wrong shape", path, i));
  if (phi) *phi = p;
  return loss;
}

void LearnedLoss::save(const std::string& path, const Params& phi, const nlohmann::json& extra_meta) const {
  Archive a("learned_loss");
  a.meta() = extra_meta;
  a.meta()["format"] = 1;
  put(a, "", phi);
  a.save(path);
}

LearnedLoss LearnedLoss::load(const std::string& path, Params* phi, nlohmann::json* meta) {
  const Archive a = Archive::load(path, "learned_loss");
  LearnedLoss loss = get(a, "", phi);
  if (meta) *meta = a.meta();
  return loss;
}

void LearnedLoss::check_dims(int obs_dim, int act_dim, int goal_dim, const std::string& where) const {
  if (obs_dim != spec_.obs_dim || act_dim != spec_.act_dim || goal_dim != spec_.goal_dim)
    throw Error(fmt::format("{}: the learned loss was meta-trained for obs/act/goal sizes {}/{}/{}, this environment "
                            "has {}/{}/{}",
                            where, spec_.obs_dim, spec_.act_dim, spec_.goal_dim, obs_dim, act_dim, goal_dim));
}

}  // namespace ml3
