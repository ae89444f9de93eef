// Training a policy with a learned loss (the artifact of `ml3 meta-train`):
// each batch takes learned_loss.steps steps of learned_loss.optimizer on M_phi
// -- exactly the inner optimiser the loss was meta-trained through (one plain
// SGD step in the paper) -- with no value network and no clipping. This
// is what meta-test runs for the loss under test, and what a user runs with
// `ml3 train --loss FILE` after meta-training.
#include <torch/torch.h>

#include <cmath>

#include "models/learned_loss.h"
#include "src/ml3/inner_loop.h"
#include "src/ml3/sections.h"
#include "src/policy/trainer.h"

namespace ml3 {
namespace {

struct LearnedLossSection {
  std::string file;
  double lr = 0.5;
  std::string optimizer = "sgd";
  int steps = 1;
  double gamma = 0.99;
  template <class F>
  void fields(F& f) {
    f("file", file, "learned-loss file (loss.ml3 of ml3 meta-train; required)");
    f("lr", lr, "step size on the learned loss (the meta-training's meta.inner_lr)", Bounds::in(0.0, 1e6, true));
    f("optimizer", optimizer, "sgd or adam (the meta-training's meta.inner_optimizer)", Choices{{"sgd", "adam"}});
    f("steps", steps, "optimiser steps per batch (the meta-training's meta.steps_per_batch)", Bounds::in(1, 1000));
    f("gamma", gamma, "discount of the return-to-go feature (the meta-training's meta.gamma)", Bounds::in(0.0, 1.0));
  }
};

class LearnedLossUpdate : public PolicyUpdate {
 public:
  LearnedLossUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
      : cfg_(read<LearnedLossSection>(c, prefix + "learned_loss.")),
        opt_(InnerOptimizer::named(cfg_.optimizer, cfg_.lr, cfg_.steps)),
        models_(m) {
    if (m.norm.enabled())
      throw Error("config: key 'policy.obs_norm': a learned loss trains policies on raw observations, as at "
                  "meta-train time; set it to false");
    // Without a file the loss must come from set_learned_loss before the
    // first update (ES meta-training); ml3 train's check (the rule's
    // `inputs`) has refused an empty key by then.
    if (cfg_.file.empty()) return;
    loss_ = LearnedLoss::load(cfg_.file, &phi_);
    loss_.check_dims(m.spec.obs_dim, m.spec.act_dim, m.spec.goal_dim, cfg_.file);
  }
  void set_learned_loss(const LearnedLoss& loss, const Params& phi, LearnedLoss* stats_into) override {
    loss.check_dims(models_.spec.obs_dim, models_.spec.act_dim, models_.spec.goal_dim, "learned loss");
    loss_ = loss, phi_ = phi, stats_into_ = stats_into;
  }
  void init(Params&, Params&, uint64_t) override {}
  double gamma() const override { return cfg_.gamma; }
  double lr() const override { return cfg_.lr; }
  int64_t policy_steps() const override { return steps_; }
  void save(Archive& a, const std::string& prefix) const override {
    a.put_f64(prefix + "steps", {double(steps_)});
    state_.save(a, prefix);
  }
  void load(const Archive& a, const std::string& prefix) override {
    steps_ = static_cast<int64_t>(a.get_f64(prefix + "steps").at(0));
    state_.load(a, prefix, models_.policy.mlp().num_tensors() + 1);  // + the log-std
  }

  UpdateStats update(Batch& batch, Params& pp, Params&, double lr_scale, uint64_t) override {
    if (phi_.empty())
      throw Error("config: key 'learned_loss.file' is required (the loss.ml3 of ml3 meta-train)");
    compute_reinforce_advantages(batch);  // for an anchored loss
    const Minibatch all = flatten_batch(batch);
    if (stats_into_) {
      torch::NoGradGuard no_grad;
      stats_into_->update_stats(loss_inputs(all, policy_eval(models_.policy, pp, all)));
    }
    if (opt_.adam || opt_.steps > 1) return update_with(all, pp, lr_scale);
    const PolicyEval ev = policy_eval(models_.policy, pp, all);
    const Tensor loss = loss_.loss(loss_inputs(all, ev), phi_);
    if (!std::isfinite(loss.item<double>())) throw NonFiniteError("non-finite learned loss");
    // allow_unused: without the log_prob feature the log-std gets no gradient.
    auto grads = torch::autograd::grad({loss}, pp, {}, false, false, /*allow_unused=*/true);
    for (size_t i = 0; i < grads.size(); ++i)
      if (!grads[i].defined()) grads[i] = torch::zeros_like(pp[i]);
    UpdateStats st;
    st.grad_norm = clip_grad_norm(grads, 0.0);
    if (!std::isfinite(st.grad_norm)) throw NonFiniteError("non-finite learned-loss gradient");
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < pp.size(); ++i) pp[i].sub_(grads[i], cfg_.lr * lr_scale);
    st.policy_loss = loss.item<double>();
    st.entropy = ev.entropy.item<double>();
    st.policy_updates = 1;
    ++steps_;
    return st;
  }

