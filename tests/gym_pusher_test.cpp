// gym_pusher: Gymnasium's Pusher-v5 task (observation layout, reward, frame
// skip, episode length, reset distribution) on a model with Pusher-v5's names.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "envs/env_util.h"
#include "envs/expert_runs.h"
#include "envs/mujoco_env.h"
#include "test_util.h"

namespace ml3 {
namespace {

using test::error_of;

const MujocoEnv& mj(const Env& e) { return static_cast<const MujocoEnv&>(e); }
const double* body_com(const Env& e, const char* name) {
  const mjModel* m = mj(e).model();
  return mj(e).data()->xipos + 3 * mj_name2id(m, mjOBJ_BODY, name);
}

TEST(GymPusher, SpecIsPusherV5) {
  auto env = make_env("gym_pusher");
  const EnvSpec& s = env->spec();
  EXPECT_EQ(s.obs_dim, 23);
  EXPECT_EQ(s.act_dim, 7);
  EXPECT_EQ(s.goal_dim, 2);
  EXPECT_EQ(s.frame_skip, 5);
  EXPECT_EQ(s.episode_steps, 100);
  EXPECT_DOUBLE_EQ(s.timestep, 0.01);
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(s.act_low[i], -2.0);
    EXPECT_EQ(s.act_high[i], 2.0);
  }
  const mjModel* m = mj(*env).model();
  EXPECT_EQ(m->opt.integrator, mjINT_EULER);
  EXPECT_EQ(m->opt.gravity[2], 0.0);
  EXPECT_EQ(s.obs_names[0], "qpos_r_shoulder_pan_joint");
  EXPECT_EQ(s.obs_names[22], "goal_z");
}

// The observation is Pusher-v5's: qpos[:7], qvel[:7], then the centres of mass
// of tips_arm, object and goal; the reward is Pusher-v5's, after the step.
TEST(GymPusher, ObservationAndRewardArePusherV5s) {
  auto env = make_env("gym_pusher");
  const Task task = sample_tasks(*env, Split::Test, 0, 1)[0];
  env->reset(3, task);
  std::vector<double> a = {0.5, -1.0, 0.3, 2.5, -0.2, 0.1, -3.0};  // 2.5 and -3 are clipped to [-2, 2]
  for (int t = 0; t < 12; ++t) {
    const StepResult r = env->step(a);
    const mjData* d = mj(*env).data();
    for (int i = 0; i < 7; ++i) {
      EXPECT_EQ(r.obs[i], d->qpos[i]);
      EXPECT_EQ(r.obs[7 + i], d->qvel[i]);
    }
    const double* tips = body_com(*env, "tips_arm");
    const double* obj = body_com(*env, "object");
    const double* goal = body_com(*env, "goal");
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(r.obs[14 + c], tips[c]);
      EXPECT_EQ(r.obs[17 + c], obj[c]);
      EXPECT_EQ(r.obs[20 + c], goal[c]);
    }
    double ctrl = 0;
    for (double x : {0.5, -1.0, 0.3, 2.0, -0.2, 0.1, -2.0}) ctrl += x * x;
    EXPECT_NEAR(r.reward, -dist3d(obj, goal) - 0.1 * ctrl - 0.5 * dist3d(obj, tips), 1e-12);
    EXPECT_NEAR(r.info.distance, dist2d(obj, goal), 1e-12);
    EXPECT_NEAR(goal[0], task.goal[0], 1e-12);
    EXPECT_NEAR(goal[1], task.goal[1], 1e-12);
  }
}

