#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "envs/mujoco_env.h"
#include "envs/vec_env.h"
#include "test_util.h"

namespace ml3 {
namespace {

// Every registered environment: the tests below hold for each.
std::vector<std::string> all_envs() {
  std::vector<std::string> names;
  for (const auto& e : env_registry()) names.push_back(e.name);
  return names;
}
const std::vector<std::string> kEnvs = all_envs();

std::string asset_text(const std::string& name) { return embedded_assets().at(name); }

// Fraction of successes of the scripted expert (or of zero actions) over n
// test goals.
double success_rate(const std::string& name, int n, bool expert, const std::vector<std::string>& overrides = {}) {
  Config options(find_env(name).schema);
  options.apply_overrides(overrides);
  VecEnv venv(name, options, n, 2);
  const auto& spec = venv.spec();
  std::vector<uint64_t> seeds(n);
  for (int i = 0; i < n; ++i) seeds[i] = mix_seed(0, i);
  std::vector<double> obs(n * spec.obs_dim), act(n * spec.act_dim, 0.0), rew(n);
  std::vector<uint8_t> term(n), trunc(n);
  std::vector<StepInfo> info(n);
  venv.reset(seeds, sample_tasks(venv.env(0), Split::Test, 0, n), obs.data());
  for (int t = 0; t < spec.episode_steps; ++t) {
    if (expert) venv.expert_actions(act.data());
    venv.step(act.data(), obs.data(), rew.data(), term.data(), trunc.data(), info.data());
  }
  double s = 0;
  for (const auto& i : info) s += i.success;
  return s / n;
}

TEST(Registry, ListsTheSuiteAndRejectsUnknownNames) {
  for (const char* n : {"pointmass", "reacher", "pusher", "gym_pusher", "arm7_reach", "arm7_push", "arm7_pick",
                        "arm7_button", "arm7_slide"})
    EXPECT_EQ(make_env(n)->spec().name, n);
  EXPECT_EQ(env_registry().size(), 9u);
  for (const auto& n : kEnvs) EXPECT_EQ(make_env(n)->spec().name, n);
  try {
    make_env("reachr");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown environment 'reachr'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("reacher"), std::string::npos);
  }
}

TEST(Reacher, SpecMatchesGymnasium) {
  auto env = make_env("reacher");
  const auto& s = env->spec();
  EXPECT_EQ(s.obs_dim, 10);
  EXPECT_EQ(s.act_dim, 2);
  EXPECT_EQ(s.episode_steps, 50);
  EXPECT_EQ(s.frame_skip, 2);
  EXPECT_DOUBLE_EQ(s.timestep, 0.01);
  EXPECT_EQ(s.act_low, std::vector<double>({-1, -1}));
  EXPECT_EQ(s.act_high, std::vector<double>({1, 1}));
}

TEST(Reacher, RewardIsMinusDistanceMinusControlCost) {
  auto env = make_env("reacher");
  env->reset(3, Task{{0.1, 0.05}});
  const StepResult r = env->step({0.5, -0.25});
  EXPECT_NEAR(r.reward, -r.info.distance - (0.25 + 0.0625), 1e-12);
  EXPECT_NEAR(r.info.distance, std::hypot(r.obs[8], r.obs[9]), 1e-12);
}

TEST(Pusher, RewardFollowsGymnasiumPusher) {
  auto env = make_env("pusher");
  const auto obs0 = env->reset(1, Task{{0.35, 0.05}});
  const StepResult r = env->step({0.2, 0.0, -0.4});
  const double d_obj_tip = std::hypot(r.obs[17], r.obs[18]);
  EXPECT_NEAR(r.reward, -r.info.distance - 0.1 * (0.04 + 0.16) - 0.5 * d_obj_tip, 1e-12);
}

TEST(Envs, TruncateAtTheTimeLimitAndNeverTerminate) {
  for (const auto& n : kEnvs) {
    auto env = make_env(n);
    env->reset(0, sample_tasks(*env, Split::Train, 0, 1)[0]);
    std::vector<double> a(env->spec().act_dim, 0.0);
    for (int t = 1; t <= env->spec().episode_steps; ++t) {
      const auto r = env->step(a);
      EXPECT_FALSE(r.terminated);
      EXPECT_EQ(r.truncated, t == env->spec().episode_steps) << n << " step " << t;
    }
    EXPECT_THROW(env->step(a), Error) << n;
  }
}

TEST(Envs, SameSeedSameRollout) {
  for (const auto& n : kEnvs) {
    auto a = make_env(n), b = make_env(n);
    const Task task = sample_tasks(*a, Split::Test, 5, 1)[0];
    EXPECT_EQ(a->reset(11, task), b->reset(11, task));
    EXPECT_NE(a->reset(11, task), a->reset(12, task)) << n << ": the seed must change the initial state";
    a->reset(11, task);
    Rng rng(1);
    for (int t = 0; t < 20; ++t) {
      std::vector<double> act(a->spec().act_dim);
      for (auto& x : act) x = rng.uniform(-1, 1);
      EXPECT_EQ(a->step(act).obs, b->step(act).obs) << n;
    }
  }
}

TEST(Envs, StateGetSetReplaysExactly) {
  for (const auto& n : kEnvs) {
    auto env = make_env(n);
    env->reset(2, sample_tasks(*env, Split::Test, 0, 1)[0]);
    Rng rng(9);
    const int ad = env->spec().act_dim;
    auto random_action = [&] {
      std::vector<double> act(ad);
      for (auto& x : act) x = rng.uniform(-1, 1);
      return act;
    };
    for (int t = 0; t < 10; ++t) env->step(random_action());
    const EnvState saved = env->get_state();
    std::vector<std::vector<double>> actions, first;
    for (int t = 0; t < 15; ++t) {
      actions.push_back(random_action());
      first.push_back(env->step(actions.back()).obs);
    }
    // Restore into a *different* env instance that ran another episode.
    auto other = make_env(n);
    other->reset(99, sample_tasks(*other, Split::Ood, 0, 1)[0]);
    other->set_state(saved);
    for (int t = 0; t < 15; ++t) {
      const auto obs = other->step(actions[t]).obs;
      ASSERT_EQ(0, std::memcmp(obs.data(), first[t].data(), obs.size() * sizeof(double))) << n << " t=" << t;
    }
  }
}

TEST(VecEnv, BitIdenticalForAnyThreadCount) {
  for (const auto& n : kEnvs) {
    const Config options(find_env(n).schema);
    const int N = 7;
    std::vector<std::vector<double>> results;
    for (int threads : {1, 2, 3}) {
      VecEnv venv(n, options, N, threads);
      const auto& s = venv.spec();
      std::vector<uint64_t> seeds(N);
      for (int i = 0; i < N; ++i) seeds[i] = 100 + i;
      std::vector<double> obs(N * s.obs_dim), act(N * s.act_dim), rew(N), trace;
      std::vector<uint8_t> term(N), trunc(N);
      std::vector<StepInfo> info(N);
      venv.reset(seeds, sample_tasks(venv.env(0), Split::Train, 1, N), obs.data());
      Rng rng(4);
      for (int t = 0; t < 30; ++t) {
        for (auto& x : act) x = rng.uniform(-1, 1);
        venv.step(act.data(), obs.data(), rew.data(), term.data(), trunc.data(), info.data());
        trace.insert(trace.end(), obs.begin(), obs.end());
        trace.insert(trace.end(), rew.begin(), rew.end());
      }
      results.push_back(trace);
    }
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(double))) << n;
    EXPECT_EQ(0, std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(double))) << n;
  }
}

