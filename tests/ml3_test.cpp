// ML3 for policies: outer-gradient correctness (finite differences, double),
// learned-loss files, and meta-train / meta-test end to end (tiny, seconds).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <map>
#include <set>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "deploy/export.h"
#include "deploy/rig.h"
#include "envs/demos.h"
#include "src/run/algorithm.h"
#include "src/compare/compare.h"
#include "src/compare/report.h"
#include "src/compare/meta_test.h"
#include "src/ml3/inner_loop.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using test::error_of;

// The library calls behind `ml3 meta-train` and `ml3 meta-test`.
std::string meta_train(RunArgs a) {
  a.command = Command::MetaTrain;
  return run(a).summary;
}
struct MetaTestArgs {
  std::string loss_file, config_path;
  std::vector<std::string> overrides;
  std::string split = "test", out_dir;
  bool force = false, quiet = false;
};
std::string run_meta_test(const MetaTestArgs& t) {
  const Config c = load_config(Command::MetaTrain, t.config_path, t.overrides);
  return entry_of(c).problem().meta_test(t.loss_file, c, t.split, t.out_dir, t.force, t.quiet);
}

Batch to_double(Batch b) {
  for (Tensor* t : {&b.obs, &b.raw_obs, &b.actions, &b.logp, &b.rewards, &b.terminated, &b.truncated, &b.mask,
                    &b.trunc_obs, &b.goals, &b.time_frac, &b.rtg})
    if (t->defined()) *t = t->to(torch::kFloat64);
  return b;
}

struct GradFixture {
  LearnedLoss loss;
  Params phi, theta;
  GaussianPolicy policy;
  Batch b1, b2;
  double alpha = 0.3;

  GradFixture() {
    Config opts(find_env("pointmass").schema);
    opts.apply_overrides({"episode_steps=8"});
    VecEnv venv("pointmass", opts, 4, 1);
    PolicyConfig pc;
    pc.hidden = {5};
    policy = GaussianPolicy(venv.spec().obs_dim, venv.spec().act_dim, pc);
    theta = policy.init(3, true);
    LearnedLossSpec ls;
    ls.features = loss_feature_names();
    ls.hidden = {6};
    ls.obs_dim = venv.spec().obs_dim, ls.act_dim = venv.spec().act_dim, ls.goal_dim = venv.spec().goal_dim;
    loss = LearnedLoss(ls);
    phi = loss.init(4, true);
    const ObsNormalizer raw(venv.spec().obs_dim, false);
    const auto tasks = sample_tasks(venv.env(0), Split::Train, 0, 4);
    const Params theta32 = clone_params(theta, false);
    Params t32;
    for (const auto& t : theta32) t32.push_back(t.to(torch::kFloat32));
    b1 = collect(venv, policy, t32, raw, tasks, 1, false);
    b2 = collect(venv, policy, t32, raw, tasks, 2, false);
    compute_rtg(b1, 0.99);
    compute_rtg(b2, 0.99);
    b1 = to_double(b1), b2 = to_double(b2);
    torch::NoGradGuard ng;
    const Minibatch mb = flatten_batch(b1);
    loss.update_stats(loss_inputs(mb, policy_eval(policy, theta, mb)));
  }

  // L_T(theta_K(phi)) with K inner steps on b1 (fixed data), task loss on b2;
  // with `adam` set, K steps of the inner Adam instead of SGD.
  Tensor outer(const Params& p, int K) const {
    Params th = theta;
    if (adam) {
      InnerState state;
      return task_loss(policy, inner_update(loss, p, policy, th, flatten_batch(b1), *adam, &state, true), b2);
    }
    for (int k = 0; k < K; ++k) th = inner_step(loss, p, policy, th, flatten_batch(b1), alpha, true);
    return task_loss(policy, th, b2);
  }
  const InnerOptimizer* adam = nullptr;
};

double fd_relative_error(const GradFixture& f, int K) {
  Params phi = clone_params(f.phi, true);
  const auto g = torch::autograd::grad({f.outer(phi, K)}, phi);
  double num = 0, den = 0;
  const double eps = 1e-6;
  for (size_t i = 0; i < phi.size(); ++i) {
    auto flat = phi[i].detach().view({-1});
    for (int64_t j = 0; j < flat.numel(); ++j) {
      const double orig = flat[j].item<double>();
      Params p = clone_params(phi, true);
      p[i].detach().view({-1})[j] = orig + eps;
      const double up = f.outer(p, K).item<double>();
      p[i].detach().view({-1})[j] = orig - eps;
      const double down = f.outer(p, K).item<double>();
      const double fd = (up - down) / (2 * eps);
      const double ad = g[i].view({-1})[j].item<double>();
      num += (fd - ad) * (fd - ad), den += fd * fd;
    }
  }
  return std::sqrt(num / den);
}

TEST(Ml3Gradient, OuterGradientMatchesFiniteDifferences) {
  GradFixture f;
  EXPECT_LE(fd_relative_error(f, 1), 1e-6);
  EXPECT_LE(fd_relative_error(f, 2), 1e-6);
}

// Meta-training through several differentiable Adam steps per batch.
TEST(Ml3Gradient, OuterGradientThroughInnerAdamMatchesFiniteDifferences) {
  GradFixture f;
  InnerOptimizer opt;
  opt.adam = true, opt.lr = 0.05, opt.steps = 3, opt.eps = 1e-3;
  f.adam = &opt;
  EXPECT_LE(fd_relative_error(f, 3), 1e-5);
  // One SGD step through inner_update is exactly the paper's inner step.
  InnerOptimizer sgd;
  sgd.lr = f.alpha;
  InnerState none;
  const Params a = inner_update(f.loss, f.phi, f.policy, f.theta, flatten_batch(f.b1), sgd, &none, false);
  const Params b = inner_step(f.loss, f.phi, f.policy, f.theta, flatten_batch(f.b1), f.alpha, false);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i]));
}

TEST(Ml3Gradient, LearnedLossDependsOnThePolicyOnlyThroughItsOutputs) {
  GradFixture f;
  EXPECT_THROW(parse_loss_features("obs,goal,reward"), Error);
  // With features that include policy_mean, the inner gradient is non-zero.
  Params theta = clone_params(f.theta, true);
  const Params th1 = inner_step(f.loss, f.phi, f.policy, theta, flatten_batch(f.b1), f.alpha, false);
  double moved = 0;
  for (size_t i = 0; i < theta.size(); ++i) moved += (th1[i] - theta[i]).abs().sum().item<double>();
  EXPECT_GT(moved, 0.0);
}

TEST(Ml3Gradient, FeaturesWithoutLogProbLeaveTheLogStdAlone) {
  // Regression: autograd refused the unused log-std when log_prob was not a feature.
  GradFixture f;
  LearnedLossSpec ls = f.loss.spec();
  ls.features = parse_loss_features("obs,goal,policy_mean");
  const LearnedLoss loss(ls);
  const Params phi = loss.init(1, true);
  Params theta = clone_params(f.theta, true);
  const Params th1 = inner_step(loss, phi, f.policy, theta, flatten_batch(f.b1), f.alpha, true);
  EXPECT_TRUE(torch::equal(th1.back(), theta.back()));
  EXPECT_FALSE(torch::equal(th1.front(), theta.front()));
  const auto g = torch::autograd::grad({task_loss(f.policy, th1, f.b2)}, phi);
  EXPECT_GT(g[0].abs().sum().item<double>(), 0.0);
}

