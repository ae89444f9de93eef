// Demonstration files (envs/demos.h): recording with the scripted expert,
// exact round trips, determinism, and one precise error per validation
// failure. LibTorch-free.
#include "envs/demos.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"
#include "envs/expert_runs.h"
#include "demos_util.h"
#include "test_util.h"

namespace ml3 {
namespace {

using test::error_of;
using test::expect_same;

Config defaults(const std::string& env) { return Config(find_env(env).schema); }

std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

TEST(Demos, RoundTripIsExact) {
  const auto dir = test::temp_dir("demos_rt");
  const Demonstrations d = record_demos("reacher", defaults("reacher"), Split::Test, 5, 7, 2);
  ASSERT_EQ(d.episodes.size(), 5u);
  EXPECT_EQ(d.env, "reacher");
  EXPECT_EQ(d.split, Split::Test);
  EXPECT_EQ(d.seed, 7u);
  EXPECT_EQ(d.env_options.at("episode_steps"), "50");
  for (const auto& e : d.episodes) {
    EXPECT_EQ(e.observations.size(), 50u * 10);
    EXPECT_EQ(e.actions.size(), 50u * 2);
    EXPECT_EQ(e.rewards.size(), 50u);
  }
  const std::string path = (dir / "reacher.demos").string();
  save_demos(path, d);
  expect_same(d, load_demos(path));
  EXPECT_EQ(Archive::load(path).kind(), "demos");
  EXPECT_EQ(Archive::load(path).meta()["version"], 1);
}

TEST(Demos, RecordingIsDeterministicAndTheSameForAnyThreadCount) {
  const auto dir = test::temp_dir("demos_threads");
  for (const char* env : {"pointmass", "pusher"}) {
    const std::string one = (dir / (std::string(env) + "_1.demos")).string();
    const std::string three = (dir / (std::string(env) + "_3.demos")).string();
    const std::string again = (dir / (std::string(env) + "_again.demos")).string();
    save_demos(one, record_demos(env, defaults(env), Split::Train, 7, 3, 1));
    save_demos(three, record_demos(env, defaults(env), Split::Train, 7, 3, 3));
    save_demos(again, record_demos(env, defaults(env), Split::Train, 7, 3, 1));
    EXPECT_EQ(file_bytes(one), file_bytes(three)) << env;
    EXPECT_EQ(file_bytes(one), file_bytes(again)) << env;
  }
}

// The file holds exactly the episodes of run_expert (same goals, initial
// states, actions): same successes; the observation of step t is the one the
// action was taken in, so replaying the actions reproduces the next one.
TEST(Demos, AreTheEpisodesOfTheExpertRun) {
  for (const char* name : {"pointmass", "reacher", "pusher"}) {
    const Config options = defaults(name);
    const int n = 20;
    const Demonstrations d = record_demos(name, options, Split::Ood, n, 5, 2);
    const ExpertResult r = run_expert(name, options, Split::Ood, n, 5, 2);
    const DemoSummary s = summarize(d);
    EXPECT_EQ(s.episodes, n);
    EXPECT_EQ(s.success_rate, r.success_rate) << name;
    EXPECT_NEAR(s.final_distance_mean, r.final_distance_mean, 1e-6) << name;
    auto env = make_env(name, options);
    const auto tasks = sample_tasks(*env, Split::Ood, 5, n);
    const int od = d.obs_dim, ad = d.act_dim;
    for (int i : {0, n - 1}) {
      const DemoEpisode& e = d.episodes[i];
      EXPECT_EQ(e.goal, std::vector<float>(tasks[i].goal.begin(), tasks[i].goal.end()));
      std::vector<double> obs = env->reset(mix_seed(5, i), tasks[i]);
      for (int t = 0; t < d.episode_steps; ++t) {
        for (int k = 0; k < od; ++k) ASSERT_EQ(e.observations[t * od + k], static_cast<float>(obs[k])) << name << t;
        std::vector<double> expert(ad);
        env->expert_action(expert.data());
        for (int k = 0; k < ad; ++k) {
          ASSERT_EQ(e.actions[t * ad + k], static_cast<float>(std::clamp(expert[k], d.act_low[k], d.act_high[k])));
          ASSERT_GE(e.actions[t * ad + k], d.act_low[k]);
          ASSERT_LE(e.actions[t * ad + k], d.act_high[k]);
        }
        const StepResult step = env->step(expert);
        ASSERT_EQ(e.rewards[t], static_cast<float>(step.reward)) << name << t;
        obs = step.obs;
        if (t + 1 == d.episode_steps) {
          EXPECT_EQ(e.final_distance, static_cast<float>(step.info.distance));
          EXPECT_EQ(e.success, step.info.success);
        }
      }
    }
  }
}

// ---- a user's own demonstrations -------------------------------------------------
Demonstrations hand_made(const EnvSpec& spec, int episodes) {
  Demonstrations d;
  d.env = spec.name, d.obs_dim = spec.obs_dim, d.act_dim = spec.act_dim, d.goal_dim = spec.goal_dim;
  d.episode_steps = spec.episode_steps, d.act_low = spec.act_low, d.act_high = spec.act_high;
  for (int i = 0; i < episodes; ++i) {
    DemoEpisode e;
    e.goal = {0.25f * i, -0.5f};
    e.observations.assign(d.episode_steps * d.obs_dim, 0.125f * i);
    e.actions.assign(d.episode_steps * d.act_dim, 0.5f);
    e.actions.back() = static_cast<float>(d.act_high.back());
    e.rewards.assign(d.episode_steps, -1.0f);
    e.final_distance = 0.05f, e.success = i % 2;
    d.episodes.push_back(e);
  }
  return d;
}

TEST(Demos, UserDemonstrationsBuiltInCodeAreAccepted) {
  const auto dir = test::temp_dir("demos_user");
  auto env = make_env("pointmass");
  const Demonstrations d = hand_made(env->spec(), 3);
  const std::string path = (dir / "mine.demos").string();
  save_demos(path, d);
  expect_same(d, load_demos(path, &env->spec()));
  EXPECT_EQ(summarize(d).success_rate, 1.0 / 3);
  // save_demos refuses what load_demos would refuse, and writes nothing.
  Demonstrations bad = d;
  bad.episodes[1].actions[3] = 1.5f;
  const std::string other = (dir / "bad.demos").string();
  EXPECT_NE(error_of([&] { save_demos(other, bad); })
                .find("bad.demos (not written): entry 'actions': episode 1, step 1, [1] is 1.5, outside the declared "
                      "bounds [-1, 1]"),
            std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(other));
  bad = d;
  bad.episodes[2].rewards.pop_back();
  EXPECT_NE(
      error_of([&] { save_demos(other, bad); }).find("episode 2: rewards has 49 values, expected episode_steps = 50"),
      std::string::npos);
}

// A file written by another program from docs/demos.md alone: the container
// byte by byte (little-endian u64 lengths), then the FNV-1a-64 checksum.
TEST(Demos, AFileWrittenFromTheDocumentedLayoutIsAccepted) {
  const auto dir = test::temp_dir("demos_layout");
  std::string out = "ML3ARCH1";
  auto u64 = [&](uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) { u64(s.size()), out += s; };
  auto blob = [&](const std::string& name, const std::string& dtype, std::vector<uint64_t> shape, const void* p,
                  size_t bytes) {
    str(name), str(dtype), u64(shape.size());
    for (auto s : shape) u64(s);
    str(std::string(static_cast<const char*>(p), bytes));
  };
  str("demos");
  str(R"({"version":1,"env":"pointmass","obs_dim":8,"act_dim":2,"goal_dim":2,"episode_steps":50,"episodes":1,)"
      R"("act_low":[-1,-1],"act_high":[1,1],"split":"train","seed":0})");
  std::vector<float> goal = {0.5f, 0.25f}, obs(50 * 8, 0.0f), act(50 * 2, -1.0f), rew(50, -0.5f), dist = {0.01f};
  int64_t success = 1;
  u64(6);
  blob("actions", "f32", {1, 50, 2}, act.data(), act.size() * 4);
  blob("final_distance", "f32", {1}, dist.data(), 4);
  blob("goals", "f32", {1, 2}, goal.data(), 8);
  blob("observations", "f32", {1, 50, 8}, obs.data(), obs.size() * 4);
  blob("rewards", "f32", {1, 50}, rew.data(), rew.size() * 4);
  blob("success", "i64", {1}, &success, 8);
  u64(fnv1a64(out.data(), out.size()));
  write_bytes(dir / "other.demos", out);
  auto env = make_env("pointmass");
  const Demonstrations d = load_demos((dir / "other.demos").string(), &env->spec());
  ASSERT_EQ(d.episodes.size(), 1u);
  EXPECT_EQ(d.episodes[0].goal, goal);
  EXPECT_EQ(d.episodes[0].actions, act);
  EXPECT_TRUE(d.episodes[0].success);
  EXPECT_TRUE(d.env_options.empty());
}

// Noisy recording (DART): the executed actions are perturbed, the file keeps
// the expert's labels; the first state of every episode is the expert's own,
// so its label is the noise-free demonstration's first action.
TEST(Demos, ActionNoiseVisitsOtherStatesAndKeepsTheExpertsLabels) {
  const auto dir = test::temp_dir("demos_noise");
  const Demonstrations plain = record_demos("reacher", defaults("reacher"), Split::Train, 4, 3, 2);
  const Demonstrations noisy = record_demos("reacher", defaults("reacher"), Split::Train, 4, 3, 2, 0.5);
  EXPECT_EQ(noisy.action_noise, 0.5);
  for (size_t i = 0; i < 4; ++i) {
    const auto &p = plain.episodes[i], &n = noisy.episodes[i];
    EXPECT_EQ(std::vector<float>(p.observations.begin(), p.observations.begin() + 10),
              std::vector<float>(n.observations.begin(), n.observations.begin() + 10));
    EXPECT_EQ(p.actions[0], n.actions[0]);
    EXPECT_NE(p.observations, n.observations);  // other states visited
  }
  const std::string path = (dir / "noisy.demos").string();
  save_demos(path, noisy);
  expect_same(noisy, load_demos(path));
  EXPECT_NE(error_of([] { record_demos("reacher", defaults("reacher"), Split::Train, 1, 0, 1, -1.0); })
                .find("action noise must be a number >= 0"),
            std::string::npos);
}

// ---- validation: one precise message per failure ------------------------------------
class DemosValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_dir("demos_bad");
    good_ = (dir_ / "good.demos").string();
    save_demos(good_, record_demos("pointmass", defaults("pointmass"), Split::Train, 3, 0, 1));
  }
  // good.demos rewritten through `edit` as bad.demos (a valid archive),
  // without the blob `drop`.
  std::string rewrite(const std::function<void(Archive& in, Archive& out)>& edit, const std::string& kind = "demos",
                      const std::string& drop = "") {
    Archive in = Archive::load(good_), out(kind);
    out.meta() = in.meta();
    edit(in, out);
    for (const auto& [name, b] : in.blobs())
      if (!out.has(name) && name != drop) out.put(name, b.dtype, b.shape, b.bytes.data(), b.bytes.size());
    const std::string path = (dir_ / "bad.demos").string();
    out.save(path);
    return path;
  }
  // Replaces one f32 value of blob `name`.
  std::string set_value(const std::string& name, size_t index, float value) {
    return rewrite([&](Archive& in, Archive& out) {
      Blob b = in.get(name);
      std::memcpy(&b.bytes[index * 4], &value, 4);
      out.put(name, b.dtype, b.shape, b.bytes.data(), b.bytes.size());
    });
  }
  static std::string load_error(const std::string& path, const EnvSpec* expect = nullptr) {
    return error_of([&] { load_demos(path, expect); });
  }
  std::filesystem::path dir_;
  std::string good_;
};

