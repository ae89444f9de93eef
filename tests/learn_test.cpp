// Tests of the learning core: networks, objectives, GAE, Adam, archives, and
// the trainer end to end (small, fast, fixed seeds).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/archive.h"
#include "core/error.h"
#include "deploy/export.h"
#include "src/policy/pg.h"
#include "src/run/algorithm.h"
#include "src/policy/fast_pg.h"
#include "src/policy/trainer.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace ml3 {
namespace {

using test::error_of;

TEST(FunctionalMlp, ForwardMatchesManualComputationAndInitIsSeeded) {
  FunctionalMlp mlp({3, 4, 2}, Activation::Tanh);
  const Params p = mlp.init(5, 1.0, true);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_TRUE(torch::equal(p[0], mlp.init(5, 1.0, true)[0]));
  EXPECT_FALSE(torch::equal(p[0], mlp.init(6, 1.0, true)[0]));
  const Tensor x = torch::randn({5, 3}, torch::kFloat64);
  const Tensor expected = torch::tanh(x.mm(p[0]) + p[1]).mm(p[2]) + p[3];
  EXPECT_TRUE(torch::allclose(mlp.forward(x, p), expected));
  // Leading dimensions are kept.
  EXPECT_EQ(mlp.forward(torch::zeros({2, 3, 3}, torch::kFloat64), p).sizes(), torch::IntArrayRef({2, 3, 2}));
}

TEST(FunctionalMlp, UpdatedParamsStayDifferentiable) {
  // theta' = theta - a * dL/dtheta with create_graph: d(loss(theta'))/d(theta)
  // exists (the mechanism ML3's inner step relies on).
  FunctionalMlp mlp({1, 8, 1}, Activation::Tanh);
  Params p = mlp.init(1, 1.0, true);
  const Tensor x = torch::linspace(-1, 1, 16, torch::kFloat64).unsqueeze(1);
  const Tensor l1 = mlp.forward(x, p).pow(2).mean();
  auto g = torch::autograd::grad({l1}, p, {}, true, true);
  Params q;
  for (size_t i = 0; i < p.size(); ++i) q.push_back(p[i] - 0.1 * g[i]);
  const Tensor l2 = (mlp.forward(x, q) - x).pow(2).mean();
  auto g2 = torch::autograd::grad({l2}, {p[0]});
  EXPECT_GT(g2[0].abs().sum().item<double>(), 0.0);
}

TEST(GaussianPolicy, LogProbAndEntropyMatchClosedForm) {
  PolicyConfig pc;
  pc.hidden = {8};
  GaussianPolicy pol(3, 2, pc);
  const Params p = pol.init(3, true);
  const Tensor mean = torch::tensor({{0.1, -0.2}}, torch::kFloat64);
  const Tensor ls = torch::tensor({-0.5, 0.3}, torch::kFloat64);
  const Tensor a = torch::tensor({{0.4, 0.0}}, torch::kFloat64);
  double expected = 0;
  const double m[2] = {0.1, -0.2}, s[2] = {-0.5, 0.3}, av[2] = {0.4, 0.0};
  for (int j = 0; j < 2; ++j) {
    const double z = (av[j] - m[j]) / std::exp(s[j]);
    expected += -0.5 * z * z - s[j] - 0.5 * std::log(2 * M_PI);
  }
  EXPECT_NEAR(pol.log_prob(mean, ls, a).item<double>(), expected, 1e-12);
  EXPECT_NEAR(pol.entropy(ls).item<double>(), (-0.5 + 0.3) + 2 * 0.5 * (1 + std::log(2 * M_PI)), 1e-12);
  // Initial log-std and clamping.
  EXPECT_NEAR(pol.log_std(p)[0].item<double>(), -0.5, 1e-12);
  Params big = p;
  big.back() = torch::full({2}, 7.0, torch::kFloat64);
  EXPECT_NEAR(pol.log_std(big)[0].item<double>(), 1.0, 1e-12);
}

TEST(ObsNormalizer, MatchesDirectStatisticsAndRoundTrips) {
  ObsNormalizer n(2, true);
  std::vector<double> a = {1, 10, 2, 20, 3, 30}, b = {4, 40, 5, 50};
  n.update(a.data(), 3);
  n.update(b.data(), 2);
  // mean 3, 30; population var 2, 200
  const double x[2] = {5, 30};
  float out[2];
  n.normalize(x, out, 1);
  EXPECT_NEAR(out[0], 2.0 / std::sqrt(2.0), 1e-5);
  EXPECT_NEAR(out[1], 0.0, 1e-6);
  Archive ar("test");
  n.save(ar, "n/");
  ObsNormalizer m(2, false);
  m.load(ar, "n/");
  float out2[2];
  m.normalize(x, out2, 1);
  EXPECT_EQ(out[0], out2[0]);
  ObsNormalizer wrong(3, true);
  EXPECT_THROW(wrong.load(ar, "n/"), Error);
}

// A hand-made batch: env 0 runs 3 steps and is truncated (bootstrap 10);
// env 1 terminates at t=1 (no bootstrap) and is masked after.
Batch tiny_batch() {
  Batch b;
  b.T = 3, b.N = 2;
  b.rewards = torch::tensor({{1.f, 1.f}, {1.f, 2.f}, {1.f, 0.f}});
  b.values = torch::tensor({{0.5f, 0.5f}, {0.5f, 0.5f}, {0.5f, 0.f}});
  b.terminated = torch::tensor({{0.f, 0.f}, {0.f, 1.f}, {0.f, 0.f}});
  b.truncated = torch::tensor({{0.f, 0.f}, {0.f, 0.f}, {1.f, 0.f}});
  b.mask = torch::tensor({{1.f, 1.f}, {1.f, 1.f}, {1.f, 0.f}});
  b.bootstrap = torch::tensor({{0.f, 0.f}, {0.f, 0.f}, {10.f, 0.f}});
  return b;
}

TEST(Gae, TruncationBootstrapsAndTerminationDoesNot) {
  Batch b = tiny_batch();
  const double g = 0.9;
  compute_gae(b, g, 1.0);
  // env 0: return-to-go with bootstrap: G2 = 1 + .9*10, G1 = 1 + .9*G2, G0 = 1 + .9*G1
  const double G2 = 1 + g * 10, G1 = 1 + g * G2, G0 = 1 + g * G1;
  EXPECT_NEAR(b.returns[2][0].item<float>(), G2, 1e-4);
  EXPECT_NEAR(b.returns[1][0].item<float>(), G1, 1e-4);
  EXPECT_NEAR(b.returns[0][0].item<float>(), G0, 1e-4);
  // env 1 terminated at t=1: no bootstrap.
  EXPECT_NEAR(b.returns[1][1].item<float>(), 2.0, 1e-5);
  EXPECT_NEAR(b.returns[0][1].item<float>(), 1 + g * 2.0, 1e-5);
  EXPECT_NEAR(b.advantages[2][1].item<float>(), 0.0, 1e-6);  // masked row
  // lambda = 0: one-step TD errors.
  Batch c = tiny_batch();
  compute_gae(c, g, 0.0);
  EXPECT_NEAR(c.advantages[0][0].item<float>(), 1 + g * 0.5 - 0.5, 1e-5);
  EXPECT_NEAR(c.advantages[2][0].item<float>(), 1 + g * 10 - 0.5, 1e-5);
}

TEST(Objectives, ReinforceAndPpoClipping) {
  Minibatch mb;
  mb.advantages = torch::tensor({1.0, -2.0});
  mb.old_logp = torch::tensor({0.0, 0.0});
  PolicyEval ev;
  ev.logp = torch::tensor({0.0, 0.0});
  EXPECT_NEAR(ReinforceObjective().policy_loss(mb, ev, nullptr).item<double>(), 0.0, 1e-12);
  ev.logp = torch::tensor({std::log(2.0), std::log(0.5)});
  EXPECT_NEAR(ReinforceObjective().policy_loss(mb, ev, nullptr).item<double>(),
              -(std::log(2.0) * 1 + std::log(0.5) * -2) / 2, 1e-6);
  // ratio 2 with A>0 is clipped at 1.2; ratio 0.5 with A<0 is clipped at 0.8.
  LossStats st;
  EXPECT_NEAR(PpoObjective(0.2).policy_loss(mb, ev, &st).item<double>(), -(1.2 * 1 + 0.8 * -2) / 2, 1e-6);
  EXPECT_NEAR(st.clip_fraction, 1.0, 1e-9);
}

TEST(Adam, MatchesTorchAdam) {
  auto w = torch::tensor({1.0, -2.0, 3.0}, torch::kFloat64).set_requires_grad(true);
  auto v = w.detach().clone().set_requires_grad(true);
  torch::optim::Adam ref({v}, torch::optim::AdamOptions(0.1).eps(1e-8));
  Params mine{w};
  Adam adam(mine, 1e-8);
  for (int i = 0; i < 5; ++i) {
    auto g = torch::autograd::grad({(mine[0] * mine[0]).sum()}, mine);
    adam.step(mine, g, 0.1);
    ref.zero_grad();
    (v * v).sum().backward();
    ref.step();
  }
  EXPECT_TRUE(torch::allclose(mine[0], v, 1e-12, 1e-12));
}

// ---- the fast backend (pg.backend = fast) against LibTorch autograd ----------------
// Largest |a - b| over two float vectors, relative to 1 + the reference's largest magnitude.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0, scale = 1;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return worst / scale;
}
std::vector<float> flat_of(const std::vector<Tensor>& ts) {
  std::vector<float> out;
  for (const auto& t : ts) {
    const Tensor c = t.detach().to(torch::kFloat32).contiguous();
    out.insert(out.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return out;
}

struct NetShape {
  int obs, act;
  std::vector<int> hidden;
  Activation act_fn;
  Activation fast_act;
};
const NetShape kShapes[] = {{11, 2, {64, 64}, Activation::Tanh, Activation::Tanh},
                            {5, 3, {32}, Activation::Relu, Activation::Relu},
                            {7, 2, {16, 16, 16}, Activation::Elu, Activation::Elu}};

// The fast path's products against a double-precision reference, for every
// transpose combination, row counts around the 4-row tile, widths around the
// 16-lane vector and the 64-column tile (and below 16, where BLAS runs), and
// leading dimensions wider than the operands.
TEST(FastPg, SmallGemmMatchesAReferenceProduct) {
  Rng rng(3);
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const int m : {1, 3, 4, 7, 100})
        for (const int n : {2, 16, 17, 64, 65, 130})
          for (const int k : {1, 11, 64, 100}) {
            const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5;
            std::vector<float> a(static_cast<size_t>(ta ? k : m) * lda), b(static_cast<size_t>(tb ? n : k) * ldb);
            for (float& x : a) x = static_cast<float>(rng.uniform(-1.0, 1.0));
            for (float& x : b) x = static_cast<float>(rng.uniform(-1.0, 1.0));
            std::vector<float> c(static_cast<size_t>(m) * n, std::nanf(""));
            small_gemm(ta, tb, m, n, k, a.data(), lda, b.data(), ldb, c.data());
            for (int i = 0; i < m; ++i)
              for (int j = 0; j < n; ++j) {
                double ref = 0, mag = 0;
                for (int p = 0; p < k; ++p) {
                  const double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
                  ref += x * y;
                  mag += std::abs(x * y);
                }
                ASSERT_NEAR(c[i * n + j], ref, 1e-6 * mag + 1e-7)
                    << "ta " << ta << " tb " << tb << " m " << m << " n " << n << " k " << k << " at " << i << "," << j;
              }
            // A row's result does not depend on how many rows come with it
            // (promised by the AVX-512 kernel, not by every BLAS).
#if defined(__x86_64__) && defined(__GNUC__)
            if (n < 16 || !__builtin_cpu_supports("avx512f")) continue;
#else
            continue;
#endif
            std::vector<float> row(n);
            small_gemm(ta, tb, 1, n, k, a.data() + (ta ? m - 1 : static_cast<size_t>(m - 1) * lda), lda, b.data(), ldb,
                       row.data());
            for (int j = 0; j < n; ++j) ASSERT_EQ(row[j], c[(m - 1) * n + j]) << m << " " << n << " " << k;
          }
}

TEST(FastPg, LossesAndGradientsMatchLibTorchOnRandomBatches) {
  for (const NetShape& s : kShapes) {
    SCOPED_TRACE("hidden " + std::to_string(s.hidden.size()) + " layers, first " + std::to_string(s.hidden[0]));
    PolicyConfig pc;
    pc.hidden = s.hidden;
    pc.activation = s.act_fn;
    const GaussianPolicy pol(s.obs, s.act, pc);
    std::vector<int> vsizes{s.obs};
    vsizes.insert(vsizes.end(), s.hidden.begin(), s.hidden.end());
    vsizes.push_back(1);
    const FunctionalMlp vnet(vsizes, s.act_fn);
    Params pp = pol.init(5), vp = vnet.init(6);
    {
      // Weights of a trained size (the policy head starts at 0.01x), a log-std
      // per dimension, one of them beyond the clamp (no gradient there).
      torch::NoGradGuard ng;
      pp[pp.size() - 2].mul_(100);
      pp.back().copy_(torch::linspace(-5.5, 0.3, s.act));
    }
    const int B = 100;
    torch::manual_seed(3);
    Minibatch mb;
    mb.obs = torch::randn({B, s.obs});
    mb.actions = torch::randn({B, s.act});
    mb.advantages = torch::randn({B});
    mb.returns = torch::randn({B});
    {
      // Old log-probs near the current ones: ratios inside and outside the clip range.
      torch::NoGradGuard ng;
      const PolicyEval ev = policy_eval(pol, pp, mb);
      mb.old_logp = (ev.logp + 0.4 * torch::randn({B})).contiguous();
    }
    FastPolicyGradient fast(pol.mlp().sizes(), s.fast_act, pc.log_std_min, pc.log_std_max, vsizes, s.fast_act);
    FastRows rows{mb.obs.data_ptr<float>(),        mb.actions.data_ptr<float>(), mb.old_logp.data_ptr<float>(),
                  mb.advantages.data_ptr<float>(), mb.returns.data_ptr<float>(), B};
    fast.gather(rows, nullptr, B);
    const std::vector<float> pflat = flat_of(pp), vflat = flat_of(vp);
    std::vector<float> grad(fast.policy_params());
    for (const double entropy_coef : {0.0, 0.01}) {
      const PpoObjective ppo(0.2);
      const ReinforceObjective reinforce;
      for (const Objective* obj : {static_cast<const Objective*>(&ppo), static_cast<const Objective*>(&reinforce)}) {
        SCOPED_TRACE(obj->name() + " entropy " + std::to_string(entropy_coef));
        const PolicyEval ev = policy_eval(pol, pp, mb);
        LossStats ls;
        const Tensor pg_loss = obj->policy_loss(mb, ev, &ls);
        const auto want = torch::autograd::grad({pg_loss - entropy_coef * ev.entropy}, pp);
        const FastPolicyStats got = fast.policy_loss_grad(pflat.data(), obj->fast_kind(), obj->clip(), entropy_coef,
                                                          grad.data());
        EXPECT_NEAR(got.loss, pg_loss.item<double>(), 1e-5 * (1 + std::abs(pg_loss.item<double>())));
        EXPECT_NEAR(got.entropy, ev.entropy.item<double>(), 1e-5);
        EXPECT_NEAR(got.approx_kl, ls.approx_kl, 1e-5);
        EXPECT_NEAR(got.clip_fraction, ls.clip_fraction, 1e-6);
        EXPECT_LT(rel_diff(grad, flat_of(want)), 1e-5);
        if (obj == &ppo) {
          EXPECT_GT(ls.clip_fraction, 0.1) << "the batch should exercise the clipping";
        }
      }
    }
    EXPECT_EQ(grad[grad.size() - s.act], 0.f) << "the log-std below the clamp gets no gradient";
    EXPECT_NE(grad.back(), 0.f);
    std::vector<float> vgrad(fast.value_params());
    const Tensor v = vnet.forward(mb.obs, vp).squeeze(-1);
    const Tensor vloss = 0.5 * (v - mb.returns).pow(2).mean();
    const auto vwant = torch::autograd::grad({vloss}, vp);
    EXPECT_NEAR(fast.value_loss_grad(vflat.data(), vgrad.data()), vloss.item<double>(), 1e-5);
    EXPECT_LT(rel_diff(vgrad, flat_of(vwant)), 1e-5);
    // Gradient clipping as clip_grad_norm does it.
    auto gt = vwant;
    const double norm_want = clip_grad_norm(gt, 0.1);
    EXPECT_NEAR(clip_grad_norm_flat(vgrad.data(), vgrad.size(), 0.1), norm_want, 1e-5 * norm_want);
    EXPECT_LT(rel_diff(vgrad, flat_of(gt)), 1e-5);
  }
}

// One whole update (PPO: 2 epochs x 4 minibatches; REINFORCE: one step on all
// rows + value fitting) on a collected batch, both backends from the same
// parameters: the same parameters, optimiser state and statistics to 1e-5.
TEST(FastPg, WholeUpdateMatchesLibTorch) {
  for (const char* algo : {"ppo", "reinforce"}) {
    for (const char* shape : {"64,64", "32"}) {
      SCOPED_TRACE(std::string(algo) + " " + shape);
      std::vector<Params> pps, vps;
      Params p0;
      std::vector<UpdateStats> stats;
      std::vector<std::vector<float>> adam_states;  // m and v of both networks
      for (const char* backend : {"torch", "fast"}) {
        const Config c = load_config(Command::Train, "",
                                     {"env.name=reacher", std::string("algorithm=") + algo,
                                      std::string("policy.hidden=") + shape, std::string("value.hidden=") + shape,
                                      "pg.epochs=2", "pg.minibatches=4", "optim.lr=3e-3",
                                      std::string("pg.backend=") + backend});
        VecEnv venv("reacher", c.subset("env."), 8, 1);
        const PolicyModels m = make_policy_models(c, venv.spec());
        auto update = find_algorithm(algo).rule().make_update(c, "", m);
        Params pp = m.policy.init(1), vp = m.value_net.init(2);
        update->init(pp, vp, 3);
        p0 = clone_params(pp, false);
        Batch b = collect(venv, m.policy, pp, m.norm, sample_tasks(venv.env(0), Split::Train, 4, 8), 5, false);
        compute_rtg(b, update->gamma());
        compute_values(b, m.value_net, vp);
        compute_gae(b, update->gamma(), update->gae_lambda());
        for (int k = 0; k < 2; ++k) stats.push_back(update->update(b, pp, vp, 1.0, 7 + k));
        pps.push_back(pp), vps.push_back(vp);
        Archive a;
        update->save(a, "u/");
        std::vector<float> state;
        for (const auto& [name, blob] : a.blobs()) {
          const auto* f = reinterpret_cast<const float*>(blob.bytes.data());
          if (blob.dtype == "f32") state.insert(state.end(), f, f + blob.bytes.size() / 4);
        }
        adam_states.push_back(state);
      }
      EXPECT_LT(rel_diff(flat_of(pps[1]), flat_of(pps[0])), 1e-5);
      EXPECT_LT(rel_diff(flat_of(vps[1]), flat_of(vps[0])), 1e-5);
      EXPECT_GT(rel_diff(flat_of(pps[0]), flat_of(p0)), 1e-4) << "the update should move the parameters";
      for (int k = 0; k < 2; ++k) {
        const UpdateStats &t = stats[k], &f = stats[2 + k];
        EXPECT_NEAR(f.policy_loss, t.policy_loss, 1e-5);
        EXPECT_NEAR(f.value_loss, t.value_loss, 1e-5 * (1 + t.value_loss));
        EXPECT_NEAR(f.approx_kl, t.approx_kl, 1e-5);
        EXPECT_NEAR(f.grad_norm, t.grad_norm, 1e-5 * (1 + t.grad_norm));
        EXPECT_EQ(f.policy_updates, t.policy_updates);
      }
      ASSERT_EQ(adam_states[0].size(), adam_states[1].size());
      double worst = 0, scale = 0;
      for (size_t i = 0; i < adam_states[0].size(); ++i) {
        worst = std::max(worst, std::abs(static_cast<double>(adam_states[0][i]) - adam_states[1][i]));
        scale = std::max(scale, std::abs(static_cast<double>(adam_states[0][i])));
      }
      EXPECT_LT(worst, 1e-5 * scale) << "Adam's moments";
    }
  }
}

TEST(Archive, RoundTripIsExactAndCorruptionIsRejected) {
  const auto dir = test::temp_dir("archive");
  const std::string path = (dir / "a.ckpt").string();
  Archive a("checkpoint");
  a.meta()["x"] = 3;
  const Params p = FunctionalMlp({2, 3, 1}, Activation::Tanh).init(1);
  put_params(a, "p/", p);
  a.save(path);
  const Archive b = Archive::load(path, "checkpoint");
  EXPECT_EQ(b.meta()["x"], 3);
  const Params q = get_params(b, "p/", p.size());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_TRUE(torch::equal(p[i], q[i]));
  EXPECT_NE(error_of([&] { Archive::load(path, "loss"); }).find("expected a loss file"), std::string::npos);
  // Flip one byte in the middle.
  std::string bytes = test::read_text(path);
  bytes[bytes.size() / 2] ^= 0x5A;
  test::write_file(dir / "corrupt.ckpt", bytes);
  EXPECT_NE(error_of([&] { Archive::load((dir / "corrupt.ckpt").string()); }).find("checksum mismatch"),
            std::string::npos);
  test::write_file(dir / "short.ckpt", test::read_text(path).substr(0, 40));
  EXPECT_NE(error_of([&] { Archive::load((dir / "short.ckpt").string()); }).find("corrupt"), std::string::npos);
  test::write_file(dir / "text.ckpt", "hello");
  EXPECT_NE(error_of([&] { Archive::load((dir / "text.ckpt").string()); }).find("not an ml3 file"), std::string::npos);
  EXPECT_NE(error_of([&] { Archive::load((dir / "missing.ckpt").string()); }).find("cannot open"), std::string::npos);
}

TEST(Collect, DeterministicAcrossThreadCountsAndLogProbsConsistent) {
  const Config opts(find_env("reacher").schema);
  PolicyConfig pc;
  pc.hidden = {16};
  std::vector<Batch> batches;
  for (int threads : {1, 2}) {
    VecEnv venv("reacher", opts, 6, threads);
    GaussianPolicy pol(venv.spec().obs_dim, venv.spec().act_dim, pc);
    const Params p = pol.init(1);
    ObsNormalizer norm(venv.spec().obs_dim, true);
    const auto tasks = sample_tasks(venv.env(0), Split::Train, 0, 6);
    batches.push_back(collect(venv, pol, p, norm, tasks, 42, false));
    // Stored log-probs are those of the policy for the stored actions.
    Batch& b = batches.back();
    torch::NoGradGuard ng;
    const Tensor lp = pol.log_prob(pol.mean(b.obs, p), pol.log_std(p), b.actions);
    EXPECT_TRUE(torch::allclose(lp, b.logp, 1e-4, 1e-4));
    EXPECT_EQ(b.mask.sum().item<float>(), 6 * 50);
    EXPECT_EQ(b.truncated.sum().item<float>(), 6);
  }
  EXPECT_TRUE(torch::equal(batches[0].actions, batches[1].actions));
  EXPECT_TRUE(torch::equal(batches[0].rewards, batches[1].rewards));
}

// Expert labels (DAgger-style shaping) leave the episodes as they were and
// hold the scripted expert's action in each visited state.
TEST(Collect, ExpertLabelsAreTheExpertsActionsAtTheVisitedStates) {
  const Config opts(find_env("reacher").schema);
  PolicyConfig pc;
  pc.hidden = {16};
  VecEnv venv("reacher", opts, 4, 2);
  GaussianPolicy pol(venv.spec().obs_dim, venv.spec().act_dim, pc);
  const Params p = pol.init(1);
  ObsNormalizer raw(venv.spec().obs_dim, false);
  const auto tasks = sample_tasks(venv.env(0), Split::Train, 0, 4);
  const Batch plain = collect(venv, pol, p, raw, tasks, 42, false);
  const Batch labelled = collect(venv, pol, p, raw, tasks, 42, false, true);
  EXPECT_FALSE(plain.expert.defined());
  EXPECT_TRUE(torch::equal(plain.obs, labelled.obs));
  EXPECT_TRUE(torch::equal(plain.rewards, labelled.rewards));
  ASSERT_EQ(labelled.expert.sizes(), plain.actions.sizes());
  // Replay the first episode's actions and ask the expert at every state.
  std::vector<uint64_t> seeds(4);
  for (int i = 0; i < 4; ++i) seeds[i] = mix_seed(42, i);
  const int od = venv.spec().obs_dim, ad = venv.spec().act_dim;
  std::vector<double> obs(4 * od), act(4 * ad), expert(4 * ad), rew(4);
  std::vector<uint8_t> term(4), trunc(4);
  std::vector<StepInfo> info(4);
  venv.reset(seeds, tasks, obs.data());
  double max_err = 0;
  for (int t = 0; t < labelled.T; ++t) {
    venv.expert_actions(expert.data());
    for (int k = 0; k < 4 * ad; ++k) {
      max_err = std::max(max_err, std::abs(expert[k] - labelled.expert[t].reshape({-1})[k].item<double>()));
      act[k] = labelled.actions[t].reshape({-1})[k].item<double>();
    }
    venv.step(act.data(), obs.data(), rew.data(), term.data(), trunc.data(), info.data());
  }
  EXPECT_LT(max_err, 1e-5);  // float32 storage
  EXPECT_GT(labelled.expert.abs().max().item<double>(), 0.1);  // not all zeros
  const Minibatch mb = flatten_batch(labelled);
  EXPECT_EQ(mb.expert.size(0), mb.obs.size(0));
}

// ---- trainer end to end ------------------------------------------------------
std::vector<std::string> tiny(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> o = {"env.name=pointmass",      "train.iterations=4",     "train.episodes_per_iteration=8",
                                "train.checkpoint_every=2", "train.eval_every=2",     "train.eval_episodes=10",
                                "pg.epochs=2",              "pg.minibatches=4",       "policy.hidden=16",
                                "value.hidden=16",          "threads=2"};
  o.insert(o.end(), extra.begin(), extra.end());
  return o;
}

RunResult train_tiny(const fs::path& dir, const std::vector<std::string>& overrides, int stop_after = -1,
                        bool force = true) {
  RunArgs a;
  a.overrides = overrides;
  a.config_path = "";
  a.out_dir = dir.string();
  a.force = force;
  a.quiet = true;
  a.stop_after = stop_after;
  // train needs a config file: write one holding the overrides.
  const fs::path cfg = dir.parent_path() / (dir.filename().string() + ".yaml");
  test::write_file(cfg, "env:\n  name: pointmass\n");
  a.config_path = cfg.string();
  return run(a);
}

using test::metric_rows;

TEST(Trainer, WritesARunFolderAndIsDeterministic) {
  const auto root = test::temp_dir("train_det");
  const RunResult s = train_tiny(root / "a", tiny());
  for (const char* f : {"config.yaml", "metrics.csv", "metrics.jsonl", "summary.json", "learning_curve.png",
                        "checkpoints/last.ckpt", "checkpoints/iter_000002.ckpt", "checkpoints/iter_000004.ckpt"})
    EXPECT_TRUE(fs::exists(root / "a" / f)) << f;
  const auto j = nlohmann::json::parse(test::read_text(root / "a" / "summary.json"));
  for (const char* k : {"env", "algorithm", "env_steps", "wall_seconds", "final_success_rate", "final_distance_mean", "seed"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["env_steps"], 4 * 8 * 50);
  EXPECT_EQ(metric_rows(root / "a").size(), 4u);
  train_tiny(root / "b", tiny());
  EXPECT_EQ(metric_rows(root / "a"), metric_rows(root / "b"));
  train_tiny(root / "c", tiny({"seed=2"}));
  EXPECT_NE(metric_rows(root / "a"), metric_rows(root / "c"));
}

// Runs `overrides` stopped after 3 of 4 iterations and resumed into root/split;
// expects the metrics and checkpoint bytes of the uninterrupted root/full.
void expect_resume_matches(const fs::path& root, const std::vector<std::string>& overrides) {
  train_tiny(root / "split", overrides, 3);
  EXPECT_FALSE(fs::exists(root / "split" / "summary.json"));
  EXPECT_EQ(metric_rows(root / "split").size(), 3u);
  RunArgs r;
  r.resume_dir = (root / "split").string();
  r.quiet = true;
  run(r);
  EXPECT_EQ(metric_rows(root / "full"), metric_rows(root / "split"));
  const Archive a = Archive::load((root / "full" / "checkpoints" / "last.ckpt").string());
  const Archive b = Archive::load((root / "split" / "checkpoints" / "last.ckpt").string());
  for (const auto& [name, blob] : a.blobs()) EXPECT_EQ(blob.bytes, b.get(name).bytes) << name;
}

TEST(Trainer, ResumedRunMatchesUninterruptedRun) {
  const auto root = test::temp_dir("train_resume");
  train_tiny(root / "full", tiny({"algorithm=reinforce"}));
  expect_resume_matches(root, tiny({"algorithm=reinforce"}));
}

// pg.backend = fast keeps the runner's guarantees: the same numbers for a seed
// (on 1 or 2 env threads), a resumed run equal to the uninterrupted one (the
// flat Adam state is checkpointed as before), and checkpoints ml3 export reads.
TEST(Trainer, FastBackendIsDeterministicResumesExactlyAndExports) {
  const auto root = test::temp_dir("train_fast");
  // threads=2 fits the value network on a second thread beside the policy's
  // steps, threads=1 one after the other: the same numbers (PPO and REINFORCE).
  train_tiny(root / "full", tiny({"pg.backend=fast"}));
  train_tiny(root / "again", tiny({"pg.backend=fast", "threads=1"}));
  EXPECT_EQ(metric_rows(root / "full"), metric_rows(root / "again"));
  train_tiny(root / "rf2", tiny({"pg.backend=fast", "algorithm=reinforce"}));
  train_tiny(root / "rf1", tiny({"pg.backend=fast", "algorithm=reinforce", "threads=1"}));
  EXPECT_EQ(metric_rows(root / "rf2"), metric_rows(root / "rf1"));
  expect_resume_matches(root, tiny({"pg.backend=fast"}));
  const Archive a = Archive::load((root / "full" / "checkpoints" / "last.ckpt").string());
  train_tiny(root / "torch", tiny({"pg.backend=torch"}));
  EXPECT_NE(metric_rows(root / "full"), metric_rows(root / "torch")) << "the backend should be the one configured";
  runtime::Policy deployed(policy_from_checkpoint(a), "exported");
  std::vector<double> obs(deployed.info().obs_dim, 0.1), act(deployed.info().act_dim);
  EXPECT_TRUE(deployed.act(obs.data(), act.data()));
}

TEST(Trainer, RefusesExistingRunFoldersUnlessForced) {
  const auto root = test::temp_dir("train_exists");
  train_tiny(root / "a", tiny({"train.iterations=1"}));
  EXPECT_NE(error_of([&] { train_tiny(root / "a", tiny({"train.iterations=1"}), -1, false); }).find("already exists"),
            std::string::npos);
  EXPECT_NO_THROW(train_tiny(root / "a", tiny({"train.iterations=1"}), -1, true));
  fs::create_directories(root / "precious");
  test::write_file(root / "precious" / "thesis.tex", "x");
  EXPECT_NE(error_of([&] { train_tiny(root / "precious", tiny({"train.iterations=1"})); }).find("not an ml3 run folder"),
            std::string::npos);
  EXPECT_TRUE(fs::exists(root / "precious" / "thesis.tex"));
}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const auto root = test::temp_dir("train_nan");
  const std::string msg = error_of([&] { train_tiny(root / "a", tiny({"debug.nan_at_iteration=3"})); });
  EXPECT_NE(msg.find("iteration 3: non-finite"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(iteration 2)"), std::string::npos) << msg;
  const Archive last = Archive::load((root / "a" / "checkpoints" / "last.ckpt").string(), "checkpoint");
  EXPECT_EQ(last.meta()["iteration"], 2);
  EXPECT_EQ(metric_rows(root / "a").size(), 2u);
  EXPECT_FALSE(fs::exists(root / "a" / "summary.json"));
}

TEST(Trainer, CorruptCheckpointIsDetectedNotLoaded) {
  const auto root = test::temp_dir("train_corrupt");
  train_tiny(root / "a", tiny(), 2);
  const fs::path ck = root / "a" / "checkpoints" / "last.ckpt";
  std::string bytes = test::read_text(ck);
  test::write_file(ck, bytes.substr(0, bytes.size() - 100));
  RunArgs r;
  r.resume_dir = (root / "a").string();
  r.quiet = true;
  EXPECT_NE(error_of([&] { run(r); }).find("checksum mismatch"), std::string::npos);
  EvalArgs e;
  e.checkpoint = ck.string();
  EXPECT_NE(error_of([&] { run_eval(e); }).find("checksum mismatch"), std::string::npos);
}

TEST(Trainer, PpoImprovesAPointmassPolicy) {
  // 30 iterations x 16 episodes: the deterministic test-split distance must
  // drop well below the untrained policy's.
  const auto root = test::temp_dir("train_learns");
  train_tiny(root / "a", tiny({"train.iterations=30", "train.episodes_per_iteration=16", "train.eval_every=30",
                               "policy.hidden=32,32", "value.hidden=32,32", "pg.epochs=4", "optim.lr=3e-3"}));
  std::ifstream in(root / "a" / "metrics.jsonl");
  std::string line, first, last;
  std::getline(in, first);
  while (std::getline(in, line)) last = line;
  const double d0 = nlohmann::json::parse(first)["final_distance_mean"];
  const auto j = nlohmann::json::parse(test::read_text(root / "a" / "summary.json"));
  EXPECT_LT(j["final_distance_mean"].get<double>(), 0.6 * d0) << "start " << d0;
}

TEST(TrainConfig, ShippedConfigsLoadAndWriteOutEveryKey) {
  for (const char* name : {"pointmass_ppo", "reacher_ppo", "reacher_reinforce", "pusher_ppo", "pointmass_learned_loss", "reacher_learned_loss"}) {
    const std::string path = std::string(ML3_SOURCE_DIR) + "/configs/" + name + ".yaml";
    const Config c = load_config(Command::Train, path, {});
    const std::string text = test::read_text(path);
    for (const auto& d : c.schema().params()) {
      const std::string leaf = d.key.substr(d.key.rfind('.') + 1);
      EXPECT_NE(text.find(leaf + ":"), std::string::npos) << name << " lacks " << d.key;
    }
  }
  const std::string msg = error_of([] { load_config(Command::Train, "", {"env.name=reacher", "optim.lrr=1"}); });
  EXPECT_NE(msg.find("did you mean 'optim.lr'"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { load_config(Command::Train, "", {"optim.lr=1"}); }).find("env.name' is required"), std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::Train, "", {"env.name=reacher", "optim.lr=-1"}); }).find("optim.lr"),
            std::string::npos);
  EXPECT_NE(error_of([] { load_config(Command::Train, "", {"env.name=reacher", "train.episodes_per_iteration=0"}); })
                .find(">= 1"),
            std::string::npos);
}

TEST(Cli, TrainAndEvalCommands) {
  const auto root = test::temp_dir("cli_train");
  test::write_file(root / "c.yaml", "env:\n  name: pointmass\n");
  std::string args = "train --quiet --config " + (root / "c.yaml").string() + " --out " + (root / "run").string();
  for (const auto& o : tiny({"train.iterations=2"})) args += " " + o;
  auto r = test::run_ml3(args);
  ASSERT_EQ(r.code, 0) << r.out;
  r = test::run_ml3(args);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  r = test::run_ml3("eval --run " + (root / "run").string() + " --split ood --episodes 5 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  for (const char* k : {"success_rate", "final_distance_mean", "return_mean", "episodes"}) EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["episodes"], 5);
  EXPECT_EQ(test::run_ml3("train").code, 2);
  EXPECT_EQ(test::run_ml3("eval").code, 2);
  EXPECT_EQ(test::run_ml3("train --config " + (root / "c.yaml").string() + " --lr 3").code, 2);
}

}  // namespace
}  // namespace ml3