// The structured target term: starts at zero output, round-trips through the
// loss file, and its parameters get an outer gradient through the inner step.
TEST(LearnedLossFile, TargetTermRoundTripsAndIsMetaTrainable) {
  GradFixture f;
  LearnedLossSpec ls = f.loss.spec();
  ls.target_hidden = {7};
  ls.target_weight = 2.0;
  const LearnedLoss loss(ls);
  const Params phi = loss.init(5, true);
  ASSERT_EQ(phi.size(), f.loss.init(5, true).size() + 4);
  const Minibatch mb = flatten_batch(f.b1);
  EXPECT_EQ(loss.target(mb.raw_obs.to(torch::kFloat64), phi).abs().sum().item<double>(), 0.0);
  const auto dir = test::temp_dir("targetloss");
  loss.save((dir / "t.ml3").string(), phi, {});
  Params back;
  const LearnedLoss l2 = LearnedLoss::load((dir / "t.ml3").string(), &back);
  EXPECT_TRUE(l2.has_target());
  EXPECT_EQ(l2.spec().target_weight, 2.0);
  const auto in = loss_inputs(mb, policy_eval(f.policy, f.theta, mb));
  EXPECT_EQ(loss.loss(in, phi).item<double>(), l2.loss(in, back).item<double>());
  Params p = clone_params(phi, true);
  const Params th1 = inner_step(loss, p, f.policy, clone_params(f.theta, true), mb, f.alpha, true);
  const auto g = torch::autograd::grad({task_loss(f.policy, th1, f.b2)}, loss.target_params(p));
  double total = 0;
  for (const auto& t : g) total += t.abs().sum().item<double>();
  EXPECT_GT(total, 0.0);
  fs::remove_all(dir);
}

// An anchored loss is the learned network plus anchor_weight times PPO's
// clipped surrogate (the same formula as the PPO learner's, here on
// REINFORCE advantages), in value and in its gradient for the policy; the
// anchor survives the loss file; meta-training reaches the network through it.
TEST(LearnedLossFile, AnchorAddsPposClippedSurrogateAndRoundTrips) {
  GradFixture f;
  LearnedLossSpec plain_spec = f.loss.spec(), anchored_spec = plain_spec;
  anchored_spec.anchor_weight = 0.7;
  anchored_spec.anchor_clip = 0.1;
  const LearnedLoss plain(plain_spec), anchored(anchored_spec);
  const Params phi = plain.init(5, true);
  Batch b = f.b1;
  compute_reinforce_advantages(b);
  const Minibatch mb = flatten_batch(b);
  ASSERT_TRUE(mb.advantages.defined());
  EXPECT_NEAR(mb.advantages.mean().item<double>(), 0.0, 1e-6);
  // A policy moved away from the one that sampled the batch: ratios off 1, some clipped.
  Params theta = clone_params(f.theta, false);
  {
    torch::NoGradGuard ng;
    for (auto& t : theta) t.add_(torch::randn_like(t) * 0.5);
  }
  for (auto& t : theta) t.requires_grad_(true);
  const PolicyEval ev = policy_eval(f.policy, theta, mb);
  const Tensor a = anchored.loss(loss_inputs(mb, ev), phi), p = plain.loss(loss_inputs(mb, ev), phi);
  LossStats stats;
  const Tensor ppo = PpoObjective(0.1).policy_loss(mb, ev, &stats);
  EXPECT_GT(stats.clip_fraction, 0.0);
  EXPECT_NEAR(a.item<double>(), p.item<double>() + 0.7 * ppo.item<double>(), 1e-12);
  const auto ga = torch::autograd::grad({a}, theta, {}, true, false, true);
  const auto gp = torch::autograd::grad({p}, theta, {}, true, false, true);
  const auto gppo = torch::autograd::grad({ppo}, theta, {}, false, false, true);
  for (size_t i = 0; i < theta.size(); ++i)
    EXPECT_LT((ga[i] - gp[i] - 0.7 * gppo[i]).abs().max().item<double>(), 1e-10) << i;
  // Without advantages (a batch not prepared for it), one clear internal error.
  EXPECT_THROW(anchored.loss(loss_inputs(flatten_batch(f.b1), ev), phi), Error);
  const auto dir = test::temp_dir("anchorloss");
  anchored.save((dir / "a.ml3").string(), phi, {});
  Params back;
  const LearnedLoss l2 = LearnedLoss::load((dir / "a.ml3").string(), &back);
  EXPECT_EQ(l2.spec().anchor_weight, 0.7);
  EXPECT_EQ(l2.spec().anchor_clip, 0.1);
  EXPECT_EQ(l2.loss(loss_inputs(mb, ev), back).item<double>(), a.item<double>());
  fs::remove_all(dir);
}

TEST(LearnedLossFile, RoundTripIsBitExactAndCorruptionIsRejected) {
  GradFixture f;
  const auto dir = test::temp_dir("lossfile");
  const std::string path = (dir / "loss.ml3").string();
  f.loss.save(path, f.phi, {{"env", "pointmass"}});
  Params phi2;
  nlohmann::json meta;
  const LearnedLoss l2 = LearnedLoss::load(path, &phi2, &meta);
  EXPECT_EQ(meta["env"], "pointmass");
  for (size_t i = 0; i < phi2.size(); ++i) EXPECT_TRUE(torch::equal(f.phi[i], phi2[i]));
  const Minibatch mb = flatten_batch(f.b1);
  const auto in = loss_inputs(mb, policy_eval(f.policy, f.theta, mb));
  EXPECT_EQ(f.loss.loss(in, f.phi).item<double>(), l2.loss(in, phi2).item<double>());
  std::string bytes = test::read_text(path);
  bytes[bytes.size() / 3] ^= 1;
  test::write_file(dir / "bad.ml3", bytes);
  EXPECT_NE(error_of([&] { LearnedLoss::load((dir / "bad.ml3").string(), nullptr); }).find("checksum mismatch"),
            std::string::npos);
  EXPECT_NE(error_of([&] { l2.check_dims(10, 2, 2, "reacher"); }).find("meta-trained for obs/act/goal sizes 8/2/2"),
            std::string::npos);
}

