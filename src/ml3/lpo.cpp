// LPO by evolution strategies over whole training lifetimes (the `lpo`
// algorithm of `ml3 meta-train`): PPO's objective plus a learned drift
// (src/policy/drift.h) whose parameters are the mean of an OpenAI-ES search
// (core/es.h). Every generation, each member of the population (antithetic
// pairs around the mean) trains `es.lifetimes` fresh policies from scratch
// with PPO + its drift on the fast backend, each a whole lifetime of
// `lifetime.updates` updates; a member's fitness is the mean over those
// lifetimes of
//     success AUC (the mean success rate of the training batches) +
//     final success (deterministic, lifetime.eval_episodes `train` goals),
// or the same with the mean episode return (es.fitness).
// Every member of a generation sees the same lifetimes (policy seeds, goal
// sets, action noise): common random numbers. On several ranks (ml3 launch)
// the population's lifetimes are spread over them and only fitness values
// are exchanged; each rank regenerates the perturbations from the seed, so
// the mean stays identical everywhere and the run's numbers equal a
// one-process run's. The mean starts with the drift's output layer at zero:
// generation 1 evaluates PPO itself.
// The second objective ES can search (es.objective: ml3_loss) is ML3's own
// loss network M_phi (loss.*), applied by the learned_loss rule (LibTorch:
// the loss's gradient by autograd) with PPO's surrogate as its anchor
// (loss.anchor_weight): its output layer starts at zero, so generation 1
// evaluates the anchored surrogate alone. Its input normalisation is set
// once, from one lifetime of that anchor, and then frozen.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <fmt/format.h>

#include "core/archive.h"
#include "core/error.h"
#include "core/es.h"
#include "core/rng.h"
#include "envs/vec_env.h"
#include "src/compare/report.h"
#include "src/ml3/inner_loop.h"
#include "src/policy/drift.h"
#include "src/policy/sections.h"
#include "src/policy/trainer.h"
#include "src/run/dist.h"
#include "src/run/run.h"