#define EXPECT_MESSAGE(msg, text) EXPECT_NE((msg).find(text), std::string::npos) << (msg)

TEST_F(DemosValidation, FlippedByteAndTruncatedFileGiveTheChecksumMessage) {
  const std::string bytes = file_bytes(good_);
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  write_bytes(dir_ / "flipped.demos", flipped);
  EXPECT_MESSAGE(load_error((dir_ / "flipped.demos").string()),
                 (dir_ / "flipped.demos").string() + ": checksum mismatch: the file is truncated or corrupt");
  write_bytes(dir_ / "short.demos", bytes.substr(0, bytes.size() - 100));
  EXPECT_MESSAGE(load_error((dir_ / "short.demos").string()),
                 (dir_ / "short.demos").string() + ": checksum mismatch: the file is truncated or corrupt");
  EXPECT_MESSAGE(load_error((dir_ / "none.demos").string()), "none.demos: cannot open file");
}

TEST_F(DemosValidation, WrongKind) {
  const std::string path = rewrite([](Archive&, Archive&) {}, "checkpoint");
  EXPECT_MESSAGE(load_error(path), path + ": is a checkpoint file, expected a demos file");
}

TEST_F(DemosValidation, MetadataVersionAndKeys) {
  std::string path = rewrite([](Archive&, Archive& out) { out.meta()["version"] = 2; });
  EXPECT_MESSAGE(load_error(path),
                 path + ": metadata 'version': demos format version 2 is not supported (this ml3 reads version 1)");
  path = rewrite([](Archive&, Archive& out) { out.meta().erase("act_dim"); });
  EXPECT_MESSAGE(load_error(path), path + ": metadata 'act_dim': missing (expected an integer >= 1)");
  path = rewrite([](Archive&, Archive& out) { out.meta()["split"] = "validation"; });
  EXPECT_MESSAGE(load_error(path), path + ": metadata 'split': validation is not one of train, test, ood");
  path = rewrite([](Archive&, Archive& out) { out.meta()["action_noise"] = -0.1; });
  EXPECT_MESSAGE(load_error(path), path + ": metadata 'action_noise': -0.1 is not a number >= 0");
  path = rewrite([](Archive&, Archive& out) { out.meta()["act_low"] = {-1.0}; });
  EXPECT_MESSAGE(load_error(path), path + ": metadata 'act_low': [-1.0] is not a list of act_dim = 2 finite numbers");
}