std::vector<std::string> tiny_meta(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o = {"env.name=pointmass",       "meta.iterations=6",       "meta.tasks_per_iteration=2",
                                "meta.pool_size=2",         "meta.episodes_per_task=8", "meta.checkpoint_every=3",
                                "policy.hidden=16",         "loss.hidden=8",           "meta_test.updates=6",
                                "meta_test.seeds=2",        "meta_test.eval_every=3",  "meta_test.eval_episodes=8",
                                "baselines.ppo.pg.epochs=2", "baselines.ppo.pg.minibatches=2", "baselines.reinforce.pg.epochs=2",
                                "baselines.reinforce.pg.minibatches=2", "value.hidden=8"};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

fs::path write_cfg(const fs::path& dir) {
  test::write_file(dir / "meta.yaml", "algorithm: ml3\nenv:\n  name: pointmass\npolicy:\n  obs_norm: false\n");
  return dir / "meta.yaml";
}

using test::metric_rows;

TEST(MetaTrain, RunFolderResumeAndDeterminism) {
  const auto root = test::temp_dir("metatrain");
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.overrides = tiny_meta();
  a.quiet = true;
  a.out_dir = (root / "full").string();
  const auto summary = nlohmann::json::parse(meta_train(a));
  EXPECT_EQ(summary["iterations"], 6);
  for (const char* f : {"config.yaml", "metrics.csv", "loss.ml3", "summary.json", "checkpoints/last.ckpt", "meta_curve.png"})
    EXPECT_TRUE(fs::exists(root / "full" / f)) << f;
  a.out_dir = (root / "split").string();
  a.stop_after = 4;
  EXPECT_EQ(meta_train(a), "");
  RunArgs r;
  r.resume_dir = (root / "split").string();
  r.quiet = true;
  meta_train(r);
  EXPECT_EQ(metric_rows(root / "full"), metric_rows(root / "split"));
  Params p1, p2;
  LearnedLoss::load((root / "full" / "loss.ml3").string(), &p1);
  LearnedLoss::load((root / "split" / "loss.ml3").string(), &p2);
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(torch::equal(p1[i], p2[i]));
  // ml3 eval is for policy checkpoints: a meta-training checkpoint gets a clear error.
  EvalArgs e;
  e.checkpoint = (root / "full" / "checkpoints" / "last.ckpt").string();
  EXPECT_NE(error_of([&] { run_eval(e); }).find("a checkpoint of ml3 meta-train (ml3), not of a policy"),
            std::string::npos);
}

// A loss meta-trained for 2 iterations (root/mt/loss.ml3); returns its config file.
std::string tiny_loss(const fs::path& root) {
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.overrides = tiny_meta({"meta.iterations=2"});
  a.quiet = true;
  a.out_dir = (root / "mt").string();
  meta_train(a);
  return a.config_path;
}

TEST(MetaTest, ComparesMethodsAndWritesCurves) {
  const auto root = test::temp_dir("metatest");
  const std::string config = tiny_loss(root);
  MetaTestArgs t;
  t.loss_file = (root / "mt" / "loss.ml3").string();
  t.config_path = config;
  t.overrides = tiny_meta({"policy.hidden=8,8"});  // another architecture than at meta-train time
  t.out_dir = (root / "test").string();
  t.split = "ood";
  t.quiet = true;
  const auto j = nlohmann::json::parse(run_meta_test(t));
  EXPECT_EQ(j["split"], "ood");
  ASSERT_EQ(j["methods"].size(), 3u);
  for (const auto& m : j["methods"])
    for (const char* k : {"name", "final_success_rate", "final_distance_mean", "updates_to_threshold"})
      EXPECT_TRUE(m.contains(k)) << k;
  EXPECT_TRUE(j.contains("headline"));
  EXPECT_TRUE(fs::exists(root / "test" / "curves.png"));
  EXPECT_FALSE(policy_meta_test_table(j.dump()).empty());
  // A loss for another environment is refused.
  t.overrides = {"env.name=reacher"};
  t.force = true;
  EXPECT_NE(error_of([&] { run_meta_test(t); }).find("meta-trained for"), std::string::npos);
}

// ml3 compare on a tiny pointmass protocol: a learned loss (meta-trained with
// 16-unit policies, compared on 8x8 ones), REINFORCE (learning rate swept),
// PPO, behaviour cloning and PPO from the clone; seconds.
struct TinyCompare {
  fs::path root;
  std::string config;
  explicit TinyCompare(const std::string& tag) : root(test::temp_dir(tag)) {
    tiny_loss(root);
    Config env_opts(find_env("pointmass").schema);
    save_demos((root / "pm.demos").string(), record_demos("pointmass", env_opts, Split::Train, 6, 0, 1));
    save_demos((root / "reacher.demos").string(),
               record_demos("reacher", Config(find_env("reacher").schema), Split::Train, 2, 0, 1));
    const std::string loss = (root / "mt" / "loss.ml3").string(), demos = (root / "pm.demos").string();
    test::write_file(root / "cmp.yaml",
                     "env: {name: pointmass}\n"
                     "policy: {hidden: [8, 8]}\n"
                     "value: {hidden: [8]}\n"
                     "compare: {seeds: 2, updates: 4, episodes_per_update: 8, eval_every: 2, eval_episodes: 8, "
                     "threshold: 0.1}\n"
                     "sweep: {seeds: 1, updates: 2}\n"
                     "methods:\n"
                     "  loss: {kind: learned_loss, learned_loss: {file: " + loss + "}}\n"
                     "  reinforce: {kind: reinforce, sweep_lrs: \"1e-3,1e-2\", pg: {epochs: 2, minibatches: 2}}\n"
                     "  ppo: {kind: ppo, pg: {epochs: 2, minibatches: 2}}\n"
                     "  bc: {kind: bc, bc: {demos: " + demos + ", steps_per_update: 2, batch_rows: 16}}\n"
                     "  ppo_from_bc: {kind: ppo_from_bc, bc: {demos: " + demos +
                         ", pretrain_steps: 20, batch_rows: 16, lr: 0.01}, pg: {epochs: 2, minibatches: 2}}\n");
    config = (root / "cmp.yaml").string();
  }
  std::string run(const std::string& out, const std::vector<std::string>& overrides = {}) const {
    CompareArgs a;
    a.config_path = config;
    a.overrides = overrides;
    a.out_dir = (root / out).string();
    a.quiet = true;
    return run_compare(a);
  }
};

nlohmann::json without_paths(nlohmann::json j) { return test::without_timings(std::move(j)); }

TEST(Compare, TinyComparisonIsCompleteAndDeterministic) {
  const TinyCompare t("compare");
  const auto j = nlohmann::json::parse(t.run("a"));
  for (const char* k : {"env", "split", "threshold", "updates", "methods", "comparisons", "sweep"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["env"], "pointmass");
  EXPECT_EQ(j["split"], "test");
  EXPECT_EQ(j["updates"], 4);
  ASSERT_EQ(j["methods"].size(), 5u);
  std::vector<std::string> kinds;
  for (const auto& m : j["methods"]) {
    kinds.push_back(m["kind"]);
    EXPECT_EQ(m["shaped"], false);
    for (const char* k : {"final_success_rate", "final_distance_mean", "updates_to_threshold",
                          "seeds_reaching_threshold", "auc"}) {
      EXPECT_TRUE(m.contains(k)) << k;
      ASSERT_TRUE(m["ci"].contains(k)) << k;
      EXPECT_EQ(m["ci"][k].size(), 2u) << k;
    }
    EXPECT_LE(m["ci"]["auc"][0].get<double>(), m["auc"].get<double>());
    EXPECT_GE(m["ci"]["auc"][1].get<double>(), m["auc"].get<double>());
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"learned_loss", "reinforce", "ppo", "bc", "ppo_from_bc"}));
  // The learned loss against each of the 4 baselines, in plain words.
  ASSERT_EQ(j["comparisons"].size(), 4u);
  for (const auto& c : j["comparisons"]) {
    EXPECT_NE(c["statement"].get<std::string>().find("loss vs "), std::string::npos);
    // Significant exactly when the interval excludes 0; the better method by the sign (lower distance wins).
    for (const char* k : {"final_success_rate", "auc", "final_distance_mean"}) {
      const auto& d = c[k];
      const double lo = d["ci"][0], hi = d["ci"][1], diff = d["difference"];
      EXPECT_LE(lo, diff + 1e-12) << k;
      EXPECT_GE(hi, diff - 1e-12) << k;
      EXPECT_EQ(d["significant"].get<bool>(), lo > 0 || hi < 0) << k;
      if (d["significant"].get<bool>()) {
        const bool loss_better = std::string(k) == "final_distance_mean" ? diff < 0 : diff > 0;
        EXPECT_EQ(d["better"], loss_better ? c["method"] : c["baseline"]) << k;
      }
    }
  }
  // The sweep: every rate with its AUC, the best one chosen and used.
  const auto& sw = j["sweep"]["methods"]["reinforce"];
  ASSERT_EQ(sw["runs"].size(), 2u);
  EXPECT_EQ(sw["chosen_lr"].get<double>(), j["methods"][1]["lr"].get<double>());
  EXPECT_NE(j["methods"][1]["lr_source"].get<std::string>().find("sweep"), std::string::npos);
  EXPECT_FALSE(j["sweep"]["methods"].contains("ppo"));  // no sweep_lrs: the configured rate
  for (const char* f : {"config.yaml", "results.json", "results.md", "curves.json", "curves.png"})
    EXPECT_TRUE(fs::exists(t.root / "a" / f)) << f;
  const std::string md = test::read_text(t.root / "a" / "results.md");
  for (const char* s : {"| method | kind |", "significant", "Learning-rate sweep", "coarse"})
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;
  // PPO from the clone starts from the clone: its update-0 policy is not PPO's.
  const auto curves = nlohmann::json::parse(test::read_text(t.root / "a" / "curves.json"));
  const auto& dist = curves["panels"][1]["methods"];
  EXPECT_NE(dist["ppo_from_bc"]["seeds"][0][0], dist["ppo"]["seeds"][0][0]);
  EXPECT_EQ(dist["ppo"]["seeds"][0][0], dist["reinforce"]["seeds"][0][0]);  // same initialisation
  EXPECT_EQ(curves["x2"][1].get<double>(), 2.0 * 8 * 50);                   // env steps at update 2
  // The figures are those of the curves: AUC by trapezoids over the budget,
  // final success the mean of the last evaluations, reach the first crossing.
  for (size_t k = 0; k < j["methods"].size(); ++k) {
    const auto& m = j["methods"][k];
    const auto& seeds = curves["panels"][0]["methods"][m["name"].get<std::string>()]["seeds"];
    const auto& x = curves["x"];
    double final_mean = 0;
    for (size_t s = 0; s < seeds.size(); ++s) {
      double area = 0, reach = -1;
      for (size_t i = 0; i < x.size(); ++i) {
        if (reach < 0 && seeds[s][i].get<double>() >= 0.1) reach = x[i].get<double>();
        if (i) area += 0.5 * (seeds[s][i].get<double>() + seeds[s][i - 1].get<double>()) * (x[i].get<double>() - x[i - 1].get<double>());
      }
      EXPECT_DOUBLE_EQ(m["per_seed"][s]["auc"].get<double>(), area / 4) << m["name"];
      EXPECT_EQ(m["per_seed"][s]["updates_to_threshold"].is_null(), reach < 0) << m["name"];
      if (reach >= 0) {
        EXPECT_EQ(m["per_seed"][s]["updates_to_threshold"].get<double>(), reach) << m["name"];
      }
      final_mean += seeds[s].back().get<double>() / seeds.size();
    }
    EXPECT_DOUBLE_EQ(m["final_success_rate"].get<double>(), final_mean) << m["name"];
  }
  // Same config, seeds and threads: the same numbers.
  EXPECT_EQ(without_paths(j), without_paths(nlohmann::json::parse(t.run("b"))));
  // --no-sweep uses the configured rate.
  CompareArgs a;
  a.config_path = t.config;
  a.overrides = {"compare.methods=reinforce"};
  a.out_dir = (t.root / "c").string();
  a.quiet = a.no_sweep = true;
  const auto c = nlohmann::json::parse(run_compare(a));
  EXPECT_EQ(c["methods"][0]["lr"].get<double>(), 3e-4);
  EXPECT_TRUE(c["sweep"]["methods"].empty());
  EXPECT_TRUE(c["comparisons"].empty());
}