namespace ml3 {
namespace {

namespace fs = std::filesystem;

// es.*: the search.
struct EsSection {
  int generations = 60;
  int population = 16;
  double sigma = 0.1;
  double lr = 0.03;
  double weight_decay = 0.0;
  bool rank_shaping = true;
  int lifetimes = 2;
  int eval_every = 5;
  int checkpoint_every = 5;
  std::string fitness = "success";
  std::string objective = "drift";
  std::string search = "output";
  std::string tasks;
  template <class F>
  void fields(F& f) {
    f("tasks", tasks,
      "environments of one family to meta-train across, comma-separated (e.g. arm7_reach,arm7_push,arm7_pick: "
      "the same observation, action and goal sizes and options); lifetime j of a generation runs task j mod n, "
      "so es.lifetimes must be a multiple of n; each task keeps its own success threshold, the other env.* "
      "values are shared; empty: env.name alone");
    f("objective", objective,
      "what ES searches: drift (a drift added to PPO's clipped surrogate, drift.*; lifetimes on the fast "
      "backend) or ml3_loss (ML3's loss network, loss.*, anchored to PPO's surrogate by loss.anchor_weight and "
      "applied by the learned_loss rule, learned_loss.*; LibTorch lifetimes)",
      Choices{{"drift", "ml3_loss"}});
    f("search", search,
      "which parameters of the objective's network ES searches: output (the output layer over fixed random "
      "tanh features of the hidden layers, seeded: far fewer dimensions) or all",
      Choices{{"output", "all"}});
    f("fitness", fitness,
      "success: success AUC of the training batches + final success on train goals; return: the same with "
      "the mean episode return (denser where early success is rare)",
      Choices{{"success", "return"}});
    f("generations", generations, "ES generations (the run's iterations)", Bounds::in(1, 1000000));
    f("population", population, "members per generation, an even number (antithetic pairs)", Bounds::in(2, 100000));
    f("sigma", sigma, "perturbation scale of the drift's parameters", Bounds::in(0.0, 100.0, true));
    f("lr", lr, "Adam learning rate of the mean (ascent on the ES gradient estimate)", Bounds::in(0.0, 100.0, true));
    f("weight_decay", weight_decay, "L2 pull of the mean toward 0 (0: off)", Bounds::at_least(0.0));
    f("rank_shaping", rank_shaping, "centred ranks of the fitness instead of the raw values");
    f("lifetimes", lifetimes,
      "lifetimes (policy seed + goal sets) per member per generation, the same for every member",
      Bounds::in(1, 10000));
    f("eval_every", eval_every,
      "generations between evaluations of the mean's drift on the generation's lifetimes (also the first "
      "generation, which evaluates PPO, and the last)",
      Bounds::in(1, 1000000));
    f("checkpoint_every", checkpoint_every, "generations between checkpoints", Bounds::in(1, 1000000));
  }
};

// lifetime.*: one training run of a member.
struct LifetimeSection {
  int updates = 60;
  int episodes_per_update = 32;
  int eval_episodes = 50;
  template <class F>
  void fields(F& f) {
    f("updates", updates, "PPO updates of one lifetime (from a fresh policy)", Bounds::in(1, 1000000));
    f("episodes_per_update", episodes_per_update, "episodes collected per update", Bounds::in(1, 100000));
    f("eval_episodes", eval_episodes, "deterministic episodes on train goals for the final success",
      Bounds::in(1, 100000));
  }
};

// drift.*: the learned objective's network.
struct DriftSection {
  std::vector<int> hidden{16};
  bool nonnegative = true;
  template <class F>
  void fields(F& f) {
    f("hidden", hidden, "hidden layer sizes of the drift network (tanh)");
    f("nonnegative", nonnegative, "max(0, drift): a valid mirror-learning drift (false: signed)");
  }
};

struct LifetimeResult {
  double fitness = 0, auc = 0, final_success = 0, env_steps = 0;
  bool diverged = false;
};

// The configs of the lifetimes' tasks: c itself, or one per es.tasks entry
// (env.name and that environment's own success threshold; everything else
// shared). Checked here, before any lifetime: names, options, sizes, and
// es.lifetimes a multiple of the task count.
std::vector<Config> family_configs(const Config& c, const std::string& source) {
  const EsSection es = read<EsSection>(c, "es.");
  if (es.tasks.empty()) return {c};
  std::vector<Config> out;
  std::vector<std::string> names;
  std::stringstream ss(es.tasks);
  for (std::string t; std::getline(ss, t, ',');) {
    t.erase(0, t.find_first_not_of(" "));
    t.erase(t.find_last_not_of(" ") + 1);
    if (!t.empty()) names.push_back(t);
  }
  const std::string key = source + ": key 'es.tasks'";
  if (names.empty()) throw Error(key + ": expected environment names separated by commas, got '" + es.tasks + "'");
  if (es.lifetimes % static_cast<int>(names.size()) != 0)
    throw Error(fmt::format("{}: key 'es.lifetimes' ({}) must be a multiple of the {} tasks of es.tasks, so "
                            "that every task gets the same number of lifetimes",
                            source, es.lifetimes, names.size()));
  const Schema& base = find_env(c.get_string("env.name")).schema;
  EnvSpec first;
  for (const std::string& name : names) {
    const EnvEntry* e = nullptr;
    for (const auto& r : env_registry())
      if (r.name == name) e = &r;
    if (!e) throw Error(fmt::format("{}: unknown environment '{}'", key, name));
    bool same_keys = e->schema.params().size() == base.params().size();
    for (const auto& p : base.params()) same_keys = same_keys && e->schema.find(p.key) != nullptr;
    if (!same_keys)
      throw Error(fmt::format("{}: '{}' has other env options than env.name '{}'; a family shares them",
                              key, name, c.get_string("env.name")));
    Config t = c;
    t.set("env.name", name, "es.tasks");
    t.set("env.success_threshold", e->schema.find("success_threshold")->default_value, "es.tasks");
    const EnvSpec spec = VecEnv(name, t.subset("env."), 1, 1).spec();
    if (out.empty()) first = spec;
    else if (spec.obs_dim != first.obs_dim || spec.act_dim != first.act_dim || spec.goal_dim != first.goal_dim)
      throw Error(fmt::format("{}: '{}' has {} observations, {} actions, {} goal values; '{}' has {}, {}, {}: a "
                              "family's tasks must have the same sizes",
                              key, name, spec.obs_dim, spec.act_dim, spec.goal_dim, names[0], first.obs_dim,
                              first.act_dim, first.goal_dim));
    out.push_back(std::move(t));
  }
  return out;
}

class LpoEsTrainer : public Algorithm {
 public:
  LpoEsTrainer(const Config& c, const std::string& run_dir, dist::Comm& comm)
      : c_(c),
        run_dir_(run_dir),
        comm_(comm),
        es_cfg_(read<EsSection>(c, "es.")),
        life_(read<LifetimeSection>(c, "lifetime.")),
        drift_cfg_(read<DriftSection>(c, "drift.")),
        env_name_(c.get_string("env.name")),
        seed_(static_cast<uint64_t>(c.get_int("seed"))),
        ml3_(es_cfg_.objective == "ml3_loss"),
        rule_(&find_algorithm(ml3_ ? "learned_loss" : "ppo")),
        drift_(drift_cfg_.hidden, drift_cfg_.nonnegative),
        loss_(ml3_ ? make_loss(c) : LearnedLoss()),
        phi0_(ml3_ ? loss_.init(mix_seed(seed_, 1)) : Params()),
        zero_(initial()),
        es_(searched(zero_), settings()),
        task_configs_(family_configs(c, "config")) {
    if (ml3_) set_compute_threads(static_cast<int>(c.get_int("torch_threads")));
  }