TEST(Tasks, SplitsAreReproducibleDisjointAndInTheirRegions) {
  for (const auto& n : kEnvs) {
    auto env = make_env(n);
    const auto train = sample_tasks(*env, Split::Train, 0, 50);
    const auto test = sample_tasks(*env, Split::Test, 0, 50);
    const auto ood = sample_tasks(*env, Split::Ood, 0, 50);
    // Same (split, seed) -> same goals; task i does not depend on n.
    const auto test10 = sample_tasks(*env, Split::Test, 0, 10);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(test10[i].goal, test[i].goal);
    EXPECT_NE(sample_tasks(*env, Split::Test, 1, 1)[0].goal, test[0].goal);
    for (int i = 0; i < 50; ++i) {
      EXPECT_NE(train[i].goal, test[i].goal);
      for (const auto* set : {&train, &test, &ood}) EXPECT_NO_THROW(env->check_task((*set)[i])) << n;
      // ood goals lie in the held-out wedge (behind the region centre).
      const GoalRegion r = env->goal_region(Split::Ood);
      const double ang = std::atan2(ood[i].goal[1] - r.center[1], ood[i].goal[0] - r.center[0]);
      EXPECT_GT(std::abs(ang), 0.75 * M_PI - 1e-9) << n;
      const double ang_test = std::atan2(test[i].goal[1] - r.center[1], test[i].goal[0] - r.center[0]);
      EXPECT_LE(std::abs(ang_test), 0.75 * M_PI + 1e-9) << n;
    }
  }
}