TEST(Compare, BadInputGetsOneClearMessage) {
  const TinyCompare t("compare_bad");
  auto error = [&](const std::vector<std::string>& o) { return error_of([&] { t.run("bad", o); }); };
  EXPECT_NE(error({"methods.loss.learned_loss.file=" + (t.root / "none.ml3").string()}).find("none.ml3"),
            std::string::npos);
  EXPECT_NE(error({"env.name=reacher", "compare.methods=loss"}).find("a loss meta-trained for pointmass, not for reacher"),
            std::string::npos);
  const std::string demos_error = error({"methods.bc.bc.demos=" + (t.root / "reacher.demos").string()});
  EXPECT_NE(demos_error.find("method 'bc' (keys methods.bc.*): "), std::string::npos) << demos_error;
  EXPECT_NE(demos_error.find("reacher.demos: demonstrations of reacher, not of pointmass"), std::string::npos);
  EXPECT_NE(error({"methods.bc.kind=bcc"}).find("methods.bc.kind': unknown algorithm 'bcc' (did you mean 'bc'"),
            std::string::npos);
  EXPECT_NE(error({"methods.ppo.optim.lrr=1"}).find("did you mean 'methods.ppo.optim.lr'"), std::string::npos);
  EXPECT_NE(error({"compare.methods=ppo,nope"}).find("no method 'nope'"), std::string::npos);
  EXPECT_NE(error({"methods.ppo.sweep_lrs=1e-3,fast"}).find("'fast' is not a positive learning rate"), std::string::npos);
  EXPECT_NE(error({"methods.x.optim.lr=1"}).find("methods.x.kind' is required"), std::string::npos);
  EXPECT_NE(error({"methods.loss.learned_loss.optimizer=adam"}).find("meta-trained through the sgd inner optimiser"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(t.root / "bad"));  // nothing written
}

// Behaviour cloning as an ordinary ml3 train run: the clone of the scripted
// expert ends much closer to the goals than the initial policy.
TEST(Bc, ClonesTheExpertInAnOrdinaryRun) {
  const auto root = test::temp_dir("bc");
  save_demos((root / "pm.demos").string(),
             record_demos("pointmass", Config(find_env("pointmass").schema), Split::Train, 40, 0, 1));
  test::write_file(root / "bc.yaml", "algorithm: bc\nenv:\n  name: pointmass\n");
  RunArgs a;
  a.config_path = (root / "bc.yaml").string();
  a.overrides = {"bc.demos=" + (root / "pm.demos").string(), "bc.steps_per_update=40", "bc.lr=3e-3",
                 "policy.hidden=32,32", "train.iterations=8", "train.episodes_per_iteration=8",
                 "train.eval_every=8", "train.eval_episodes=16", "threads=1"};
  a.quiet = true;
  a.out_dir = (root / "run").string();
  const auto summary = nlohmann::json::parse(run(a).summary);
  EXPECT_EQ(summary["policy_updates"], 8 * 40);
  EXPECT_EQ(summary["env_steps"], 0);  // cloning collects no episodes
  // The same run after a single cloning step: about the initial policy.
  RunArgs a0 = a;
  a0.overrides.insert(a0.overrides.end(), {"train.iterations=1", "bc.steps_per_update=1", "train.eval_every=1"});
  a0.out_dir = (root / "run0").string();
  const double d0 = nlohmann::json::parse(run(a0).summary)["final_distance_mean"];
  EXPECT_LT(summary["final_distance_mean"].get<double>(), 0.5 * d0) << "start " << d0;
  // Stopped and resumed (the cloner's Adam state is checkpointed): the same
  // numbers. PPO from the clone too (the clone is rebuilt, then replaced by
  // the checkpoint).
  const std::vector<std::string> common = {"bc.demos=" + (root / "pm.demos").string(), "policy.hidden=16",
                                           "train.iterations=4", "train.checkpoint_every=2",
                                           "train.episodes_per_iteration=8", "train.eval_episodes=8", "threads=1"};
  for (const std::string algo : {"bc", "ppo_from_bc"}) {
    RunArgs b;
    b.config_path = a.config_path;
    b.quiet = true;
    b.overrides = common;
    b.overrides.push_back("algorithm=" + algo);
    if (algo == "bc") b.overrides.push_back("bc.steps_per_update=5");
    else b.overrides.insert(b.overrides.end(), {"bc.pretrain_steps=20", "pg.epochs=2", "pg.minibatches=2"});
    b.out_dir = (root / (algo + "_full")).string();
    run(b);
    b.out_dir = (root / (algo + "_split")).string();
    b.stop_after = 2;
    run(b);
    RunArgs r;
    r.resume_dir = b.out_dir;
    r.quiet = true;
    run(r);
    EXPECT_EQ(test::metric_rows(root / (algo + "_full")), test::metric_rows(root / (algo + "_split"))) << algo;
  }
  a.overrides.push_back("bc.demos=");
  a.force = true;
  EXPECT_NE(error_of([&] { run(a); }).find("bc.demos' is required"), std::string::npos);
}

// Behaviour cloning trained to convergence: the policy handed out is always
// the best one on the held-out rows, and cloning stops after `patience`
// checks without improvement (no more steps are taken).
TEST(Bc, EarlyStoppingKeepsTheBestHeldOutPolicyAndStops) {
  const auto root = test::temp_dir("bc_early");
  save_demos((root / "pm.demos").string(),
             record_demos("pointmass", Config(find_env("pointmass").schema), Split::Train, 20, 0, 1));
  test::write_file(root / "bc.yaml", "algorithm: bc\nenv:\n  name: pointmass\n");
  RunArgs a;
  a.config_path = (root / "bc.yaml").string();
  // A large rate on a small network: the held-out error stops improving soon.
  a.overrides = {"bc.demos=" + (root / "pm.demos").string(), "bc.steps_per_update=20", "bc.check_every=10",
                 "bc.patience=2", "bc.lr=0.3", "bc.batch_rows=32", "policy.hidden=8", "train.iterations=30",
                 "train.eval_every=30", "train.eval_episodes=8", "threads=1"};
  a.quiet = true;
  a.out_dir = (root / "run").string();
  const auto summary = nlohmann::json::parse(run(a).summary);
  const int64_t steps = summary["policy_updates"].get<int64_t>();
  EXPECT_LT(steps, 30 * 20) << "early stopping never stopped";
  EXPECT_GT(steps, 0);
  std::vector<double> best;
  {
    std::ifstream in(root / "run" / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) best.push_back(nlohmann::json::parse(line)["policy_loss"]);
  }
  ASSERT_EQ(best.size(), 30u);
  for (size_t i = 1; i < best.size(); ++i) EXPECT_LE(best[i], best[i - 1]) << "iteration " << i + 1;
  // Stopped and resumed in the middle: the same rows.
  a.out_dir = (root / "split").string();
  a.stop_after = 3;
  run(a);
  RunArgs r;
  r.resume_dir = a.out_dir;
  r.quiet = true;
  run(r);
  EXPECT_EQ(test::metric_rows(root / "run"), test::metric_rows(root / "split"));
}

TEST(CompareReport, InterquartileMeanDropsAQuarterAtEachEnd) {
  EXPECT_DOUBLE_EQ(iqm({1, 2, 3, 4, 100}), 3.0);   // floor(5/4) = 1 dropped at each end
  EXPECT_DOUBLE_EQ(iqm({0, 1, 2, 10}), 1.5);
  EXPECT_DOUBLE_EQ(iqm({0.5, 0.7, 0.9}), 0.7);     // 3 values: nothing dropped, the mean
  EXPECT_DOUBLE_EQ(iqm({0.2, 0.4}), 0.3);
}

// A loss with a target network T (meta-trained with demonstrations), T run
// as a policy three ways: `shaping_only` in ml3 compare, `ml3 export
// --loss-target` then the runtime on the same episodes, and against the
// strong baselines (dapg, ppo_from_bc with a value warm-up) with costs.
TEST(Compare, ShapingOnlyDapgAndCostsOfEveryMethod) {
  const auto root = test::temp_dir("strong_baselines");
  save_demos((root / "pm.demos").string(),
             record_demos("pointmass", Config(find_env("pointmass").schema), Split::Train, 10, 0, 1));
  const std::string demos = (root / "pm.demos").string();
  RunArgs m;
  m.config_path = write_cfg(root).string();
  m.overrides = tiny_meta({"loss.target=true", "loss.target_hidden=12", "shaping.demos=" + demos,
                           "shaping.target_fit_steps=20", "shaping.target_labels=true", "shaping.demo_rows=64",
                           "meta.inner_optimizer=adam", "meta.steps_per_batch=2", "meta.inner_lr=1e-3",
                           "meta.iterations=3"});
  m.quiet = true;
  m.out_dir = (root / "mt").string();
  meta_train(m);
  const std::string loss = (root / "mt" / "loss.ml3").string();
  nlohmann::json meta;
  LearnedLoss::load(loss, nullptr, &meta);
  EXPECT_GT(meta["meta_training_seconds"].get<double>(), 0.0);
  EXPECT_EQ(meta["meta_training_env_steps"].get<int64_t>(), 3 * 2 * 8 * 50 * 2);  // its. x tasks x episodes x steps x 2 rollouts
  // A loss without a target: shaping_only refuses it, naming the file.
  m.overrides = tiny_meta({"meta.iterations=1"});
  m.out_dir = (root / "plain").string();
  meta_train(m);

  test::write_file(root / "cmp.yaml",
                   "env: {name: pointmass}\n"
                   "policy: {hidden: [8, 8]}\n"
                   "value: {hidden: [8]}\n"
                   "compare: {seeds: 2, updates: 6, episodes_per_update: 8, eval_every: 1, eval_episodes: 8, "
                   "threshold: 0.1}\n"
                   "sweep: {enabled: false}\n"
                   "methods:\n"
                   "  shaped: {kind: learned_loss, learned_loss: {file: " + loss + ", optimizer: adam, lr: 0.001, "
                   "steps: 2}}\n"
                   "  target: {kind: shaping_only, policy_hidden: \"12\", shaping_only: {file: " + loss + "}}\n"
                   "  bc: {kind: bc, bc: {demos: " + demos + ", steps_per_update: 10, batch_rows: 16}}\n"
                   "  bc_big: {kind: bc, policy_hidden: \"32,32\", bc: {demos: " + demos +
                   ", steps_per_update: 10, batch_rows: 16}}\n"
                   "  ppo_from_bc: {kind: ppo_from_bc, bc: {demos: " + demos +
                   ", pretrain_steps: 40, batch_rows: 16, value_warmup: 2}, pg: {epochs: 2, minibatches: 2}}\n"
                   "  dapg: {kind: dapg, bc: {demos: " + demos +
                   ", pretrain_steps: 40, batch_rows: 16, value_warmup: 2}, dapg: {bc_steps: 5, decay: 0.5}, "
                   "pg: {epochs: 2, minibatches: 2}}\n"
                   "  ppo: {kind: ppo, pg: {epochs: 2, minibatches: 2}}\n");
  CompareArgs c;
  c.config_path = (root / "cmp.yaml").string();
  c.out_dir = (root / "out").string();
  c.quiet = true;
  const auto j = nlohmann::json::parse(run_compare(c));
  std::map<std::string, nlohmann::json> by;
  for (const auto& x : j["methods"]) {
    by[x["name"].get<std::string>()] = x;
    for (const char* k : {"env_steps", "wall_seconds", "meta_training_seconds", "iqm_final_success", "policy_steps"})
      EXPECT_TRUE(x.contains(k)) << x["name"] << " " << k;
    EXPECT_TRUE(x["ci"].contains("iqm_final_success"));
    EXPECT_GE(x["wall_seconds"].get<double>(), 0.0);
  }
  // Kinds and costs: offline methods collect nothing; learned_loss and
  // shaping_only report their loss file's meta-training.
  EXPECT_EQ(by["target"]["kind"], "shaping_only");
  EXPECT_EQ(by["dapg"]["kind"], "dapg");
  for (const char* k : {"bc", "bc_big", "target"}) EXPECT_EQ(by[k]["env_steps"].get<double>(), 0.0) << k;
  for (const char* k : {"shaped", "ppo", "ppo_from_bc", "dapg"})
    EXPECT_EQ(by[k]["env_steps"].get<double>(), 6.0 * 8 * 50) << k;
  EXPECT_EQ(by["target"]["policy_steps"].get<double>(), 0.0);
  for (const char* k : {"shaped", "target"})
    EXPECT_EQ(by[k]["meta_training_seconds"].get<double>(), meta["meta_training_seconds"].get<double>()) << k;
  EXPECT_TRUE(by["ppo"]["meta_training_seconds"].is_null());
  EXPECT_EQ(by["bc_big"]["policy_hidden"], nlohmann::json({32, 32}));
  EXPECT_EQ(by["target"]["policy_hidden"], nlohmann::json({12}));
  const auto curves = nlohmann::json::parse(test::read_text(root / "out" / "curves.json"));
  const auto& dist = curves["panels"][1]["methods"];
  // The plot draws methods without environment steps as their final level.
  EXPECT_EQ(dist["bc"]["env_steps"].get<double>(), 0.0);
  EXPECT_EQ(dist["ppo"]["env_steps"].get<double>(), 6.0 * 8 * 50);
  for (int s = 0; s < 2; ++s) {
    // shaping_only never changes: T's evaluation at every update.
    for (const auto& v : dist["target"]["seeds"][s]) EXPECT_EQ(v, dist["target"]["seeds"][s][0]);
    // The value warm-up keeps the clone for 2 updates; then PPO moves it.
    EXPECT_EQ(dist["ppo_from_bc"]["seeds"][s][1], dist["ppo_from_bc"]["seeds"][s][0]);
    EXPECT_EQ(dist["ppo_from_bc"]["seeds"][s][2], dist["ppo_from_bc"]["seeds"][s][0]);
    EXPECT_NE(dist["ppo_from_bc"]["seeds"][s][6], dist["ppo_from_bc"]["seeds"][s][0]);
    // DAPG: the same clone and warm-up, then its cloning term makes it differ from PPO from the clone.
    EXPECT_EQ(dist["dapg"]["seeds"][s][2], dist["ppo_from_bc"]["seeds"][s][2]);
    EXPECT_NE(dist["dapg"]["seeds"][s][6], dist["ppo_from_bc"]["seeds"][s][6]);
  }
  EXPECT_EQ(j["best_baseline"].is_string(), true);
  const std::string md = test::read_text(root / "out" / "results.md");
  for (const char* k : {"IQM %", "env steps", "meta-training s", "Strongest baseline"})
    EXPECT_NE(md.find(k), std::string::npos) << k;
  // Same config, seeds, threads: the same numbers (wall times aside).
  c.out_dir = (root / "again").string();
  EXPECT_EQ(test::without_timings(j), test::without_timings(nlohmann::json::parse(run_compare(c))));

  // T exported as a .ml3p and run by the runtime on the same 8 test goals:
  // the same final distance as shaping_only's evaluation.
  ExportArgs ex;
  ex.loss_target = loss;
  ex.out = (root / "target.ml3p").string();
  const auto exj = export_policy(ex);
  EXPECT_EQ(exj["sizes"], nlohmann::json({8, 12, 2})) << exj.dump();
  RigOptions o;
  o.policy = ex.out;
  o.env = "pointmass";
  o.episodes = 8;
  const auto rig = run_rig(o);
  EXPECT_NEAR(rig["final_distance_mean"].get<double>(), dist["target"]["seeds"][0][0].get<double>(), 1e-5);

  // Bad input: one message naming the file or key, nothing written.
  auto bad = [&](const std::vector<std::string>& ov) {
    CompareArgs b = c;
    b.overrides = ov;
    b.out_dir = (root / "bad").string();
    return error_of([&] { run_compare(b); });
  };
  const std::string plain = (root / "plain" / "loss.ml3").string();
  EXPECT_NE(bad({"methods.target.shaping_only.file=" + plain}).find(plain + ": this loss has no target network"),
            std::string::npos);
  EXPECT_NE(bad({"methods.target.policy_hidden=8,8"}).find("its target network is 8-12-2 (tanh), the policy 8-8-8-2"),
            std::string::npos);
  EXPECT_NE(bad({"methods.bc.bc.demos=" + (root / "missing.demos").string()}).find("missing.demos"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(root / "bad"));
  ex.out = (root / "plain.ml3p").string();
  ex.loss_target = plain;
  EXPECT_NE(error_of([&] { export_policy(ex); }).find("this loss has no target network"), std::string::npos);
  EXPECT_FALSE(fs::exists(ex.out));
}

TEST(CompareConfig, ShippedConfigsLoadAndWriteOutEveryKey) {
  for (const char* name : {"reacher_compare", "pusher_compare", "reacher_compare_few_demos", "reacher_compare_shift",
                           "pusher_compare_few_demos", "pusher_compare_shift"}) {
    const std::string path = std::string(ML3_SOURCE_DIR) + "/configs/" + name + ".yaml";
    const Config c = load_compare_config(path, {});
    const std::string text = test::read_text(path);
    for (const auto& d : c.schema().params())
      EXPECT_NE(text.find(d.key.substr(d.key.rfind('.') + 1) + ":"), std::string::npos) << name << " lacks " << d.key;
    std::set<std::string> kinds;
    for (const auto& [k, v] : c.values())
      if (k.size() > 5 && k.compare(k.size() - 5, 5, ".kind") == 0) kinds.insert(v);
    // Every preset sets the learned loss beside the strongest baselines.
    for (const char* k : {"learned_loss", "shaping_only", "bc", "ppo_from_bc", "dapg", "ppo"})
      EXPECT_TRUE(kinds.count(k)) << name << " lacks a method of kind " << k;
  }
}

// The manual (docs/usage.md, docs/configs.md) documents every key of ml3 compare: its own
// sections, the methods.<name>. keys, and each kind's sections (the ml3 train tables).
TEST(CompareConfig, ReadmeDocumentsEveryKey) {
  const std::string readme = test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/usage.md") +
                             test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/configs.md");
  std::vector<std::pair<std::string, std::string>> methods;
  for (const auto& e : algorithm_registry())
    if (e.command == Command::Train) methods.emplace_back("m_" + e.name, e.name);
  const Schema schema = compare_schema("reacher", methods);
  for (const auto& d : schema.params()) {
    std::string key = d.key;
    if (key.rfind("env.", 0) == 0 && key != "env.name") key = key.substr(4);
    if (key.rfind("methods.", 0) == 0) {
      const std::string rest = key.substr(key.find('.', 8) + 1);
      key = rest.find('.') == std::string::npos ? "methods.<name>." + rest : rest;
    }
    EXPECT_NE(readme.find("`" + key + "`"), std::string::npos) << d.key;
  }
}

// `ml3 train --loss FILE`: a learned loss trains a policy as an ordinary run
// (run folder, checkpoints, resume with the same numbers, eval).
TEST(LearnedLossTrain, OrdinaryRunWithResumeAndClearErrors) {
  const auto root = test::temp_dir("lltrain");
  tiny_loss(root);
  const std::string loss = (root / "mt" / "loss.ml3").string();
  test::write_file(root / "train.yaml", "algorithm: learned_loss\nenv:\n  name: pointmass\n");
  RunArgs t;
  t.config_path = (root / "train.yaml").string();
  t.overrides = {"learned_loss.file=" + loss, "policy.obs_norm=false", "policy.hidden=16", "train.iterations=4",
                 "train.episodes_per_iteration=8", "train.checkpoint_every=2", "train.eval_every=2",
                 "train.eval_episodes=8"};
  t.quiet = true;
  t.out_dir = (root / "full").string();
  const auto summary = nlohmann::json::parse(run(t).summary);
  EXPECT_EQ(summary["algorithm"], "learned_loss");
  EXPECT_EQ(summary["policy_updates"], 4);
  t.out_dir = (root / "split").string();
  t.stop_after = 2;
  run(t);
  RunArgs r;
  r.resume_dir = (root / "split").string();
  r.quiet = true;
  run(r);
  EXPECT_EQ(test::metric_rows(root / "full"), test::metric_rows(root / "split"));
  // Errors: raw observations required; the file is required and must match the environment.
  t.out_dir = (root / "bad").string();
  t.stop_after = -1;
  t.force = true;
  auto with = [&](const std::string& o) {
    RunArgs b = t;
    b.overrides.push_back(o);
    return error_of([&] { run(b); });
  };
  EXPECT_NE(with("policy.obs_norm=true").find("raw observations"), std::string::npos);
  EXPECT_NE(with("learned_loss.file=").find("learned_loss.file' is required"), std::string::npos);
  EXPECT_NE(with("env.name=reacher").find("meta-trained for"), std::string::npos);
}

// Shaping with demonstrations: the imitation term enters the meta-train task
// loss (annealed), the loss file says it was shaped, and neither meta-test nor
// training with the loss file reads the demonstrations.
TEST(MetaTrain, DemonstrationShapingEntersOnlyMetaTraining) {
  const auto root = test::temp_dir("shaping");
  Config env_opts(find_env("pointmass").schema);
  save_demos((root / "pm.demos").string(), record_demos("pointmass", env_opts, Split::Train, 6, 0, 1));
  save_demos((root / "reacher.demos").string(),
             record_demos("reacher", Config(find_env("reacher").schema), Split::Train, 2, 0, 1));
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.overrides = tiny_meta({"shaping.demos=" + (root / "pm.demos").string(), "shaping.anneal_iterations=4",
                           "shaping.imitation_weight=2", "meta.inner_optimizer=adam", "meta.steps_per_batch=2",
                           "meta.inner_lr=1e-3"});
  a.quiet = true;
  a.out_dir = (root / "mt").string();
  meta_train(a);
  std::ifstream in(root / "mt" / "metrics.jsonl");
  std::vector<double> weights;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j["imitation_error"].is_number());
    weights.push_back(j["shaping_weight"].get<double>());
  }
  EXPECT_EQ(weights, (std::vector<double>{2.0, 1.5, 1.0, 0.5, 0.0, 0.0}));
  nlohmann::json meta;
  Params phi;
  LearnedLoss::load((root / "mt" / "loss.ml3").string(), &phi, &meta);
  EXPECT_EQ(meta["shaped"], true);
  EXPECT_EQ(meta["inner_optimizer"], "adam");
  // Meta-test with the demonstrations gone: it never reads them.
  fs::remove(root / "pm.demos");
  MetaTestArgs t;
  t.loss_file = (root / "mt" / "loss.ml3").string();
  t.config_path = a.config_path;
  t.overrides = tiny_meta({"meta.inner_optimizer=adam", "meta.steps_per_batch=2", "meta.inner_lr=1e-3",
                           "meta_test.methods=learned_loss"});
  t.out_dir = (root / "test").string();
  t.quiet = true;
  EXPECT_EQ(nlohmann::json::parse(run_meta_test(t))["methods"].size(), 1u);
  // Demonstrations of another environment are refused by name.
  a.overrides.push_back("shaping.demos=" + (root / "reacher.demos").string());
  a.force = true;
  EXPECT_NE(error_of([&] { meta_train(a); }).find("reacher.demos"), std::string::npos);
}