  std::string label() const override {
    return "meta-train " + family_name() + " lpo (ES, " + es_cfg_.objective + ")";
  }
  int iterations() const override { return es_cfg_.generations; }
  int checkpoint_every() const override { return es_cfg_.checkpoint_every; }
  bool spreads_over_ranks() const override { return true; }
  std::vector<std::string> columns() const override {
    return {"iteration",         "wall_seconds",     "seconds",           "fitness_mean",     "fitness_max",
            "fitness_min",       "auc_mean",         "final_mean",        "diverged",         "step_norm",
            "mean_norm",         "eval_center_fitness", "eval_center_auc", "eval_center_final", "eval_ppo_fitness",
            "eval_ppo_auc",      "eval_ppo_final",   "comm_seconds",      "wait_seconds"};
  }

  nlohmann::json iterate(int gen) override {
    const auto t0 = Clock::now();
    comm_.set_step(gen);
    comm_.take_comm_seconds(), comm_.take_wait_seconds();
    // An ML3 loss's input normalisation: once, from one lifetime of the
    // anchor (the loss at zero output), the same on every rank; then frozen.
    // (A resumed run has it from the checkpoint.)
    if (ml3_ && loss_.stats_count() == 0) {
      LearnedLoss stats = loss_;
      const LifetimeResult r = lifetime(zero_, 0, 0, &stats);
      if (r.diverged) throw NonFiniteError("the anchor's lifetime that sets the loss's normalisation diverged");
      loss_ = stats;
      env_steps_ += r.env_steps;
    }
    const int pop = es_cfg_.population, L = es_cfg_.lifetimes;
    const bool eval_center = gen == 1 || gen % es_cfg_.eval_every == 0 || gen == es_cfg_.generations;
    // Evaluation generations add L lifetimes of the mean and L of PPO (the
    // drift at zero) on the same seeds: the paired measure of what the drift adds.
    const int jobs = pop * L + (eval_center ? 2 * L : 0);
    // One row of kCols numbers per job; each rank fills its own jobs' rows,
    // and one all-reduce (sum; the other ranks' rows are 0, so the sum is
    // exact) gives every rank all of them: the only exchange of a generation.
    constexpr int kCols = 5;
    at::Tensor table = at::zeros({jobs, kCols}, at::kDouble);
    double* tp = table.data_ptr<double>();
    for (int k = 0; k < jobs; ++k) {
      if (comm_.owner(0, k) != comm_.rank()) continue;
      const int member = k < pop * L ? k / L : k < pop * L + L ? -1 : -2;  // -1: the mean, -2: PPO
      const LifetimeResult r =
          lifetime(member == -1 ? full(es_.mean()) : member == -2 ? zero_ : full(es_.member(member)), gen,
                   k % L);
      const double row[kCols] = {r.fitness, r.auc, r.final_success, r.env_steps, r.diverged ? 1.0 : 0.0};
      std::copy(row, row + kCols, tp + static_cast<ptrdiff_t>(k) * kCols);
    }
    if (comm_.distributed()) {
      comm_.sync("lifetimes");
      comm_.allreduce_sum(table, "fitness");
      tp = table.data_ptr<double>();
    }
    std::vector<std::vector<double>> rows(static_cast<size_t>(jobs));
    for (int k = 0; k < jobs; ++k) rows[k].assign(tp + static_cast<ptrdiff_t>(k) * kCols, tp + (k + 1) * kCols);
    std::vector<double> fitness(pop, 0.0);
    double auc = 0, fin = 0, diverged = 0, steps = 0;
    for (int k = 0; k < pop * L; ++k) {
      fitness[k / L] += rows[k].at(0) / L;
      auc += rows[k].at(1) / (pop * L), fin += rows[k].at(2) / (pop * L);
      steps += rows[k].at(3), diverged += rows[k].at(4);
    }
    nlohmann::json row;
    if (eval_center) {
      for (const char* who : {"center", "ppo"}) {
        const int first = pop * L + (std::string(who) == "ppo" ? L : 0);
        double f = 0, a = 0, s = 0;
        for (int k = first; k < first + L; ++k) {
          f += rows[k].at(0) / L, a += rows[k].at(1) / L, s += rows[k].at(2) / L;
          steps += rows[k].at(3);
        }
        const std::string p = std::string("eval_") + who + "_";
        row[p + "fitness"] = f, row[p + "auc"] = a, row[p + "final"] = s;
      }
    }
    const std::vector<double> before = es_.mean();
    es_.step(fitness);
    double step_sq = 0, mean_sq = 0;
    for (size_t i = 0; i < before.size(); ++i) {
      step_sq += (es_.mean()[i] - before[i]) * (es_.mean()[i] - before[i]);
      mean_sq += es_.mean()[i] * es_.mean()[i];
    }
    env_steps_ += steps;
    const double secs = since(t0);
    meta_seconds_ += secs;
    step_seconds_.push_back(secs);
    row["iteration"] = gen;
    row["seconds"] = secs;
    row["fitness_mean"] = mean_of(fitness);
    row["fitness_max"] = *std::max_element(fitness.begin(), fitness.end());
    row["fitness_min"] = *std::min_element(fitness.begin(), fitness.end());
    row["auc_mean"] = auc;
    row["final_mean"] = fin;
    row["diverged"] = diverged;
    row["step_norm"] = std::sqrt(step_sq);
    row["mean_norm"] = std::sqrt(mean_sq);
    row["comm_seconds"] = comm_.take_comm_seconds();
    row["wait_seconds"] = comm_.take_wait_seconds();
    return row;
  }