 private:
  // Several steps, or Adam: the inner optimiser of meta-training, without the graph.
  UpdateStats update_with(const Minibatch& all, Params& pp, double lr_scale) {
    InnerOptimizer opt = opt_;
    opt.lr *= lr_scale;
    UpdateStats st;
    double first = 0;
    Params next = inner_update(loss_, phi_, models_.policy, pp, all, opt, &state_, false, &first);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < pp.size(); ++i) pp[i].copy_(next[i]);
    if (!std::isfinite(first)) throw NonFiniteError("non-finite learned loss");
    st.policy_loss = first;
    st.entropy = models_.policy.entropy(models_.policy.log_std(pp)).item<double>();
    st.policy_updates = cfg_.steps;
    steps_ += cfg_.steps;
    state_ = state_.detached();
    return st;
  }

  LearnedLossSection cfg_;
  InnerOptimizer opt_;
  InnerState state_;
  const PolicyModels& models_;
  LearnedLoss loss_;
  Params phi_;
  LearnedLoss* stats_into_ = nullptr;
  int64_t steps_ = 0;
};

// shaping_only.*: the loss file whose target network is the policy.
struct ShapingOnlySection {
  std::string file;
  template <class F>
  void fields(F& f) {
    f("file", file, "learned-loss file with a target network (loss.ml3 of ml3 meta-train with loss.target; required)");
  }
};

std::string sizes_text(int in, const std::vector<int>& hidden, int out) {
  std::string t = std::to_string(in);
  for (int h : hidden) t += "-" + std::to_string(h);
  return t + "-" + std::to_string(out);
}

// The loss file's target network T run as the policy: the shaping
// information alone (what a shaped loss carries with it). The policy's mean
// network is T, copied once; nothing is learned and no episode is collected.
// The policy must have T's architecture (policy.hidden, policy.activation)
// and raw observations (T's input).
class ShapingOnlyUpdate : public PolicyUpdate {
 public:
  ShapingOnlyUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
      : cfg_(read<ShapingOnlySection>(c, prefix + "shaping_only.")) {
    const std::string key = prefix + "shaping_only.file";
    if (cfg_.file.empty()) throw Error("config: key '" + key + "' is required (a loss.ml3 with a target network)");
    loss_ = LearnedLoss::load(cfg_.file, &phi_);
    loss_.check_dims(m.spec.obs_dim, m.spec.act_dim, m.spec.goal_dim, cfg_.file);
    if (!loss_.has_target())
      throw Error(cfg_.file + ": this loss has no target network (meta-trained without loss.target); key '" + key +
                  "' needs one");
    if (m.norm.enabled())
      throw Error("config: key 'policy.obs_norm': the target network reads raw observations; set it to false");
    const LearnedLossSpec& ls = loss_.spec();
    const PolicyConfig& pc = m.policy.config();
    if (pc.hidden != ls.target_hidden || pc.activation != ls.activation)
      throw Error(cfg_.file + ": its target network is " + sizes_text(m.spec.obs_dim, ls.target_hidden, m.spec.act_dim) +
                  " (" + activation_name(ls.activation) + "), the policy " +
                  sizes_text(m.spec.obs_dim, pc.hidden, m.spec.act_dim) + " (" + activation_name(pc.activation) +
                  "): set policy.hidden and policy.activation to the target's (in ml3 compare: "
                  "methods.<name>.policy_hidden)");
  }
  void init(Params& policy, Params&, uint64_t) override {
    const Params t = loss_.target_params(phi_);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < t.size(); ++i) policy[i].copy_(t[i].to(policy[i].dtype()));
  }
  double gamma() const override { return 0.99; }
  double lr() const override { return 0.0; }
  int64_t policy_steps() const override { return 0; }
  bool learns_from_env() const override { return false; }
  UpdateStats update(Batch&, Params&, Params&, double, uint64_t) override { return {}; }
  void save(Archive&, const std::string&) const override {}
  void load(const Archive&, const std::string&) override {}

 private:
  ShapingOnlySection cfg_;
  LearnedLoss loss_;
  Params phi_;
};