// Shaping with expert labels: the visited states are labelled, the target
// network is fitted to them (its error falls), the buffer and the target's
// optimiser survive a resume exactly, and the loss file says how it was shaped.
TEST(MetaTrain, ExpertLabelShapingFitsTheTargetAndResumesExactly) {
  const auto root = test::temp_dir("expertlabels");
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.overrides = tiny_meta({"loss.target=true", "loss.target_hidden=16", "shaping.expert_labels=true",
                           "shaping.target_fit_steps=25", "shaping.target_fit_lr=3e-3", "shaping.buffer_rows=1000",
                           "shaping.demo_rows=128", "meta.inner_optimizer=adam", "meta.steps_per_batch=2",
                           "meta.inner_lr=1e-3"});
  a.quiet = true;
  a.out_dir = (root / "full").string();
  meta_train(a);
  std::vector<double> fit;
  {
    std::ifstream in(root / "full" / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line);
      ASSERT_TRUE(j["imitation_error"].is_number());
      fit.push_back(j["target_fit_error"].get<double>());
    }
  }
  ASSERT_EQ(fit.size(), 6u);
  EXPECT_LT(fit.back(), 0.5 * fit.front()) << fit.front() << " -> " << fit.back();
  nlohmann::json meta;
  Params phi;
  LearnedLoss::load((root / "full" / "loss.ml3").string(), &phi, &meta);
  EXPECT_EQ(meta["shaped"], true);
  EXPECT_EQ(meta["shaping"], "expert_labels");
  a.out_dir = (root / "split").string();
  a.stop_after = 4;
  meta_train(a);
  RunArgs r;
  r.resume_dir = (root / "split").string();
  r.quiet = true;
  meta_train(r);
  EXPECT_EQ(metric_rows(root / "full"), metric_rows(root / "split"));
  // Fitting a target needs one.
  RunArgs bad = a;
  bad.stop_after = -1;
  bad.force = true;
  bad.overrides.push_back("loss.target=false");
  EXPECT_NE(error_of([&] { meta_train(bad); }).find("'shaping.target_fit_steps' needs loss.target: true"),
            std::string::npos);
  // ... and something to fit it to.
  bad.overrides.back() = "shaping.expert_labels=false";
  EXPECT_NE(error_of([&] { meta_train(bad); })
                .find("'shaping.target_fit_steps' needs shaping.demos or shaping.expert_labels"),
            std::string::npos);
}