  std::string progress_text(const nlohmann::json& r) const override {
    std::string center;
    if (r.contains("eval_center_fitness"))
      center = fmt::format(" | mean's {} {:.3f} vs {} {:.3f}", ml3_ ? "loss" : "drift",
                           r["eval_center_fitness"].get<double>(), ml3_ ? "its anchor" : "PPO",
                           r["eval_ppo_fitness"].get<double>());
    return fmt::format("fitness mean {:.3f} max {:.3f}{} | {:.1f} s/gen", r["fitness_mean"].get<double>(),
                       r["fitness_max"].get<double>(), center, r["seconds"].get<double>());
  }

  void save(Archive& a) const override {
    es_.save(a, "es/");
    if (ml3_) loss_.put(a, "loss/", phi_of(full(es_.mean())));  // with its frozen normalisation
    a.meta()["meta_training_seconds"] = meta_seconds_;
    a.meta()["meta_training_env_steps"] = env_steps_;
  }
  void load(const Archive& a) override {
    es_.load(a, "es/");
    if (ml3_) {
      Params phi;
      loss_ = LearnedLoss::get(a, "loss/", &phi);
    }
    meta_seconds_ = a.meta().value("meta_training_seconds", 0.0);
    env_steps_ = a.meta().value("meta_training_env_steps", 0.0);
  }

