#include "src/policy/trainer.h"
#include "deploy/checkpoint_entries.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <limits>
#include <thread>
#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "src/run/run.h"

namespace fs = std::filesystem;

namespace ml3 {

PolicyModels make_policy_models(const Config& c, const EnvSpec& spec) {
  const int obs_dim = spec.obs_dim, act_dim = spec.act_dim;
  const auto ps = read<PolicySection>(c, "policy.");
  const auto vs = read<ValueSection>(c, "value.");
  PolicyModels m;
  m.spec = spec;
  PolicyConfig pc;
  pc.hidden = ps.hidden;
  pc.activation = parse_activation(ps.activation);
  pc.init_log_std = ps.init_log_std;
  pc.log_std_min = ps.log_std_min;
  pc.log_std_max = ps.log_std_max;
  if (!(pc.log_std_min < pc.log_std_max)) throw Error("config: policy.log_std_min must be below policy.log_std_max");
  m.policy = GaussianPolicy(obs_dim, act_dim, pc);
  std::vector<int> sizes{obs_dim};
  for (int h : vs.hidden) sizes.push_back(h);
  sizes.push_back(1);
  m.value_net = FunctionalMlp(sizes, parse_activation(vs.activation));
  m.norm = ObsNormalizer(obs_dim, ps.obs_norm);
  return m;
}

void declare_policy_run(Schema& s) {
  declare<TrainSection>(s, "train.");
  declare<PolicySection>(s, "policy.");
  declare<ValueSection>(s, "value.");
}
void declare_policy_debug(Schema& s) { declare<DebugSection>(s, "debug."); }

std::unique_ptr<Algorithm> make_policy_trainer(const Config& c, const AlgorithmEntry& entry) {
  return std::make_unique<PolicyTrainer>(c, entry, "", train_plan(c));
}

PolicyRunPlan train_plan(const Config& c) {
  const auto t = read<TrainSection>(c, "train.");
  PolicyRunPlan p;
  p.seed = static_cast<uint64_t>(c.get_int("seed"));
  p.iterations = t.iterations;
  p.episodes = t.episodes_per_iteration;
  p.checkpoint_every = t.checkpoint_every;
  p.eval_every = t.eval_every;
  p.eval_episodes = t.eval_episodes;
  p.eval_seed = static_cast<uint64_t>(t.eval_seed);
  p.nan_at_iteration = read<DebugSection>(c, "debug.").nan_at_iteration;
  return p;
}


// ---- the trainer ------------------------------------------------------------------
PolicyTrainer::PolicyTrainer(const Config& c, const AlgorithmEntry& entry, const std::string& prefix,
                             const PolicyRunPlan& plan)
    : name_(entry.name),
      env_name_(c.get_string("env.name")),
      plan_(plan),
      venv_(env_name_, c.subset("env."), plan.episodes, static_cast<int>(c.get_int("threads"))),
      eval_env_(env_name_, c.subset("env."), plan.eval_episodes, static_cast<int>(c.get_int("threads"))) {
  threads_ = static_cast<int>(c.get_int("threads"));
  set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
  models_ = make_policy_models(c, venv_.spec());
  update_ = entry.rule().make_update(c, prefix, models_);
  models_.policy.set_small_forward(update_->fast_backend());
  pp_ = models_.policy.init(mix_seed(plan.seed, 11));
  vp_ = models_.value_net.init(mix_seed(plan.seed, 12));
  if (!plan.build_only) update_->init(pp_, vp_, mix_seed(plan.seed, 13));
}

std::string PolicyTrainer::label() const { return "train " + env_name_ + " " + name_; }

std::vector<std::string> PolicyTrainer::columns() const {
  return {"iteration",     "env_steps",      "wall_seconds",      "steps_per_s",
          "return_mean",   "success_rate",   "final_distance_mean", "policy_loss",
          "value_loss",    "entropy",        "approx_kl",         "clip_fraction",
          "grad_norm",     "lr",             "collect_seconds",   "update_seconds",
          "eval_success_rate", "eval_final_distance_mean", "eval_return_mean"};
}

nlohmann::json PolicyTrainer::iterate(int it) {
  const auto it_start = Clock::now();
  const EnvSpec& spec = venv_.spec();
  if (!update_->learns_from_env()) return iterate_offline(it);
  const auto tasks = sample_tasks(venv_.env(0), plan_.train_split, mix_seed(plan_.seed, plan_.task_offset + it),
                                  plan_.episodes);
  Batch batch = collect(venv_, models_.policy, pp_, models_.norm, tasks, mix_seed(plan_.seed, plan_.noise_offset + it),
                        false);
  const double collect_seconds = since(it_start);
  if (it == plan_.nan_at_iteration) batch.rewards[0][0] = NAN;
  {
    // Normaliser statistics from this batch apply from the next rollout on.
    const Tensor raw = batch.raw_obs.reshape({-1, spec.obs_dim}).to(torch::kFloat64).contiguous();
    models_.norm.update(raw.data_ptr<double>(), raw.size(0));
  }
  compute_rtg(batch, update_->gamma());
  if (update_->gae_lambda() >= 0) {
    compute_values(batch, models_.value_net, vp_);
    compute_gae(batch, update_->gamma(), update_->gae_lambda());
  }
  const double progress = static_cast<double>(it - 1) / plan_.iterations;
  const double lr_scale = update_->anneal_lr() ? 1.0 - progress : 1.0;
  update_->set_progress(progress);
  const auto update_start = Clock::now();
  // The update works on copies: a non-finite result leaves the parameters as they were.
  Params pp = clone_params(pp_, true), vp = clone_params(vp_, true);
  const UpdateStats us = update_->update(batch, pp, vp, lr_scale, mix_seed(plan_.seed, plan_.shuffle_offset + it));
  if (!all_finite(pp) || !all_finite(vp)) throw NonFiniteError("non-finite parameters after the update");
  pp_ = std::move(pp), vp_ = std::move(vp);
  eval_current_ = false;
  const double update_seconds = since(update_start);
  env_steps_ += batch.steps();
  const double it_seconds = since(it_start);
  return {{"iteration", it},
          {"env_steps", env_steps_},
          {"steps_per_s", batch.steps() / it_seconds},
          {"return_mean", batch.return_mean},
          {"success_rate", batch.success_rate},
          {"final_distance_mean", batch.final_distance_mean},
          {"policy_loss", us.policy_loss},
          {"value_loss", us.value_loss},
          {"entropy", us.entropy},
          {"approx_kl", us.approx_kl},
          {"clip_fraction", us.clip_fraction},
          {"grad_norm", us.grad_norm},
          {"lr", update_->lr() * lr_scale},
          {"collect_seconds", collect_seconds},
          {"update_seconds", update_seconds}};
}

// An iteration of a rule that does not learn from the environment: no
// episodes, no environment steps; the batch statistics are not defined (NaN).
nlohmann::json PolicyTrainer::iterate_offline(int it) {
  const auto start = Clock::now();
  Batch none;
  Params pp = clone_params(pp_, true), vp = clone_params(vp_, true);
  const UpdateStats us = update_->update(none, pp, vp, 1.0, mix_seed(plan_.seed, plan_.shuffle_offset + it));
  if (!all_finite(pp)) throw NonFiniteError("non-finite parameters after the update");
  pp_ = std::move(pp), vp_ = std::move(vp);
  eval_current_ = false;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {{"iteration", it},         {"env_steps", env_steps_},      {"steps_per_s", 0.0},
          {"return_mean", nan},      {"success_rate", nan},          {"final_distance_mean", nan},
          {"policy_loss", us.policy_loss}, {"value_loss", nan},     {"entropy", nan},
          {"approx_kl", nan},        {"clip_fraction", nan},         {"grad_norm", us.grad_norm},
          {"lr", update_->lr()},     {"collect_seconds", 0.0},       {"update_seconds", since(start)}};
}

EvalResult PolicyTrainer::evaluate_policy() {
  return ml3::evaluate(eval_env_, models_.policy, pp_, models_.norm, plan_.eval_split, plan_.eval_episodes,
                       plan_.eval_seed);
}

nlohmann::json PolicyTrainer::evaluate() {
  const EvalResult ev = evaluate_policy();
  last_eval_ = ev;
  eval_current_ = true;
  return {{"eval_success_rate", ev.success_rate},
          {"eval_final_distance_mean", ev.final_distance_mean},
          {"eval_return_mean", ev.return_mean}};
}

std::string PolicyTrainer::progress_text(const nlohmann::json& row) const {
  if (!update_->learns_from_env())
    return fmt::format("no env steps | {} policy steps | loss {:.4g} | eval {}", fmt_count(update_->policy_steps()),
                       row["policy_loss"].get<double>(),
                       last_eval_ ? fmt::format("{:.0f}%", 100 * last_eval_->success_rate) : "-");
  return fmt::format("{} steps | {} steps/s | return {:.2f} | success {:.0f}% | eval {}",
                     fmt_count(row["env_steps"].get<double>()), fmt_count(row["steps_per_s"].get<double>()),
                     row["return_mean"].get<double>(), 100 * row["success_rate"].get<double>(),
                     last_eval_ ? fmt::format("{:.0f}%", 100 * last_eval_->success_rate) : "-");
}

void PolicyTrainer::save(Archive& a) const {
  a.meta()["env_steps"] = env_steps_;
  put_params(a, ckpt::kPolicy, pp_);
  put_params(a, ckpt::kValue, vp_);
  models_.norm.save(a, ckpt::kNorm);
  update_->save(a, ckpt::kUpdate);
}

void PolicyTrainer::load(const Archive& a) {
  pp_ = checked_params(a, ckpt::kPolicy, pp_, "policy");
  vp_ = checked_params(a, ckpt::kValue, vp_, "value");
  models_.norm.load(a, ckpt::kNorm);
  update_->load(a, ckpt::kUpdate);
  env_steps_ = a.meta().at("env_steps").get<int64_t>();
}

nlohmann::json PolicyTrainer::summary(double wall_seconds) {
  // The runner evaluates after the last iteration; a run resumed at its end has not.
  const EvalResult ev = eval_current_ ? *last_eval_ : evaluate_policy();
  return {{"env", env_name_},
          {"algorithm", name_},
          {"seed", plan_.seed},
          {"policy_updates", update_->policy_steps()},
          {"env_steps", env_steps_},
          {"train_steps_per_s", env_steps_ / std::max(1e-9, wall_seconds)},
          {"threads", threads_},
          {"eval_split", split_name(plan_.eval_split)},
          {"eval_episodes", plan_.eval_episodes},
          {"final_success_rate", ev.success_rate},
          {"final_distance_mean", ev.final_distance_mean},
          {"final_return_mean", ev.return_mean},
          {"success_threshold", venv_.spec().success_threshold}};
}

Algorithm::Plot PolicyTrainer::plot() const {
  return {"curve", "learning_curve.png", fmt::format("{} / {} (seed {})", env_name_, name_, plan_.seed)};
}

// ---- the actor-critic rules' shared steps ----------------------------------------------

ActorCriticUpdate::ActorCriticUpdate(const Config& c, const std::string& prefix, const PolicyModels& m)
    : optim_(read<OptimSection>(c, prefix + "optim.")), pg_(read<PgSection>(c, prefix + "pg.")), models_(m) {
  if (pg_.backend == "fast") {
    const FunctionalMlp& pm = m.policy.mlp();
    const PolicyConfig& pc = m.policy.config();
    fast_ = std::make_unique<FastPolicyGradient>(pm.sizes(), pm.activation(), pc.log_std_min,
                                                 pc.log_std_max, m.value_net.sizes(),
                                                 m.value_net.activation());
    if (c.has("threads") && c.get_int("threads") >= 2)
      value_fast_ = std::make_unique<FastPolicyGradient>(pm.sizes(), pm.activation(), pc.log_std_min,
                                                         pc.log_std_max, m.value_net.sizes(),
                                                         m.value_net.activation());
    // The parameter vectors themselves are filled by begin() (flat_params).
    fast_pg_.resize(fast_->policy_params()), fast_vg_.resize(fast_->value_params());
  }
}

void ActorCriticUpdate::init(Params& policy, Params& value, uint64_t) {
  policy_adam_ = Adam(policy, optim_.adam_eps);
  value_adam_ = Adam(value, optim_.adam_eps);
}

void ActorCriticUpdate::save(Archive& a, const std::string& prefix) const {
  policy_adam_.save(a, prefix + "adam_policy/");
  value_adam_.save(a, prefix + "adam_value/");
}

void ActorCriticUpdate::load(const Archive& a, const std::string& prefix) {
  policy_adam_.load(a, prefix + "adam_policy/");
  value_adam_.load(a, prefix + "adam_value/");
}

namespace {
void check_finite(double v, const char* what) {
  if (!std::isfinite(v)) throw NonFiniteError(std::string("non-finite ") + what);
}
}  // namespace

Minibatch ActorCriticUpdate::begin(Batch& batch, const Params& pp, const Params& vp) {
  Minibatch all = flatten_batch(batch);
  if (pg_.normalize_advantages)
    all.advantages = (all.advantages - all.advantages.mean()) / (all.advantages.std() + 1e-8);
  if (fast_) {
    for (Tensor* t : {&all.obs, &all.actions, &all.old_logp, &all.advantages, &all.returns})
      *t = t->detach().to(torch::kFloat32).contiguous();
    fast_all_ = {all.obs.data_ptr<float>(),        all.actions.data_ptr<float>(), all.old_logp.data_ptr<float>(),
                 all.advantages.data_ptr<float>(), all.returns.data_ptr<float>(), all.obs.size(0)};
    fast_pp_ = flat_params<float>(pp);
    fast_vp_ = flat_params<float>(vp);
    if (fast_pp_.size() != fast_->policy_params() || fast_vp_.size() != fast_->value_params())
      throw Error("internal: fast backend parameter count mismatch");
  }
  return all;
}

void ActorCriticUpdate::end(Params& pp, Params& vp) const {
  if (!fast_) return;
  set_from_flat(fast_pp_, pp);
  set_from_flat(fast_vp_, vp);
}

double ActorCriticUpdate::policy_step(const Objective& objective, const Minibatch& mb, Params& pp, double lr_scale,
                                      UpdateStats& st) {
  double pg_loss_v, entropy_v, gn;
  LossStats ls;
  if (fast_) {
    if (mb.obs.defined()) fast_->gather(fast_all_, nullptr, fast_all_.rows);  // all rows
    const FastPolicyStats fs =
        fast_->policy_loss_grad(fast_pp_.data(), objective.fast_kind(), objective.clip(), pg_.entropy_coef,
                                fast_pg_.data(), objective.drift(), objective.progress());
    check_finite(fs.loss - pg_.entropy_coef * fs.entropy, "policy loss");
    gn = clip_grad_norm_flat(fast_pg_.data(), fast_pg_.size(), optim_.max_grad_norm);
    check_finite(gn, "policy gradient");
    policy_adam_.step_flat(fast_pp_.data(), fast_pg_.data(), fast_pp_.size(), optim_.lr * lr_scale);
    pg_loss_v = fs.loss, entropy_v = fs.entropy;
    ls.approx_kl = fs.approx_kl, ls.clip_fraction = fs.clip_fraction;
  } else {
    const PolicyEval ev = policy_eval(models_.policy, pp, mb);
    const Tensor pg_loss = objective.policy_loss(mb, ev, &ls);
    const Tensor loss = pg_loss - pg_.entropy_coef * ev.entropy;
    check_finite(loss.item<double>(), "policy loss");
    auto grads = torch::autograd::grad({loss}, pp);
    gn = clip_grad_norm(grads, optim_.max_grad_norm);
    check_finite(gn, "policy gradient");
    policy_adam_.step(pp, grads, optim_.lr * lr_scale);
    pg_loss_v = pg_loss.item<double>(), entropy_v = ev.entropy.item<double>();
  }
  st.policy_loss += pg_loss_v;
  st.entropy += entropy_v;
  st.approx_kl += ls.approx_kl;
  st.clip_fraction += ls.clip_fraction;
  st.grad_norm += gn;
  ++st.policy_updates;
  return ls.approx_kl;
}

void ActorCriticUpdate::value_step(const Minibatch& mb, Params& vp, double lr_scale, UpdateStats& st,
                                   int& value_steps) {
  double loss_v;
  if (fast_) {
    FastPolicyGradient& f = *value_gatherer();
    if (mb.obs.defined()) f.gather(fast_all_, nullptr, fast_all_.rows);
    loss_v = f.value_loss_grad(fast_vp_.data(), fast_vg_.data());
    check_finite(loss_v, "value loss");
    check_finite(clip_grad_norm_flat(fast_vg_.data(), fast_vg_.size(), optim_.max_grad_norm), "value gradient");
    value_adam_.step_flat(fast_vp_.data(), fast_vg_.data(), fast_vp_.size(), optim_.value_lr * lr_scale);
  } else {
    const Tensor v = models_.value_net.forward(mb.obs, vp).squeeze(-1);
    const Tensor loss = 0.5 * (v - mb.returns).pow(2).mean();
    loss_v = loss.item<double>();
    check_finite(loss_v, "value loss");
    auto grads = torch::autograd::grad({loss}, vp);
    check_finite(clip_grad_norm(grads, optim_.max_grad_norm), "value gradient");
    value_adam_.step(vp, grads, optim_.value_lr * lr_scale);
  }
  st.value_loss += loss_v;
  ++value_steps;
}

void ActorCriticUpdate::for_each_minibatch(const Minibatch& all, uint64_t shuffle_seed,
                                           const std::function<bool(const Minibatch&)>& step) {
  for_each_minibatch(all, shuffle_seed, fast_.get(), step);
}

void ActorCriticUpdate::for_each_minibatch(const Minibatch& all, uint64_t shuffle_seed, FastPolicyGradient* gatherer,
                                           const std::function<bool(const Minibatch&)>& step) {
  const int64_t B = all.obs.size(0);
  const int64_t mb_size = std::max<int64_t>(1, B / pg_.minibatches);
  Rng rng(shuffle_seed);
  const Minibatch gathered;  // the fast backend's steps read its buffers
  for (int e = 0; e < pg_.epochs; ++e) {
    const auto perm = permutation(B, rng);
    for (int64_t start = 0; start + mb_size <= B; start += mb_size) {
      if (gatherer) gatherer->gather(fast_all_, perm.data() + start, mb_size);
      if (!step(gatherer ? gathered : select_rows(all, perm, start, mb_size))) return;
    }
  }
}

void ActorCriticUpdate::policy_then_value(const Minibatch& all, uint64_t shuffle_seed, Params& vp, double lr_scale,
                                          UpdateStats& st, int& value_steps,
                                          const std::function<void()>& policy_work) {
  UpdateStats vst;
  int vsteps = 0;
  const auto value_work = [&] {
    for_each_minibatch(all, shuffle_seed, value_gatherer(), [&](const Minibatch& mb) {
      value_step(mb, vp, lr_scale, vst, vsteps);
      return true;
    });
  };
  if (parallel_value_fit()) {
    std::exception_ptr value_error;
    std::thread value_thread([&] {
      try {
        value_work();
      } catch (...) {
        value_error = std::current_exception();
      }
    });
    std::exception_ptr policy_error;
    try {
      policy_work();
    } catch (...) {
      policy_error = std::current_exception();
    }
    value_thread.join();
    if (policy_error) std::rethrow_exception(policy_error);
    if (value_error) std::rethrow_exception(value_error);
  } else {
    policy_work();
    value_work();
  }
  st.value_loss += vst.value_loss;
  value_steps += vsteps;
}

void ActorCriticUpdate::average(UpdateStats& st, int value_steps) {
  if (st.policy_updates > 0) {
    st.policy_loss /= st.policy_updates, st.entropy /= st.policy_updates, st.approx_kl /= st.policy_updates;
    st.clip_fraction /= st.policy_updates, st.grad_norm /= st.policy_updates;
  }
  if (value_steps > 0) st.value_loss /= value_steps;
}

}  // namespace ml3