// A loss file's parameters: the rest of the loss, then its target network T.
std::pair<Params, Params> rest_and_target(const fs::path& loss_file) {
  Params phi;
  const LearnedLoss loss = LearnedLoss::load(loss_file.string(), &phi);
  const Params t = loss.target_params(phi);
  return {Params(phi.begin(), phi.end() - static_cast<std::ptrdiff_t>(t.size())), t};
}
bool same_params(const Params& x, const Params& y) {
  for (size_t i = 0; i < x.size(); ++i)
    if (!torch::equal(x[i], y[i])) return false;
  return true;
}

// shaping.target_meta_gradient: false: the target network T moves only by
// target fitting, so with a demonstrations file (the same rows whatever the
// loss does) T ends the same for any outer learning rate, while the rest of
// the loss does not. With the default (true) the meta-gradient moves T too.
TEST(MetaTrain, TargetOutsideTheMetaGradientIsFittedOnly) {
  const auto root = test::temp_dir("targetfitonly");
  save_demos((root / "pm.demos").string(),
             record_demos("pointmass", Config(find_env("pointmass").schema), Split::Train, 40, 0, 2, 0.3));
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.quiet = true;
  auto params = [&](bool meta_gradient, const std::string& outer_lr) {
    a.overrides = tiny_meta({"loss.target=true", "loss.target_hidden=8", "shaping.target_fit_steps=3",
                             "shaping.demo_rows=64", "shaping.demos=" + (root / "pm.demos").string(),
                             "meta.inner_optimizer=adam", "meta.steps_per_batch=2", "meta.inner_lr=1e-3",
                             "meta.outer_lr=" + outer_lr,
                             std::string("shaping.target_meta_gradient=") + (meta_gradient ? "true" : "false")});
    a.out_dir = (root / ("m" + std::to_string(meta_gradient) + "_" + outer_lr)).string();
    meta_train(a);
    return rest_and_target(fs::path(a.out_dir) / "loss.ml3");
  };
  const auto [rest_small, target_small] = params(false, "1e-4");
  const auto [rest_large, target_large] = params(false, "1e-2");
  EXPECT_TRUE(same_params(target_small, target_large));
  EXPECT_FALSE(same_params(rest_small, rest_large));
  const auto [rest_small_m, target_small_m] = params(true, "1e-4");
  const auto [rest_large_m, target_large_m] = params(true, "1e-2");
  EXPECT_FALSE(same_params(target_small_m, target_large_m));
  // Nothing else trains T without fitting steps: refused with the key's name.
  a.overrides = tiny_meta({"loss.target=true", "shaping.target_meta_gradient=false"});
  a.out_dir = (root / "bad").string();
  EXPECT_NE(error_of([&] { meta_train(a); }).find("'shaping.target_meta_gradient' false needs"), std::string::npos);
}