  void write_artifacts(const std::string& run_dir, int gen) const override {
    nlohmann::json meta = {
            {"env", env_name_},
            {"tasks", es_cfg_.tasks},
            {"algorithm", "lpo"},
            {"objective", es_cfg_.objective},
            {"meta_iteration", gen},
            {"seed", seed_},
            {"run", run_dir},
            {"es", {{"population", es_cfg_.population}, {"sigma", es_cfg_.sigma}, {"lr", es_cfg_.lr},
                    {"lifetimes", es_cfg_.lifetimes}}},
            {"lifetime", {{"updates", life_.updates}, {"episodes_per_update", life_.episodes_per_update},
                          {"policy_hidden", c_.get_int_list("policy.hidden")}}},
            {"fitness", es_cfg_.fitness == "return"
                            ? "return AUC of the training batches + final return on train goals"
                            : "success AUC of the training batches + final success on train goals"},
            {"meta_training_seconds", meta_seconds_},
            {"meta_training_env_steps", env_steps_}};
    const std::string path = artifact(run_dir);
    if (ml3_) {
      // What ml3 train --loss and compare check against learned_loss.*.
      const auto ll = c_.subset("learned_loss.");
      meta["inner_optimizer"] = ll.get_string("optimizer");
      meta["steps_per_batch"] = ll.get_int("steps");
      meta["inner_lr"] = ll.values().at("lr");
      meta["shaped"] = false;
      loss_.save(path, phi_of(full(es_.mean())), meta);
      return;
    }
    Drift d = drift_;
    d.set_params(full(es_.mean()));
    d.save(path, meta);
  }

  nlohmann::json summary(double) override {
    return {{"env", env_name_},
            {"tasks", es_cfg_.tasks},
            {"algorithm", "lpo"},
            {"seed", seed_},
            {"population", es_cfg_.population},
            {"lifetimes", es_cfg_.lifetimes},
            {"lifetime_updates", life_.updates},
            {"generation_seconds_median", median(step_seconds_)},
            {"meta_training_env_steps", env_steps_},
            {ml3_ ? "loss_file" : "drift_file", artifact(run_dir_)}};
  }
  Plot plot() const override {
    return {"es", "meta_curve.png",
            fmt::format("{} by ES on {} (seed {})", ml3_ ? "ML3 loss" : "LPO drift", family_name(), seed_)};
  }

