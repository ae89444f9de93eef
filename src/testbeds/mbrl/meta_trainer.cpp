// The model-based reacher's meta-trainer under the runner (the `mbrl`
// algorithm of `ml3 meta-train`) and its registry entry.
#include "src/testbeds/mbrl/internal.h"

namespace ml3 {
namespace mbrl {

// ---- the meta-trainer ---------------------------------------------------------
class MbrlMetaTrainer : public Algorithm {
 public:
  MbrlMetaTrainer(const Config& c, const std::string& run_dir)
      : cfg_(c), run_dir_(run_dir), s_(read<MbrlSection>(c, "mbrl.")), seed_(static_cast<uint64_t>(c.get_int("seed"))),
        sim_(c), loss_net_(loss_sizes(s_.loss_hidden), Activation::Elu, true) {
    set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
    pb_.policy = policy_net(s_);
    pb_.horizon = sim_.horizon();
    phi_ = loss_net_.init(mix_seed(seed_, kTagLoss));
    phi_opt_ = Adam(phi_, 1e-8);
    pool_ = fresh_policies(pb_.policy, seed_, kTagPolicy, 0, s_.pool_size, s_.policy_init_scale);
    for (int i = 0; i < s_.pool_size; ++i) slots_.push_back(i), ages_.push_back((i * s_.pool_reset_every) / s_.pool_size);
    next_slot_ = s_.pool_size;
    refresh_goals();
    eval_set_ = eval_goals(sim_, Split::Test, static_cast<uint64_t>(s_.test_seed), s_.eval_goals);
  }
  std::string label() const override { return "meta-train mbrl reacher"; }
  int iterations() const override { return s_.iterations; }
  int checkpoint_every() const override { return s_.checkpoint_every; }
  int eval_every() const override { return s_.eval_every; }
  std::vector<std::string> columns() const override {
    return {"iteration",     "wall_seconds",        "task_loss",          "inner_loss",
            "grad_norm",     "pool_model_distance", "pool_real_distance", "data_episodes",
            "model_nll",     "step_ms",             "eval_real_distance", "eval_model_distance"};
  }

  nlohmann::json evaluate() override {
    ensure_model();
    const Params w0 = fresh_policies(pb_.policy, static_cast<uint64_t>(s_.test_seed), kTagTestPolicy, 0,
                                     s_.eval_goals, s_.policy_init_scale);
    const TestCurve c = test_policies(pb_, sim_, {&loss_net_, &phi_}, eval_set_, w0, s_.test_steps, s_.inner_lr,
                                      sim_.env().spec().success_threshold, nullptr);
    last_eval_ = c.real_mean.back();
    return {{"eval_real_distance", c.real_mean.back()}, {"eval_model_distance", c.model_mean.back()}};
  }

  nlohmann::json iterate(int it) override {
    ensure_model();
    const auto t0 = std::chrono::steady_clock::now();
    Params w = clone_params(pool_, true);
    const Rollout r0 = model_rollout(pb_, w, goals_.s0, goals_.g);
    const Tensor lin = learned_loss(loss_net_, phi_, r0, goals_.g, pb_.kin).sum();
    const auto g = torch::autograd::grad({lin}, w, {}, /*retain_graph=*/true, /*create_graph=*/true);
    Params w1;
    for (size_t i = 0; i < w.size(); ++i) w1.push_back(w[i] - s_.inner_lr * g[i]);
    const Rollout r1 = model_rollout(pb_, w1, goals_.s0, goals_.g);
    const Tensor lt = task_loss(r1, goals_.g, pb_.kin).mean();
    // The loss's last bias acts only through the softplus; unused tensors get 0.
    std::vector<Tensor> gphi = torch::autograd::grad({lt}, phi_, {}, c10::nullopt, false, /*allow_unused=*/true);
    for (size_t i = 0; i < gphi.size(); ++i)
      if (!gphi[i].defined()) gphi[i] = torch::zeros_like(phi_[i]);
    const double task = lt.item<double>();
    const double gnorm = clip_grad_norm(gphi, s_.grad_clip);
    Params next;
    for (const auto& t : w1) next.push_back(t.detach().contiguous());
    if (!std::isfinite(task) || !std::isfinite(gnorm) || !all_finite(next))
      throw NonFiniteError(fmt::format("non-finite mbrl meta-step (task loss {}, gradient norm {})", task, gnorm));
    phi_opt_.step(phi_, gphi, s_.outer_lr);
    const double model_dist =
        safe_norm(tip_of(r1.states.select(1, pb_.horizon), pb_.kin) - goals_.g).mean().item<double>();
    pool_ = next;
    nlohmann::json row = {{"iteration", it}, {"task_loss", task}, {"inner_loss", lin.item<double>() / s_.pool_size},
                          {"grad_norm", gnorm}, {"pool_model_distance", model_dist}};
    // Real rollouts of the pool (after its step) join the data; the model is refitted.
    if (s_.data_every > 0 && it % s_.data_every == 0) {
      Episodes fresh;
      const std::vector<double> finals = sim_.run(pb_.policy, pool_, goals_, &fresh);
      append(data_, fresh);
      double sum = 0;
      for (double f : finals) sum += f;
      row["pool_real_distance"] = sum / finals.size();
      if (s_.refit_epochs > 0) {
        const auto [x, y] = transitions(obs_tensor(data_, pb_.horizon), act_tensor(data_, pb_.horizon));
        nll_ = fit_model(pb_.model, model_opt_, x, y, s_.refit_epochs, s_.model_batch, s_.model_lr,
                         mix_seed(mix_seed(seed_, kTagFit), static_cast<uint64_t>(++fits_)));
      }
    }
    // Pool schedule: old policies restart with a new goal and start.
    bool changed = false;
    for (int i = 0; i < s_.pool_size; ++i) {
      if (++ages_[i] < s_.pool_reset_every) continue;
      const Params fresh = fresh_policies(pb_.policy, seed_, kTagPolicy, next_slot_, 1, s_.policy_init_scale);
      for (size_t j = 0; j < pool_.size(); ++j) pool_[j][i].copy_(fresh[j][0]);
      slots_[i] = next_slot_++, ages_[i] = 0, changed = true;
    }
    if (changed) refresh_goals();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    step_ms_.push_back(ms);
    last_task_ = task;
    row["data_episodes"] = data_.count;
    row["model_nll"] = nll_;
    row["step_ms"] = ms;
    return row;
  }