// shaping.target_labels: the imitation term is taken on the states the
// updated policy visits, labelled by the loss's own (fitted) target network:
// its error series is not the demonstrated-states one, it alone (rl_weight 0)
// still reaches the loss through the inner steps, the loss file says so, and
// it is refused where there is no fitted target or with expert labels.
TEST(MetaTrain, TargetLabelledShapingImitatesTheTargetOnVisitedStates) {
  const auto root = test::temp_dir("targetlabels");
  save_demos((root / "pm.demos").string(),
             record_demos("pointmass", Config(find_env("pointmass").schema), Split::Train, 40, 0, 2, 0.3));
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.quiet = true;
  auto run = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> o = {"loss.target=true", "loss.target_hidden=8", "shaping.target_fit_steps=3",
                                  "shaping.demo_rows=64", "shaping.demos=" + (root / "pm.demos").string(),
                                  "meta.inner_optimizer=adam", "meta.steps_per_batch=2", "meta.inner_lr=1e-3",
                                  "shaping.target_meta_gradient=false"};
    o.insert(o.end(), extra.begin(), extra.end());
    a.overrides = tiny_meta(o);
    a.out_dir = (root / name).string();
    meta_train(a);
    std::vector<double> err;
    std::ifstream in(root / name / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) err.push_back(nlohmann::json::parse(line)["imitation_error"]);
    return err;
  };
  const auto on_demos = run("demos", {});
  const auto on_visited = run("visited", {"shaping.target_labels=true"});
  ASSERT_EQ(on_visited.size(), 6u);
  EXPECT_NE(on_demos, on_visited);
  nlohmann::json meta;
  Params phi;
  LearnedLoss::load((root / "visited" / "loss.ml3").string(), &phi, &meta);
  EXPECT_EQ(meta["shaped"], true);
  EXPECT_EQ(meta["shaping"], "demos_target_labels");
  EXPECT_EQ(meta["target_meta_gradient"], false);
  // The term alone moves the (non-target) loss: two outer learning rates differ.
  run("small", {"shaping.target_labels=true", "shaping.rl_weight=0", "meta.outer_lr=1e-4"});
  run("large", {"shaping.target_labels=true", "shaping.rl_weight=0", "meta.outer_lr=1e-2"});
  EXPECT_FALSE(same_params(rest_and_target(root / "small" / "loss.ml3").first,
                           rest_and_target(root / "large" / "loss.ml3").first));
  for (const std::string bad : {"shaping.expert_labels=true", "shaping.demos=", "shaping.target_fit_steps=0"}) {
    a.force = true;
    EXPECT_NE(error_of([&] { run("bad", {"shaping.target_labels=true", bad}); })
                  .find("'shaping.target_labels' true needs shaping.demos"),
              std::string::npos)
        << bad;
  }
}