TEST_F(DemosValidation, MissingBlob) {
  const std::string path = rewrite([](Archive&, Archive&) {}, "demos", "actions");
  EXPECT_MESSAGE(load_error(path),
                 path + ": entry 'actions': missing (expected f32 [3, 50, 2] (episodes x episode_steps x act_dim))");
}

TEST_F(DemosValidation, WrongShapeOrDtype) {
  std::string path = rewrite([](Archive& in, Archive& out) {
    const Blob& b = in.get("observations");
    out.put("observations", "f32", {3, 49, 8}, b.bytes.data(), 3 * 49 * 8 * 4);
  });
  EXPECT_MESSAGE(load_error(path), path +
                                       ": entry 'observations': is f32 [3, 49, 8], expected f32 [3, 50, 8] "
                                       "(episodes x episode_steps x obs_dim)");
  path = rewrite([](Archive&, Archive& out) { out.meta()["episodes"] = 4; });
  EXPECT_MESSAGE(load_error(path), path + ": entry 'goals': is f32 [3, 2], expected f32 [4, 2] (episodes x goal_dim)");
  path = rewrite([](Archive& in, Archive& out) {
    const Blob& b = in.get("rewards");
    std::vector<double> v(b.numel(), -1.0);
    out.put("rewards", "f64", b.shape, v.data(), v.size() * 8);
  });
  EXPECT_MESSAGE(load_error(path), path + ": entry 'rewards': is f64 [3, 50], expected f32 [3, 50]");
}