 private:
  std::string artifact(const std::string& run_dir) const {
    return (fs::path(run_dir) / (ml3_ ? "lpo.ml3" : "lpo.drift")).string();
  }
  std::string family_name() const {
    return es_cfg_.tasks.empty() ? env_name_ : "{" + es_cfg_.tasks + "}";
  }
  static LearnedLoss make_loss(const Config& c) {
    const VecEnv env(c.get_string("env.name"), c.subset("env."), 1, 1);
    return LearnedLoss(loss_spec(read<LossSection>(c, "loss."), env.spec()));
  }
  // The initial mean, flat: a drift's parameters, or the loss's phi, with
  // the output layer at zero (PPO; the anchored surrogate alone).
  std::vector<double> initial() const {
    if (!ml3_) return drift_.init(mix_seed(seed_, 1));
    std::vector<double> theta;
    for (const Tensor& t : phi0_) {
      const Tensor d = t.detach().to(torch::kFloat64).contiguous();
      theta.insert(theta.end(), d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
    }
    std::fill(theta.end() - static_cast<ptrdiff_t>(output_count()), theta.end(), 0.0);
    return theta;
  }
  // phi (the loss's tensors, their dtype) from a flat vector.
  Params phi_of(const std::vector<double>& theta) const {
    Params phi;
    size_t off = 0;
    for (const Tensor& t : phi0_) {
      std::vector<double> part(theta.begin() + static_cast<ptrdiff_t>(off),
                               theta.begin() + static_cast<ptrdiff_t>(off + t.numel()));
      phi.push_back(torch::tensor(part, torch::kFloat64).reshape(t.sizes()).to(t.scalar_type()));
      off += static_cast<size_t>(t.numel());
    }
    return phi;
  }
  // The output layer's parameters (last hidden size + 1, a scalar output):
  // the tail of the flat vector for both objectives.
  size_t output_count() const {
    const int last_hidden = ml3_ ? loss_.spec().hidden.back() : drift_.sizes().rbegin()[1];
    return static_cast<size_t>(last_hidden) + 1;
  }
  // The searched part of the parameters (es.search), and the whole parameter
  // vector for a searched part (the rest as initialised).
  size_t searched_count() const { return es_cfg_.search == "output" ? output_count() : zero_.size(); }
  std::vector<double> searched(const std::vector<double>& theta) const {
    return std::vector<double>(theta.end() - static_cast<ptrdiff_t>(searched_count()), theta.end());
  }
  std::vector<double> full(const std::vector<double>& part) const {
    std::vector<double> theta = zero_;
    std::copy(part.begin(), part.end(), theta.end() - static_cast<ptrdiff_t>(part.size()));
    return theta;
  }

  EsSettings settings() const {
    EsSettings s;
    s.population = es_cfg_.population;
    s.sigma = es_cfg_.sigma;
    s.lr = es_cfg_.lr;
    s.weight_decay = es_cfg_.weight_decay;
    s.rank_shaping = es_cfg_.rank_shaping;
    s.seed = mix_seed(seed_, 2);
    return s;
  }

  // A whole lifetime from a fresh policy with the objective `theta` (PPO +
  // that drift, or that ML3 loss): lifetime j of generation `gen` (its seeds
  // are the same for every member). `stats_into`: an ML3 loss whose
  // normalisation absorbs the lifetime's features.
  LifetimeResult lifetime(const std::vector<double>& theta, int gen, int j, LearnedLoss* stats_into = nullptr) {
    PolicyRunPlan plan;
    plan.train_split = plan.eval_split = Split::Train;
    plan.seed = mix_seed(mix_seed(seed_, 1000 + static_cast<uint64_t>(gen)), static_cast<uint64_t>(j));
    plan.iterations = life_.updates;
    plan.episodes = life_.episodes_per_update;
    plan.eval_every = 0;
    plan.eval_episodes = life_.eval_episodes;
    plan.eval_seed = mix_seed(plan.seed, 7);
    PolicyTrainer t(task_configs_[static_cast<size_t>(j) % task_configs_.size()], *rule_, "", plan);
    if (ml3_) {
      t.rule().set_learned_loss(loss_, phi_of(theta), stats_into);
    } else {
      Drift d = drift_;
      d.set_params(theta);
      t.rule().set_drift(d);
    }
    LifetimeResult r;
    try {
      const bool by_return = es_cfg_.fitness == "return";
      double ret_auc = 0;
      for (int u = 1; u <= life_.updates; ++u) {
        const nlohmann::json row = t.iterate(u);
        r.auc += row.at("success_rate").get<double>() / life_.updates;
        ret_auc += row.at("return_mean").get<double>() / life_.updates;
      }
      const EvalResult ev = t.evaluate_policy();
      r.final_success = ev.success_rate;
      r.fitness = by_return ? ret_auc + ev.return_mean : r.auc + r.final_success;
    } catch (const NonFiniteError&) {
      r = LifetimeResult{};  // a drift that makes training diverge has the lowest fitness
      r.fitness = -1e9;
      r.diverged = true;
    }
    r.env_steps = static_cast<double>(t.env_steps()) + static_cast<double>(life_.eval_episodes) * t.spec().episode_steps;
    return r;
  }


  Config c_;
  std::string run_dir_;
  dist::Comm& comm_;
  EsSection es_cfg_;
  LifetimeSection life_;
  DriftSection drift_cfg_;
  std::string env_name_;
  uint64_t seed_;
  bool ml3_;                   // es.objective: ml3_loss
  const AlgorithmEntry* rule_;  // ppo (a drift) or learned_loss (an ML3 loss)
  Drift drift_;  // the architecture; parameters set per lifetime
  LearnedLoss loss_;  // the ML3 loss's architecture and frozen normalisation
  Params phi0_;       // its initialisation (shapes, dtypes, the fixed hidden layers)
  std::vector<double> zero_;  // the initial mean: output layer zero, i.e. PPO or the anchor alone
  OpenAiEs es_;
  std::vector<Config> task_configs_;  // lifetime j runs task_configs_[j % size]
  double meta_seconds_ = 0, env_steps_ = 0;
  std::vector<double> step_seconds_;
};

void declare_lpo(Schema& s, const std::string&) {
  declare<PolicySection>(s, "policy.", PolicySection{{32, 32}, "tanh", -0.5, -5.0, 1.0, true});
  declare<ValueSection>(s, "value.");
  declare<OptimSection>(s, "optim.");
  declare<PgSection>(s, "pg.");
  declare<PpoSection>(s, "ppo.");
  declare<LifetimeSection>(s, "lifetime.");
  declare<EsSection>(s, "es.");
  declare<DriftSection>(s, "drift.");
  declare<LossSection>(s, "loss.", LossSection{"all", {32, 32}, "tanh", 0.01, 50, false, {64, 64}, 1.0, 0, 1.0, 0.2});
  find_algorithm("learned_loss").declare(s, "");
}

void check_lpo(const Config& c, const std::string& source) {
  if (!c.get_string("ppo.drift").empty())
    throw Error(source + ": key 'ppo.drift': lpo meta-trains the drift; leave it empty");
  if (c.get_string("es.objective") == "drift" && c.get_string("pg.backend") != "fast")
    throw Error(source + ": key 'pg.backend': lpo's lifetimes run on the fast backend; set it to fast");
  if (c.get_string("es.objective") == "ml3_loss") {
    if (c.get_bool("policy.obs_norm"))
      throw Error(source + ": key 'policy.obs_norm': an ML3 loss trains policies on raw observations; set it to "
                  "false");
    if (c.get_bool("loss.target"))
      throw Error(source + ": key 'loss.target': es.objective ml3_loss searches the loss network alone; set it "
                  "to false");
    if (!c.get_string("learned_loss.file").empty())
      throw Error(source + ": key 'learned_loss.file': lpo meta-trains the loss; leave it empty");
  }
  if (c.get_int("es.population") % 2 != 0)
    throw Error(source + ": key 'es.population': must be even (antithetic pairs), got " +
                std::to_string(c.get_int("es.population")));
  family_configs(c, source);  // es.tasks: names, options, sizes, es.lifetimes
}

}  // namespace

AlgorithmEntry lpo_algorithm() {
  AlgorithmEntry e;
  e.name = "lpo";
  e.command = Command::MetaTrain;
  e.description =
      "LPO: a drift added to PPO's objective, meta-trained by evolution strategies over whole training "
      "lifetimes (Lu et al. 2022); writes lpo.drift for ppo.drift (or, es.objective ml3_loss, ML3's loss network: "
      "lpo.ml3 for learned_loss.file)";
  e.declare = declare_lpo;
  e.check = check_lpo;
  e.define_problem().make = [](const Config& c, const std::string& run_dir,
                               dist::Comm& comm) -> std::unique_ptr<Algorithm> {
    return std::make_unique<LpoEsTrainer>(c, run_dir, comm);
  };
  return e;
}

}  // namespace ml3