// The sanity check of demonstration shaping: a loss whose target is fitted to
// (perturbed) expert demonstrations must train a fresh policy to the goals in
// a few batches -- if a learned loss cannot pass on a known target, it cannot
// learn an unknown one. The same policies trained by the loss as initialised
// (target at zero) stay far away.
TEST(MetaTrain, DemonstrationShapedLossTrainsAFreshPolicyInAFewBatches) {
  const auto root = test::temp_dir("shapedloss");
  save_demos((root / "pm.demos").string(),
             record_demos("pointmass", Config(find_env("pointmass").schema), Split::Train, 200, 0, 2, 0.3));
  const std::vector<std::string> o = {
      "env.name=pointmass",          "meta.episodes_per_task=16",       "meta.tasks_per_iteration=2",
      "meta.pool_size=2",            "policy.hidden=16",                "loss.hidden=8",
      "loss.target=true",            "loss.target_hidden=32",           "shaping.target_fit_steps=50",
      "shaping.target_fit_lr=3e-3",  "shaping.demo_rows=256",           "meta.inner_optimizer=adam",
      "meta.inner_lr=3e-3",          "meta.steps_per_batch=2",          "meta.iterations=20",
      "meta.checkpoint_every=20",    "meta_test.methods=learned_loss",  "meta_test.updates=10",
      "meta_test.loss_steps=20",     "meta_test.seeds=2",               "meta_test.eval_every=10",
      "meta_test.eval_episodes=50",  "shaping.demos=" + (root / "pm.demos").string()};
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.overrides = o;
  a.quiet = true;
  a.out_dir = (root / "mt").string();
  meta_train(a);
  {
    Params phi;
    LearnedLoss trained = LearnedLoss::load((root / "mt" / "loss.ml3").string(), &phi);
    const Config cfg = load_config(Command::MetaTrain, a.config_path, o);
    trained.save((root / "untrained.ml3").string(), trained.init(mix_seed(cfg.get_int("seed"), 21)), {});
  }
  auto success = [&](const std::string& loss_file, const std::string& out) {
    MetaTestArgs t;
    t.loss_file = loss_file;
    t.config_path = a.config_path;
    t.overrides = o;
    t.out_dir = (root / out).string();
    t.quiet = true;
    return nlohmann::json::parse(run_meta_test(t))["methods"][0]["final_success_rate"].get<double>();
  };
  const double shaped = success((root / "mt" / "loss.ml3").string(), "test_shaped");
  const double untrained = success((root / "untrained.ml3").string(), "test_untrained");
  std::printf("shaped %.3f untrained %.3f\n", shaped, untrained);
  EXPECT_GE(shaped, 0.8);
  EXPECT_LT(untrained, 0.5);
}

TEST(MetaTrain, LearnedLossTrainsAFreshPolicyBetterThanItsUntrainedSelf) {
  // Tiny meta-training (seconds): 300 meta-iterations, 2 tasks x 16 episodes,
  // pool reset every 30 updates. Then fresh pointmass policies are trained for
  // 30 updates with (a) the meta-trained loss and (b) the same loss network
  // at its initialisation; (a) must end clearly closer to the goals.
  const auto root = test::temp_dir("metalearns");
  const std::vector<std::string> tiny = {"env.name=pointmass",       "meta.episodes_per_task=16",
                                         "meta.tasks_per_iteration=2", "meta.pool_size=2",
                                         "policy.hidden=16",          "loss.hidden=16",
                                         "meta.pool_reset_every=30",  "meta.outer_lr=1e-2",
                                         "meta.iterations=300",       "meta_test.updates=30",
                                         "meta_test.methods=learned_loss",     "meta_test.seeds=2",
                                         "meta_test.eval_every=30"};
  RunArgs a;
  a.config_path = write_cfg(root).string();
  a.overrides = tiny;
  a.quiet = true;
  a.out_dir = (root / "trained").string();
  meta_train(a);
  // The untrained counterpart: the loss as initialised by meta-train (one
  // iteration with a zero learning rate is not allowed, so build it directly).
  {
    Params phi;
    LearnedLoss trained = LearnedLoss::load((root / "trained" / "loss.ml3").string(), &phi);
    const Config cfg = load_config(Command::MetaTrain, a.config_path, tiny);
    trained.save((root / "untrained.ml3").string(), trained.init(mix_seed(cfg.get_int("seed"), 21)), {});
  }
  auto final_distance = [&](const std::string& loss_file, const std::string& out) {
    MetaTestArgs t;
    t.loss_file = loss_file;
    t.config_path = a.config_path;
    t.overrides = tiny;
    t.out_dir = (root / out).string();
    t.quiet = true;
    return nlohmann::json::parse(run_meta_test(t))["methods"][0]["final_distance_mean"].get<double>();
  };
  const double trained = final_distance((root / "trained" / "loss.ml3").string(), "test_trained");
  const double untrained = final_distance((root / "untrained.ml3").string(), "test_untrained");
  EXPECT_LT(trained, 0.6 * untrained) << "trained " << trained << " untrained " << untrained;
}

TEST(MetaConfig, ShippedConfigsLoadAndWriteOutEveryKey) {
  for (const char* name : {"pointmass_ml3", "reacher_ml3", "reacher_ml3_long", "reacher_ml3_shaped", "pusher_ml3_shaped", "reacher_ml3_expert", "pusher_ml3_expert",
                           "reacher_ml3_anchored", "reacher_ml3_few_demos"}) {
    const std::string path = std::string(ML3_SOURCE_DIR) + "/configs/" + name + ".yaml";
    const Config c = load_config(Command::MetaTrain, path, {});
    const std::string text = test::read_text(path);
    for (const auto& d : c.schema().params())
      EXPECT_NE(text.find(d.key.substr(d.key.rfind('.') + 1) + ":"), std::string::npos) << name << " lacks " << d.key;
  }
}

TEST(MetaConfig, RejectsBadKeys) {
  EXPECT_NE(error_of([] { load_config(Command::MetaTrain, "", {"env.name=pointmass", "meta.inner_lrr=1"}); }).find("did you mean 'meta.inner_lr'"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::MetaTrain, "", {"env.name=pointmass", "loss.features=obs,velocity"}); })
                .find("unknown learned-loss feature 'velocity'"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::MetaTrain, "", {"env.name=pointmass", "policy.obs_norm=true"}); }).find("raw observations"),
            std::string::npos);
}

// The config reference (docs/configs.md) is the output of --print-schema: every key of
// every registered algorithm must be in it (env.* of reacher; the manual documents the
// other environments' options by name).
TEST(Registry, ReadmeDocumentsEveryKeyOfEveryAlgorithm) {
  const std::string readme = test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/usage.md") +
                             test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/configs.md");
  for (const auto& e : algorithm_registry()) {
    const Schema schema = algorithm_schema(e, e.needs_env ? "reacher" : "");
    for (const auto& d : schema.params()) {
      const std::string key = d.key.rfind("env.", 0) == 0 && d.key != "env.name" ? d.key.substr(4) : d.key;
      EXPECT_NE(readme.find("`" + key + "`"), std::string::npos) << e.name << ": " << d.key;
    }
  }
}

// One registry: names are unique and every entry can be built from its own schema.
TEST(Registry, EntriesAreCompleteAndUnique) {
  std::set<std::string> names;
  for (const auto& e : algorithm_registry()) {
    EXPECT_TRUE(names.insert(e.name).second) << e.name;
    EXPECT_TRUE(e.declare) << e.name;
    EXPECT_TRUE(e.command == Command::Train ? e.is_rule() && e.rule().make_update != nullptr
                                            : !e.is_rule() && e.problem().make != nullptr)
        << e.name;
  }
  EXPECT_NE(error_of([] { find_algorithm("pp0"); }).find("did you mean 'ppo'"), std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::Train, "", {"algorithm=ml3", "env.name=reacher"}); })
                .find("run by 'ml3 meta-train'"),
            std::string::npos);
}

}  // namespace
}  // namespace ml3