TEST_F(DemosValidation, NonFiniteValues) {
  // observations [3, 50, 8]: episode 1, step 2, component 3.
  std::string path = set_value("observations", 1 * 400 + 2 * 8 + 3, NAN);
  EXPECT_MESSAGE(load_error(path),
                 path + ": entry 'observations': episode 1, step 2, [3] is nan; expected finite values");
  path = set_value("rewards", 2 * 50 + 49, INFINITY);
  EXPECT_MESSAGE(load_error(path), path + ": entry 'rewards': episode 2, step 49 is inf; expected finite values");
}

TEST_F(DemosValidation, ActionOutOfBoundsAndBadFlags) {
  // actions [3, 50, 2]: episode 2, step 10, component 0.
  std::string path = set_value("actions", 2 * 100 + 10 * 2, -1.01f);
  EXPECT_MESSAGE(load_error(path), path +
                                       ": entry 'actions': episode 2, step 10, [0] is -1.01, outside the declared "
                                       "bounds [-1, 1] (act_low, act_high)");
  // Within the tolerance (float rounding of a bound) is accepted.
  EXPECT_EQ(load_error(set_value("actions", 0, 1.0000005f)), "(no error)");
  path = rewrite([](Archive&, Archive& out) {
    const int64_t flags[3] = {0, 2, 1};
    out.put("success", "i64", {3}, flags, sizeof(flags));
  });
  EXPECT_MESSAGE(load_error(path), path + ": entry 'success': episode 1 is 2; expected 0 or 1");
}