TEST(Tasks, EveryGoalOfEverySplitIsInTheWorkspace) {
  for (const auto& n : kEnvs) {
    auto env = make_env(n);
    for (Split split : {Split::Train, Split::Test, Split::Ood})
      for (const Task& t : sample_tasks(*env, split, 3, 5000)) ASSERT_NO_THROW(env->check_task(t)) << n;
  }
}

TEST(Experts, SolveTheirEnvironments) {
  // Thresholds: pointmass 0.1 m, reacher 0.02 m (fingertip), pusher 0.05 m (puck).
  EXPECT_GE(success_rate("pointmass", 100, true), 0.9);
  EXPECT_GE(success_rate("reacher", 100, true), 0.9);
  EXPECT_GE(success_rate("pusher", 100, true), 0.7);
  // ... and the tasks are not solved by doing nothing.
  for (const auto& n : kEnvs) EXPECT_LT(success_rate(n, 100, false), 0.1) << n;
}

// ---- bad input ----------------------------------------------------------------
using test::error_of;

TEST(BadInput, MalformedMjcfNamesTheFileAndLine) {
  const auto dir = test::temp_dir("mjcf");
  const auto path = dir / "broken.xml";
  test::write_file(path, "<mujoco>\n  <worldbody>\n    <body name=\"a\">\n  </worldbody>\n</mujoco>\n");
  const std::string msg = error_of([&] { make_env("reacher", {"model=" + path.string()}); });
  EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("Line number=3"), std::string::npos) << msg;
}

TEST(BadInput, MissingModelFile) {
  const std::string msg = error_of([&] { make_env("reacher", {"model=/nonexistent/arm.xml"}); });
  EXPECT_NE(msg.find("/nonexistent/arm.xml: cannot open"), std::string::npos) << msg;
}

TEST(BadInput, ModelLackingARequiredSite) {
  // The fingertip may be a site or a body (Gymnasium's model): remove both.
  const auto dir = test::temp_dir("nosite");
  std::string xml = asset_text("reacher.xml");
  const std::string site = "<site name=\"fingertip\" size=\"0.005\"/>";
  xml.erase(xml.find(site), site.size());
  const std::string body = "<body name=\"fingertip\"";
  xml.replace(xml.find(body), body.size(), "<body name=\"tip\"");
  test::write_file(dir / "reacher_nosite.xml", xml);
  const std::string msg = error_of([&] { make_env("reacher", {"model=" + (dir / "reacher_nosite.xml").string()}); });
  EXPECT_NE(msg.find("needs a site or a body named 'fingertip'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reacher_nosite.xml"), std::string::npos) << msg;
}