// Reset: arm at qpos0 with velocities in +-0.005; the object's slide joints
// (obj_slidey, obj_slidex in model order) get U(-0.3, 0) and U(-0.2, 0.2),
// more than 0.17 m from the goal; object and goal at rest.
TEST(GymPusher, ResetDistributionIsPusherV5s) {
  auto env = make_env("gym_pusher");
  const mjModel* m = mj(*env).model();
  const int qy = m->jnt_qposadr[mj_name2id(m, mjOBJ_JOINT, "obj_slidey")];
  const int qx = m->jnt_qposadr[mj_name2id(m, mjOBJ_JOINT, "obj_slidex")];
  ASSERT_LT(qy, qx) << "Pusher-v5's object joints are y, then x";
  const Task task{{0.45, -0.05}};  // Pusher-v5's fixed goal
  double min_y = 1, max_y = -1, min_x = 1, max_x = -1;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    env->reset(seed, task);
    const mjData* d = mj(*env).data();
    for (int i = 0; i < 7; ++i) {
      EXPECT_EQ(d->qpos[i], 0.0);
      EXPECT_LE(std::abs(d->qvel[i]), 0.005);
    }
    for (int i = 7; i < m->nv; ++i) EXPECT_EQ(d->qvel[i], 0.0);
    const double y = d->qpos[qy], x = d->qpos[qx];
    EXPECT_TRUE(y >= -0.3 && y <= 0.0) << y;
    EXPECT_TRUE(x >= -0.2 && x <= 0.2) << x;
    EXPECT_GT(std::hypot(x, y), 0.17);
    EXPECT_GT(env->distance(), 0.17);
    min_y = std::min(min_y, y), max_y = std::max(max_y, y), min_x = std::min(min_x, x), max_x = std::max(max_x, x);
  }
  EXPECT_LT(min_y, -0.28);
  EXPECT_GT(max_y, -0.05);
  EXPECT_LT(min_x, -0.18);
  EXPECT_GT(max_x, 0.18);
}

TEST(GymPusher, AModelMissingANameSaysWhichAndWhere) {
  const auto dir = test::temp_dir("gym_pusher_names");
  for (const auto& [from, to, what] : std::vector<std::array<std::string, 3>>{
           {"name=\"tips_arm\"", "name=\"hand_tips\"", "a body named 'tips_arm'"},
           {"\"r_wrist_flex_joint\"", "\"wrist\"", "a hinge joint named 'r_wrist_flex_joint'"},
           {"<body name=\"goal\"", "<body name=\"target\"", "a body named 'goal'"}}) {
    std::string xml = embedded_assets().at("gym_pusher.xml");
    for (size_t at = xml.find(from); at != std::string::npos; at = xml.find(from, at + to.size()))
      xml.replace(at, from.size(), to);
    const auto path = (dir / "pusher.xml").string();
    test::write_file(path, xml);
    const std::string msg = error_of([&] { make_env("gym_pusher", {"model=" + path}); });
    EXPECT_EQ(msg, path + ": the gym_pusher environment needs " + what + ", and the model has none");
  }
}

TEST(GymPusher, GoalsOffTheTableOrOutOfReachAreRejected) {
  auto env = make_env("gym_pusher");
  EXPECT_NO_THROW(env->check_task(Task{{0.45, -0.05}}));
  EXPECT_NE(error_of([&] { env->check_task(Task{{1.2, 0.0}}); }).find("on the table"), std::string::npos);
  EXPECT_NE(error_of([&] { env->check_task(Task{{0.9, 0.4}}); }).find("at most"), std::string::npos);
}

// The expert reaches 35% on these 40 goals (50% on 100; 0.05 m); it fails mostly where
// the cylinder starts near the arm's base, which the hand cannot reach low.
TEST(GymPusher, ExpertPushesTheCylinderToTheGoal) {
  const ExpertResult r = run_expert("gym_pusher", env_options("gym_pusher", "", {}), Split::Test, 40, 0, 2);
  std::printf("gym_pusher expert on 40 test goals: success %.3f, final distance %.4f, return %.2f\n", r.success_rate,
              r.final_distance_mean, r.return_mean);
  EXPECT_GE(r.success_rate, 0.3);
}

}  // namespace
}  // namespace ml3