  std::string progress_text(const nlohmann::json& r) const override {
    return fmt::format("task loss {:.3f} | pool model distance {:.3f} | eval MuJoCo distance {:.3f} | {:.0f} ms/it",
                       r["task_loss"].get<double>(), r["pool_model_distance"].get<double>(), last_eval_,
                       r["step_ms"].get<double>());
  }

  void save(Archive& a) const override {
    put_params(a, "phi/", phi_);
    phi_opt_.save(a, "phi_adam/");
    put_params(a, "pool/", pool_);
    std::vector<double> slots(slots_.begin(), slots_.end()), ages(ages_.begin(), ages_.end());
    a.put_f64("slots", slots);
    a.put_f64("ages", ages);
    a.put_f64("counters", {static_cast<double>(next_slot_), static_cast<double>(fits_), last_eval_, nll_,
                           model_ready_ ? 1.0 : 0.0});
    if (!model_ready_) return;
    pb_.model.put(a, "model/");
    model_opt_.save(a, "model_adam/");
    a.meta()["kinematics"] = kinematics_json(pb_.kin);
    a.put("data_obs", "f64", {data_.count, pb_.horizon + 1, kObs}, data_.obs.data(), data_.obs.size() * 8);
    a.put("data_act", "f64", {data_.count, pb_.horizon, kAct}, data_.act.data(), data_.act.size() * 8);
  }

  void load(const Archive& a) override {
    phi_ = get_params(a, "phi/", phi_.size());
    phi_opt_.load(a, "phi_adam/");
    pool_ = get_params(a, "pool/", pool_.size());
    for (auto& p : pool_) p = p.detach();
    const std::vector<double> slots = a.get_f64("slots"), ages = a.get_f64("ages"), c = a.get_f64("counters");
    if (slots.size() != slots_.size() || ages.size() != ages_.size() || c.size() != 5)
      throw Error(a.path() + ": the checkpoint's policy pool does not match mbrl.pool_size");
    for (size_t i = 0; i < slots_.size(); ++i) slots_[i] = static_cast<int64_t>(slots[i]), ages_[i] = static_cast<int>(ages[i]);
    next_slot_ = static_cast<int64_t>(c[0]), fits_ = static_cast<int64_t>(c[1]), last_eval_ = c[2], nll_ = c[3];
    refresh_goals();
    if (c[4] == 0) return;
    pb_.model = DynamicsEnsemble::get(a, "model/");
    model_opt_ = Adam(pb_.model.params(), 1e-8);
    model_opt_.load(a, "model_adam/");
    pb_.kin = kinematics_of(a.meta().value("kinematics", nlohmann::json::object()), a.path());
    const Blob& o = a.get("data_obs");
    const Blob& ac = a.get("data_act");
    data_.count = static_cast<int>(o.shape.at(0));
    data_.obs.resize(o.numel()), data_.act.resize(ac.numel());
    std::memcpy(data_.obs.data(), o.bytes.data(), o.bytes.size());
    std::memcpy(data_.act.data(), ac.bytes.data(), ac.bytes.size());
    model_ready_ = true;
  }