TEST_F(DemosValidation, OptionalEntriesAreCheckedWhenPresent) {
  // final_observations [3, 8]: the wrong shape, a NaN; absent: a valid older file.
  std::string path = rewrite([](Archive& in, Archive& out) {
    const Blob& b = in.get("final_observations");
    out.put("final_observations", "f32", {3, 7}, b.bytes.data(), 3 * 7 * 4);
  });
  EXPECT_MESSAGE(load_error(path),
                 path + ": entry 'final_observations': is f32 [3, 7], expected f32 [3, 8] (episodes x obs_dim)");
  path = set_value("final_observations", 2 * 8 + 1, NAN);
  EXPECT_MESSAGE(load_error(path), path + ": entry 'final_observations': episode 2, [1] is nan; expected finite values");
  path = rewrite([](Archive&, Archive&) {}, "demos", "final_observations");
  EXPECT_EQ(load_error(path), "(no error)");
  EXPECT_TRUE(load_demos(path).episodes[0].final_observation.empty());
  // executed_actions: within the bounds like the actions.
  Demonstrations noisy = record_demos("pointmass", defaults("pointmass"), Split::Train, 2, 0, 1, 0.3);
  noisy.episodes[1].executed_actions[5] = 1.5f;
  EXPECT_MESSAGE(error_of([&] { save_demos((dir_ / "noisy.demos").string(), noisy); }),
                 "(not written): entry 'executed_actions': episode 1, step 2, [1] is 1.5, outside the declared bounds");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "noisy.demos"));
  noisy.episodes[1].executed_actions.clear();  // every episode or none
  EXPECT_MESSAGE(error_of([&] { save_demos((dir_ / "noisy.demos").string(), noisy); }),
                 "1 of 2 episodes have executed actions; every episode or none must");
  // outcomes_known must be a boolean.
  path = rewrite([](Archive&, Archive& out) { out.meta()["outcomes_known"] = "no"; });
  EXPECT_MESSAGE(load_error(path), path + ": metadata 'outcomes_known': \"no\" is not true or false");
}

TEST_F(DemosValidation, EnvironmentMismatchWhenExpected) {
  auto reacher = make_env("reacher");
  EXPECT_MESSAGE(load_error(good_, &reacher->spec()),
                 good_ +
                     ": metadata 'env': demonstrations of 'pointmass' (obs 8, act 2, goal 2), but the environment "
                     "in use is 'reacher' (obs 10, act 2, goal 2)");
  auto pointmass = make_env("pointmass");
  EXPECT_EQ(load_error(good_, &pointmass->spec()), "(no error)");
  EnvSpec other = pointmass->spec();
  other.obs_dim = 9;
  EXPECT_MESSAGE(load_error(good_, &other), "but the environment in use is 'pointmass' (obs 9, act 2, goal 2)");
}

}  // namespace
}  // namespace ml3
