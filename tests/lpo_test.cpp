// The learned drift of PPO (src/policy/drift.h) and its ES meta-training
// (algorithm lpo, src/ml3/lpo.cpp): the fast backend's hand-written drift
// gradient against LibTorch's autograd, a zero drift giving PPO bit for bit,
// the drift file, and meta-training end to end (resume, bad input).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "models/learned_loss.h"
#include "src/policy/drift.h"
#include "src/policy/fast_pg.h"
#include "src/policy/pg.h"
#include "src/policy/trainer.h"
#include "src/run/algorithm.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using test::error_of;

std::vector<float> flat(const std::vector<Tensor>& ts) {
  std::vector<float> out;
  for (const auto& t : ts) {
    const Tensor c = t.detach().to(torch::kFloat32).contiguous().reshape({-1});
    out.insert(out.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return out;
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// A drift with every layer random (the output layer too, so it is not zero).
Drift random_drift(bool nonnegative, uint64_t seed) {
  Drift d({16, 8}, nonnegative);
  std::vector<double> theta = d.init(seed);
  Rng rng(seed + 1);
  for (double& v : theta)
    if (v == 0.0) v = rng.uniform(-0.5, 0.5);
  d.set_params(theta);
  return d;
}

// Loss and gradient of PPO + drift, fast backend vs LibTorch autograd
// (PpoObjective with the drift: the drift's value per row as tensors), on a
// batch whose ratios lie inside and outside the clip range; for a
// non-negative and a signed drift, and two training progresses.
TEST(Drift, HandWrittenGradientMatchesLibTorchAutograd) {
  const int obs = 11, act = 2, B = 100;
  PolicyConfig pc;
  pc.hidden = {32, 32};
  const GaussianPolicy pol(obs, act, pc);
  Params pp = pol.init(5);
  {
    torch::NoGradGuard ng;
    pp[pp.size() - 2].mul_(100);  // a trained-size head
  }
  torch::manual_seed(3);
  Minibatch mb;
  mb.obs = torch::randn({B, obs});
  mb.actions = torch::randn({B, act});
  mb.advantages = torch::randn({B});
  mb.returns = torch::randn({B});
  {
    torch::NoGradGuard ng;
    mb.old_logp = (policy_eval(pol, pp, mb).logp + 0.4 * torch::randn({B})).contiguous();
  }
  FastPolicyGradient fast(pol.mlp().sizes(), Activation::Tanh, pc.log_std_min, pc.log_std_max, {obs, 8, 1},
                          Activation::Tanh);
  FastRows rows{mb.obs.data_ptr<float>(),        mb.actions.data_ptr<float>(), mb.old_logp.data_ptr<float>(),
                mb.advantages.data_ptr<float>(), mb.returns.data_ptr<float>(), B};
  fast.gather(rows, nullptr, B);
  const std::vector<float> pflat = flat(pp);
  std::vector<float> grad(fast.policy_params()), plain(fast.policy_params());
  fast.policy_loss_grad(pflat.data(), PgLoss::Ppo, 0.2, 0.0, plain.data());
  for (const bool nonneg : {true, false}) {
    for (const double progress : {0.0, 0.7}) {
      SCOPED_TRACE(std::string(nonneg ? "non-negative" : "signed") + " progress " + std::to_string(progress));
      Drift d = random_drift(nonneg, 9);
      PpoObjective ppo(0.2);
      ppo.set_drift(&d);
      ppo.set_progress(progress);
      const PolicyEval ev = policy_eval(pol, pp, mb);
      const Tensor loss = ppo.policy_loss(mb, ev, nullptr);
      const auto want = torch::autograd::grad({loss}, pp);
      const FastPolicyStats got =
          fast.policy_loss_grad(pflat.data(), PgLoss::Ppo, 0.2, 0.0, grad.data(), &d, progress);
      EXPECT_NEAR(got.loss, loss.item<double>(), 1e-5 * (1 + std::abs(loss.item<double>())));
      EXPECT_LT(rel_diff(grad, flat(want)), 1e-5);
      EXPECT_GT(rel_diff(grad, plain), 1e-2) << "the drift should change the gradient";
      // The drift is zero at r = 1 whatever its parameters.
      const Tensor one = torch::ones({4});
      const Tensor a = torch::tensor({-1.f, 0.f, 0.5f, 2.f});
      EXPECT_EQ(drift_values(d, one, torch::zeros({4}), a, progress).abs().max().item<float>(), 0.f);
      if (nonneg) {
        const Tensor r = torch::exp(ev.logp - mb.old_logp).detach();
        EXPECT_GE(drift_values(d, r, r.log(), mb.advantages, progress).min().item<float>(), 0.f);
      }
    }
  }
}

Config reacher_ppo(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o{"env.name=reacher", "algorithm=ppo", "policy.hidden=16", "value.hidden=16",
                             "pg.epochs=2", "pg.minibatches=4", "threads=1", "pg.backend=fast"};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_config(Command::Train, "", o);
}

std::vector<float> train_with(const Config& c, const Drift* drift, int iterations) {
  PolicyRunPlan plan;
  plan.seed = 3;
  plan.iterations = iterations;
  plan.episodes = 8;
  plan.eval_every = 0;
  PolicyTrainer t(c, find_algorithm("ppo"), "", plan);
  if (drift) t.rule().set_drift(*drift);
  for (int it = 1; it <= iterations; ++it) t.iterate(it);
  return flat(t.policy_params());
}

// Generation 0 of ES is PPO: the initial drift (random hidden layers, zero
// output layer) gives the same training run as PPO with the same seed, bit
// for bit; a non-zero drift a different one.
TEST(Drift, ZeroOutputLayerTrainsExactlyAsPpo) {
  const Config c = reacher_ppo();
  Drift zero({16}, true);
  zero.set_params(zero.init(4));
  const std::vector<float> ppo = train_with(c, nullptr, 3), with_zero = train_with(c, &zero, 3);
  ASSERT_EQ(ppo.size(), with_zero.size());
  EXPECT_EQ(std::memcmp(ppo.data(), with_zero.data(), ppo.size() * sizeof(float)), 0);
  const Drift other = random_drift(false, 2);
  EXPECT_GT(rel_diff(train_with(c, &other, 3), ppo), 1e-4);
}

// The file round-trips; ppo.drift loads it; bad files are named.
TEST(Drift, FileRoundTripsAndBadFilesAreNamed) {
  const auto root = test::temp_dir("drift_file");
  const Drift d = random_drift(true, 6);
  const std::string path = (root / "x.drift").string();
  d.save(path, {{"env", "reacher"}});
  nlohmann::json meta;
  const Drift back = Drift::load(path, &meta);
  EXPECT_EQ(back.params(), d.params());
  EXPECT_EQ(back.sizes(), d.sizes());
  EXPECT_EQ(meta["env"], "reacher");
  EXPECT_TRUE(Drift::is_drift_file(path));
  // Through the config: the same run as setting the drift directly.
  EXPECT_EQ(train_with(reacher_ppo({"ppo.drift=" + path}), nullptr, 2), train_with(reacher_ppo(), &d, 2));
  // Truncated: the file and the key are named.
  const std::string text = test::read_text(path);
  test::write_file(root / "cut.drift", text.substr(0, text.size() / 2));
  const std::string e = error_of([&] { train_with(reacher_ppo({"ppo.drift=" + (root / "cut.drift").string()}), nullptr, 1); });
  EXPECT_NE(e.find("cut.drift"), std::string::npos) << e;
  EXPECT_NE(e.find("ppo.drift"), std::string::npos) << e;
  EXPECT_FALSE(Drift::is_drift_file((root / "cut.drift").string()));
  // Another archive kind.
  Archive other("ml3-learned-loss");
  other.save((root / "loss.ml3").string());
  EXPECT_NE(error_of([&] { Drift::load((root / "loss.ml3").string()); }).find("loss.ml3"), std::string::npos);
  fs::remove_all(root);
}

std::string tiny_lpo(const fs::path& dir) {
  test::write_file(dir / "lpo.yaml", "algorithm: lpo\nenv:\n  name: pointmass\n");
  return "--config " + (dir / "lpo.yaml").string() +
         " es.population=4 es.lifetimes=2 es.eval_every=2 es.checkpoint_every=1 lifetime.updates=3"
         " lifetime.episodes_per_update=6 lifetime.eval_episodes=6 policy.hidden=8 value.hidden=8 threads=1"
         " pg.epochs=2 pg.minibatches=2 drift.hidden=4 es.sigma=0.5 es.fitness=return --quiet";
}

// meta-train `cfg` for `gens` generations into root/full, and stopped after
// 2 then resumed into root/part: the rows must be equal. Generation 1's mean
// is the objective at zero (its lifetimes equal those of the zero objective
// on the same seeds); generation 2's mean differs.
void expect_resume_identical(const fs::path& root, const std::string& cfg, size_t gens) {
  auto r = test::run_ml3(("meta-train " + cfg + " --out " + (root / "full").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_ml3(("meta-train " + cfg + " --out " + (root / "part").string() + " --stop-after 2"));
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_ml3(("meta-train --quiet --resume " + (root / "part").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  const auto rows_full = test::metric_rows(root / "full"), rows_part = test::metric_rows(root / "part");
  ASSERT_EQ(rows_full.size(), gens);
  ASSERT_EQ(rows_full.size(), rows_part.size());
  for (size_t i = 0; i < rows_full.size(); ++i) EXPECT_EQ(rows_full[i], rows_part[i]) << "generation " << i + 1;
  const auto g1 = nlohmann::json::parse(rows_full[0]), g2 = nlohmann::json::parse(rows_full[1]);
  EXPECT_EQ(g1["eval_center_fitness"], g1["eval_ppo_fitness"]);
  EXPECT_NE(g2["eval_center_fitness"], g2["eval_ppo_fitness"]);
}

// meta-train of lpo: a run stopped after generation 2 and resumed gives the
// numbers and the drift of an uninterrupted run; the drift moved (its output
// layer is no longer zero); bad keys are refused with the key named; `ml3
// train --loss` takes the drift file as PPO's ppo.drift.
TEST(Lpo, MetaTrainResumesIdenticallyAndWritesADrift) {
  const auto root = test::temp_dir("lpo_meta");
  const std::string cfg = tiny_lpo(root) + " es.generations=4";
  expect_resume_identical(root, cfg, 4);
  if (HasFatalFailure()) return;
  const Drift full = Drift::load((root / "full" / "lpo.drift").string());
  EXPECT_EQ(full.params(), Drift::load((root / "part" / "lpo.drift").string()).params());
  double out_norm = 0;  // the output layer left zero
  for (size_t i = full.num_params() - 5; i < full.num_params(); ++i) out_norm += std::abs(full.params()[i]);
  EXPECT_GT(out_norm, 0.0);
  EXPECT_TRUE(fs::exists(root / "full" / "meta_curve.png"));
  // Bad input: one message naming the key.
  auto r = test::run_ml3(("meta-train " + cfg + " es.population=5 --out " + (root / "odd").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("es.population"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(root / "odd"));
  r = test::run_ml3(("meta-train " + cfg + " pg.backend=torch --out " + (root / "torch").string()));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("pg.backend"), std::string::npos) << r.out;
  // ml3 compare with the drift as a method (PPO + ppo.drift) against PPO: a
  // learned objective, compared pairwise with the baseline, its cost shown.
  test::write_file(root / "c.yaml",
                   "env: {name: pointmass}\npolicy: {hidden: [8]}\nvalue: {hidden: [8]}\n"
                   "compare: {seeds: 2, updates: 2, episodes_per_update: 4, eval_every: 1, eval_episodes: 4}\n"
                   "methods:\n  lpo: {kind: ppo, pg: {epochs: 1, minibatches: 1}, ppo: {drift: " +
                       (root / "full" / "lpo.drift").string() + "}}\n"
                   "  ppo: {kind: ppo, pg: {epochs: 1, minibatches: 1}}\n");
  r = test::run_ml3("compare --quiet --json --config " + (root / "c.yaml").string() + " --out " + (root / "cmp").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  ASSERT_EQ(j["comparisons"].size(), 1u) << r.out;
  EXPECT_EQ(j["comparisons"][0]["method"], "lpo") << r.out;
  EXPECT_EQ(j["comparisons"][0]["baseline"], "ppo") << r.out;
  // ml3 train --loss with a drift file: PPO with ppo.drift.
  r = test::run_ml3(("train --quiet --loss " + (root / "full" / "lpo.drift").string() +
                            " env.name=pointmass train.iterations=2 train.episodes_per_iteration=4 "
                            "train.eval_episodes=4 policy.hidden=8 value.hidden=8 --print-config"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("algorithm: ppo"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lpo.drift"), std::string::npos) << r.out;
  fs::remove_all(root);
}

// es.objective ml3_loss: ES over ML3's own loss network (anchored to PPO's
// surrogate), applied by the learned_loss rule. A run stopped after
// generation 2 and resumed equals an uninterrupted one (with the loss's
// normalisation, set once from the anchor's lifetime, restored from the
// checkpoint); generation 1's mean is the anchor alone; lpo.ml3 is a loss
// file that `ml3 train --loss` applies; bad keys are refused by name.
TEST(Lpo, Ml3LossObjectiveResumesIdenticallyAndWritesALossFile) {
  const auto root = test::temp_dir("lpo_ml3");
  const std::string cfg = tiny_lpo(root) +
                          " es.objective=ml3_loss es.generations=3 es.lifetimes=1 policy.obs_norm=false loss.hidden=4"
                          " learned_loss.optimizer=adam learned_loss.lr=0.01 learned_loss.steps=2";
  expect_resume_identical(root, cfg, 3);
  if (HasFatalFailure()) return;
  Params phi, phi_part;
  nlohmann::json meta;
  const LearnedLoss loss = LearnedLoss::load((root / "full" / "lpo.ml3").string(), &phi, &meta);
  LearnedLoss::load((root / "part" / "lpo.ml3").string(), &phi_part);
  ASSERT_EQ(phi.size(), phi_part.size());
  for (size_t i = 0; i < phi.size(); ++i) EXPECT_TRUE(torch::equal(phi[i], phi_part[i])) << "tensor " << i;
  EXPECT_GT(loss.stats_count(), 0.0);                    // normalised by the anchor's features
  EXPECT_GT(phi.back().abs().sum().item<double>() + phi.rbegin()[1].abs().sum().item<double>(), 0.0);
  EXPECT_EQ(meta["inner_optimizer"], "adam");
  EXPECT_EQ(meta["objective"], "ml3_loss");
  // ml3 train --loss with it: the learned_loss rule, as meta-trained.
  test::write_file(root / "train.yaml", "env:\n  name: pointmass\n");
  auto r = test::run_ml3(("train --quiet --config " + (root / "train.yaml").string() + " --loss " +
                     (root / "full" / "lpo.ml3").string() + " train.iterations=2 train.episodes_per_iteration=4 train.eval_episodes=4"
                     " policy.hidden=8 policy.obs_norm=false learned_loss.optimizer=adam learned_loss.steps=2 --out " +
                     (root / "train").string()));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(test::metric_rows(root / "train").size(), 2u);
  // Bad input: one message naming the key, no run folder.
  for (const char* bad : {"policy.obs_norm=true", "loss.target=true"}) {
    r = test::run_ml3(("meta-train " + cfg + " " + bad + " --out " + (root / "bad").string()));
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.out.find(std::string(bad).substr(0, std::string(bad).find('='))), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(root / "bad")) << bad;
  }
  fs::remove_all(root);
}

// es.tasks: meta-training across a family of environments. Lifetime j runs
// task j mod n, and only the environment changes: a "family" of one task
// named twice equals the single-task run; two tasks give other lifetimes.
// Tasks with other sizes or options, unknown names, and es.lifetimes not a
// multiple of the task count are refused before any lifetime, by key.
TEST(Lpo, FamilyTasksRunTheirOwnLifetimesAndRefuseMismatches) {
  const auto root = test::temp_dir("lpo_family");
  test::write_file(root / "lpo.yaml", "algorithm: lpo\nenv:\n  name: arm7_reach\n  episode_steps: 10\n");
  const std::string cfg = "--config " + (root / "lpo.yaml").string() +
                          " es.population=2 es.lifetimes=2 es.generations=2 es.eval_every=1 lifetime.updates=2"
                          " lifetime.episodes_per_update=4 lifetime.eval_episodes=4 policy.hidden=8 value.hidden=8"
                          " threads=1 pg.epochs=1 pg.minibatches=1 drift.hidden=4 es.fitness=return --quiet";
  auto run = [&](const std::string& extra, const std::string& out) {
    const auto r = test::run_ml3("meta-train " + cfg + " " + extra + " --out " + (root / out).string());
    EXPECT_EQ(r.code, 0) << r.out;
    return test::metric_rows(root / out);
  };
  const auto single = run("", "single");
  const auto same = run("es.tasks=arm7_reach,arm7_reach", "same");
  const auto family = run("es.tasks=arm7_reach,arm7_button", "family");
  ASSERT_EQ(single.size(), 2u);
  EXPECT_EQ(single, same);
  EXPECT_NE(single, family);
  nlohmann::json meta;
  Drift::load((root / "family" / "lpo.drift").string(), &meta);
  EXPECT_EQ(meta["tasks"], "arm7_reach,arm7_button");
  for (const auto& [bad, key] : std::vector<std::pair<std::string, std::string>>{
           {"es.tasks=arm7_reach,reacher", "key 'es.tasks': 'reacher' has other env options"},
           {"es.tasks=arm7_reach,arm7_grasp", "key 'es.tasks': unknown environment 'arm7_grasp'"},
           {"es.tasks=arm7_reach,arm7_push es.lifetimes=3", "key 'es.lifetimes' (3) must be a multiple"}}) {
    const auto r = test::run_ml3("meta-train " + cfg + " " + bad + " --out " + (root / "bad").string());
    EXPECT_EQ(r.code, 1) << bad;
    EXPECT_NE(r.out.find(key), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(root / "bad")) << bad;
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace ml3