  void write_artifacts(const std::string& run_dir, int it) const override {
    write_loss_file((fs::path(run_dir) / "loss.ml3").string(), loss_net_, phi_,
                    {{"seed", cfg_.get_int("seed")}, {"iterations", it}, {"config", cfg_.to_yaml()}});
    if (model_ready_) pb_.model.save((fs::path(run_dir) / "dynamics.ml3").string(), model_meta(pb_.kin, cfg_));
  }

  nlohmann::json summary(double) override {
    return {{"algorithm", "mbrl"},
            {"seed", cfg_.get_int("seed")},
            {"pool_size", s_.pool_size},
            {"meta_iteration_seconds_median", median(step_ms_) / 1000.0},
            {"final_task_loss", last_task_},
            {"eval_real_distance", last_eval_},
            {"data_episodes", data_.count},
            {"loss_file", (fs::path(run_dir_) / "loss.ml3").string()},
            {"dynamics_file", (fs::path(run_dir_) / "dynamics.ml3").string()}};
  }
  Plot plot() const override {
    return {"mbrl", "meta_curve.png", fmt::format("ML3 model-based reacher meta-training (seed {})", cfg_.get_int("seed"))};
  }

 private:
  // The first iteration fits the model (or loads mbrl.dynamics_file) on babbling data.
  void ensure_model() {
    if (model_ready_) return;
    data_ = sim_.babble(s_.babble_episodes, s_.babble_hold, mix_seed(seed_, kTagBabble));
    if (!s_.dynamics_file.empty()) {
      LoadedModel l = load_model_file(s_.dynamics_file);
      pb_.model = std::move(l.model), pb_.kin = l.kin;
      model_opt_ = Adam(pb_.model.params(), 1e-8);
    } else {
      Fitted f = fit_from_scratch(s_, seed_, data_, pb_.horizon);
      pb_.model = std::move(f.model), model_opt_ = std::move(f.opt), pb_.kin = f.kin, nll_ = f.nll;
    }
    model_ready_ = true;
  }
  void refresh_goals() {
    std::vector<Task> tasks;
    std::vector<uint64_t> seeds;
    for (int64_t k : slots_) {
      tasks.push_back(sample_tasks(sim_.env(), Split::Train, mix_seed(mix_seed(seed_, kTagGoal), k), 1)[0]);
      seeds.push_back(mix_seed(mix_seed(seed_, kTagStart), static_cast<uint64_t>(k)));
    }
    goals_ = sim_.goals(tasks, seeds);
  }

  Config cfg_;
  std::string run_dir_;
  MbrlSection s_;
  uint64_t seed_;
  RealSim sim_;
  Problem pb_;
  FunctionalMlp loss_net_;
  Params phi_, pool_;
  Adam phi_opt_, model_opt_;
  bool model_ready_ = false;
  Episodes data_;
  std::vector<int64_t> slots_;
  std::vector<int> ages_;
  int64_t next_slot_ = 0, fits_ = 0;
  GoalSet goals_, eval_set_;
  double last_eval_ = NAN, nll_ = NAN, last_task_ = NAN;
  std::vector<double> step_ms_;
};

}  // namespace mbrl

using namespace mbrl;


void declare_mbrl(Schema& s) { declare<MbrlSection>(s, "mbrl."); }

void check_mbrl_config(const Config& c, const std::string& source) {
  if (!c.has("mbrl.iterations"))  // another algorithm's config (ml3 dynamics fit / eval)
    throw Error(source + ": the model-based reacher needs a config with algorithm: mbrl (got '" +
                c.get_string("algorithm") + "')");
  if (c.get_string("env.name") != "reacher")
    throw Error(fmt::format("{}: algorithm 'mbrl' runs on env.name=reacher, not '{}'", source, c.get_string("env.name")));
  if (c.get_int("mbrl.holdout_episodes") >= c.get_int("mbrl.babble_episodes"))
    throw Error(source + ": mbrl.holdout_episodes must be smaller than mbrl.babble_episodes");
}

AlgorithmEntry mbrl_algorithm() {
  AlgorithmEntry e;
  e.name = "mbrl";
  e.command = Command::MetaTrain;
  e.description = "ML3's model-based reacher: a learned loss meta-trained through a learned dynamics ensemble";
  e.needs_env = true;
  e.run_defaults = RunSection{0, 1, 1};
  e.declare = [](Schema& s, const std::string&) { declare_mbrl(s); };
  e.check = check_mbrl_config;
  e.define_problem().make = [](const Config& c, const std::string& run_dir, dist::Comm&) -> std::unique_ptr<Algorithm> {
    return std::make_unique<MbrlMetaTrainer>(c, run_dir);
  };
  e.define_problem().meta_test = run_mbrl_meta_test;
  e.define_problem().meta_test_table = mbrl_meta_test_table;
  return e;
}
}  // namespace ml3