// A loss file's metadata, checked to be of the config's environment (`key`
// names the config key for the message); "env" is filled in when the file
// does not record it.
nlohmann::json loss_file_meta(const std::string& file, const Config& c, const std::string& key) {
  nlohmann::json meta;
  LearnedLoss::load(file, nullptr, &meta);
  const std::string env = c.get_string("env.name"), trained = meta.value("env", env);
  if (trained != env)
    throw Error(file + ": a loss meta-trained for " + trained + ", not for " + env + " (key '" + key + "')");
  meta["env"] = trained;
  return meta;
}

// What a loss file says about its meta-training (for reports): its cost
// where the file records it.
nlohmann::json meta_training_of(const nlohmann::json& meta) {
  nlohmann::json j = nlohmann::json::object();
  for (const char* k : {"meta_training_seconds", "meta_training_env_steps", "meta_iteration", "shaping"})
    j[k] = meta.value(k, nlohmann::json());
  return j;
}

}  // namespace

AlgorithmEntry shaping_only_algorithm() {
  AlgorithmEntry e;
  e.name = "shaping_only";
  e.command = Command::Train;
  e.description = "a learned loss's target network run as the policy: its shaping information alone (no learning)";
  e.declare = [](Schema& s, const std::string& prefix) { declare<ShapingOnlySection>(s, prefix + "shaping_only."); };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<ShapingOnlyUpdate>(c, prefix, m);
  };
  e.define_rule().meta_test_baseline = false;
  e.define_rule().inputs = [](const Config& c) -> nlohmann::json {
    const auto l = read<ShapingOnlySection>(c, "shaping_only.");
    if (l.file.empty()) throw Error("config: key 'shaping_only.file' is required (a loss.ml3 with a target network)");
    const nlohmann::json meta = loss_file_meta(l.file, c, "shaping_only.file");
    return {{"file", l.file}, {"meta_trained_on", meta["env"]}, {"meta_training", meta_training_of(meta)}};
  };
  return e;
}

AlgorithmEntry learned_loss_algorithm() {
  AlgorithmEntry e;
  e.name = "learned_loss";
  e.define_rule().lr_key = "learned_loss.lr";
  e.command = Command::Train;
  e.description = "a learned loss from ml3 meta-train (learned_loss.file), applied as it was meta-trained";
  e.declare = [](Schema& s, const std::string& prefix) { declare<LearnedLossSection>(s, prefix + "learned_loss."); };
  e.define_rule().make_update = [](const Config& c, const std::string& prefix, const PolicyModels& m) -> std::unique_ptr<PolicyUpdate> {
    return std::make_unique<LearnedLossUpdate>(c, prefix, m);
  };
  // The loss file: meta-trained for this environment and applied with the
  // inner optimiser it was meta-trained through.
  e.define_rule().inputs = [](const Config& c) -> nlohmann::json {
    const auto l = read<LearnedLossSection>(c, "learned_loss.");
    if (l.file.empty()) throw Error("config: key 'learned_loss.file' is required (the loss.ml3 of ml3 meta-train)");
    nlohmann::json meta = loss_file_meta(l.file, c, "learned_loss.file");
    const std::string trained = meta["env"];
    if (meta.contains("inner_optimizer") && meta["inner_optimizer"] != l.optimizer)
      throw Error(l.file + ": meta-trained through the " + meta["inner_optimizer"].get<std::string>() +
                  " inner optimiser; key 'learned_loss.optimizer' says " + l.optimizer);
    // The steps per batch may differ from meta-training's (meta_test.loss_steps):
    // more steps of the same optimiser; both are recorded.
    return {{"file", l.file},
            {"shaped", meta.value("shaped", false)},
            {"steps_per_batch", l.steps},
            {"meta_trained_steps_per_batch", meta.value("steps_per_batch", nlohmann::json())},
            {"meta_trained_on", trained},
            {"meta_iteration", meta.value("meta_iteration", nlohmann::json())},
            {"meta_training", meta_training_of(meta)}};
  };
  // In meta-test: the loss under test, applied as it was meta-trained.
  e.define_rule().bind_artifact = [](Config& c, const std::string& file, const Config& meta) {
    c.set("learned_loss.file", file, "meta-test");
    c.set("learned_loss.lr", meta.values().at("meta.inner_lr"), "meta-test");
    c.set("learned_loss.optimizer", meta.values().at("meta.inner_optimizer"), "meta-test");
    const std::string steps = meta.get_int("meta_test.loss_steps") > 0 ? "meta_test.loss_steps" : "meta.steps_per_batch";
    c.set("learned_loss.steps", meta.values().at(steps), "meta-test");
    c.set("learned_loss.gamma", meta.values().at("meta.gamma"), "meta-test");
  };
  return e;
}

}  // namespace ml3