TEST(BadInput, GoalOutsideTheWorkspace) {
  auto env = make_env("reacher");
  EXPECT_NE(error_of([&] { env->reset(0, Task{{0.3, 0.0}}); }).find("goal outside the workspace"), std::string::npos);
  EXPECT_NE(error_of([&] { env->reset(0, Task{{0.1}}); }).find("2 coordinates"), std::string::npos);
  EXPECT_NE(error_of([&] { env->reset(0, Task{{NAN, 0.0}}); }).find("finite"), std::string::npos);
  auto pm = make_env("pointmass");
  EXPECT_THROW(pm->reset(0, Task{{2.0, 0.0}}), Error);
  auto pu = make_env("pusher");
  EXPECT_THROW(pu->reset(0, Task{{0.6, 0.3}}), Error);
}

TEST(BadInput, WrongSizedOrNonFiniteAction) {
  auto env = make_env("reacher");
  env->reset(0, Task{{0.1, 0.1}});
  EXPECT_NE(error_of([&] { env->step({0.1}); }).find("expected 2"), std::string::npos);
  EXPECT_NE(error_of([&] { env->step({0.1, NAN}); }).find("action[1] is not finite"), std::string::npos);
  EXPECT_NE(error_of([&] { env->step({INFINITY, 0}); }).find("not finite"), std::string::npos);
  // Out-of-range actions are clipped, like MuJoCo's ctrlrange.
  auto a = make_env("reacher"), b = make_env("reacher");
  a->reset(0, Task{{0.1, 0.1}}), b->reset(0, Task{{0.1, 0.1}});
  EXPECT_EQ(a->step({5.0, -7.0}).obs, b->step({1.0, -1.0}).obs);
}

TEST(BadInput, BadEnvOverrides) {
  EXPECT_NE(error_of([] { make_env("reacher", {"frame_skp=3"}); }).find("did you mean 'frame_skip'"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_env("reacher", {"frame_skip=two"}); }).find("expected an integer"), std::string::npos);
  EXPECT_NE(error_of([] { make_env("reacher", {"episode_steps=0"}); }).find("expected an integer in [1, "), std::string::npos);
  EXPECT_NE(error_of([] { make_env("reacher", {"success_threshold=-1"}); }).find("success_threshold"),
            std::string::npos);
}

TEST(UserModel, ModifiedArmFromAFile) {
  // A user points the reacher at a model with a longer second link: the
  // workspace check and the expert follow the model.
  const auto dir = test::temp_dir("longarm");
  std::string xml = asset_text("reacher.xml");
  auto replace = [&](const std::string& from, const std::string& to) { xml.replace(xml.find(from), from.size(), to); };
  replace("<geom name=\"link1\" type=\"capsule\" fromto=\"0 0 0 0.1 0 0\"",
          "<geom name=\"link1\" type=\"capsule\" fromto=\"0 0 0 0.2 0 0\"");
  replace("<body name=\"fingertip\" pos=\"0.11 0 0\">", "<body name=\"fingertip\" pos=\"0.21 0 0\">");
  const auto path = (dir / "long_reacher.xml").string();
  test::write_file(path, xml);
  auto builtin = make_env("reacher");
  auto env = make_env("reacher", {"model=" + path});
  EXPECT_EQ(env->spec().model_file, path);
  const Task far{{0.28, 0.0}};
  EXPECT_THROW(builtin->reset(0, far), Error);
  env->reset(0, far);
  std::vector<double> a(2);
  StepResult r;
  for (int t = 0; t < 50; ++t) {
    env->expert_action(a.data());
    r = env->step(a);
  }
  EXPECT_TRUE(r.info.success) << "final distance " << r.info.distance;
}

}  // namespace
}  // namespace ml3
