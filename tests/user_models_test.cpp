// Environments built from user models (env.model): models that differ from
// the built-in ones in ways the environments must handle.
#include <gtest/gtest.h>

#include "core/error.h"
#include "envs/expert_runs.h"
#include "envs/mujoco_env.h"
#include "test_util.h"

namespace ml3 {
namespace {

using test::error_of;

// The built-in model `asset` with `from` replaced by `to` (which must occur),
// written to a temp file; returns its path.
std::string edited_model(const std::string& asset, const std::string& tag,
                         const std::vector<std::pair<std::string, std::string>>& edits) {
  std::string xml = embedded_assets().at(asset);
  for (const auto& [from, to] : edits) {
    const auto pos = xml.find(from);
    if (pos == std::string::npos) throw std::runtime_error("edited_model: '" + from + "' not in " + asset);
    xml.replace(pos, from.size(), to);
  }
  const auto path = test::temp_dir(tag) / asset;
  test::write_file(path, xml);
  return path.string();
}

// The pusher used to take geom 0 for the table: a model whose first geom is
// something else rejected every goal (or accepted goals off the table).
TEST(UserModel, PusherFindsTheTableByName) {
  const std::string table = "<geom name=\"table\" type=\"plane\" size=\"0.8 0.8 0.1\"";
  const std::string model =
      edited_model("pusher.xml", "pusher_table",
                   {{table, "<geom name=\"marker\" type=\"sphere\" size=\"0.02\" pos=\"0 0 0.2\"/>\n    "
                            "<geom name=\"table\" type=\"plane\" size=\"0.8 0.4 0.1\""}});
  auto env = make_env("pusher", {"model=" + model});
  ASSERT_NE(static_cast<const MujocoEnv&>(*env).model()->geom_size[0], 0.8) << "geom 0 is not the table";
  for (Split split : {Split::Train, Split::Test, Split::Ood})
    for (const Task& t : sample_tasks(*env, split, 0, 200)) ASSERT_NO_THROW(env->check_task(t));
  EXPECT_NO_THROW(env->check_task(Task{{0.3, 0.1}}));
  // Within the arm's reach (0.45 m) but off this table (|y| <= 0.4).
  const std::string msg = error_of([&] { env->check_task(Task{{0.0, 0.42}}); });
  EXPECT_NE(msg.find("on the table"), std::string::npos) << msg;
  // The expert still solves it.
  const ExpertResult r = run_expert("pusher", env_options("pusher", "", {"env.model=" + model}), Split::Test, 20, 0, 1);
  EXPECT_GE(r.success_rate, 0.7);
}

// Gymnasium's own reacher.xml (tests/data/gymnasium_reacher.xml, unmodified):
// fingertip is a body, the target a body on slide joints target_x/target_y.
const std::string kGymnasiumReacher = std::string(ML3_SOURCE_DIR) + "/tests/data/gymnasium_reacher.xml";

TEST(UserModel, GymnasiumReacherXmlWorksUnmodified) {
  auto gym = make_env("reacher", {"model=" + kGymnasiumReacher});
  auto builtin = make_env("reacher");
  const EnvSpec& s = gym->spec();
  EXPECT_EQ(s.obs_dim, 10);
  EXPECT_EQ(s.act_dim, 2);
  EXPECT_EQ(s.act_low, std::vector<double>({-1, -1}));
  EXPECT_EQ(s.act_high, std::vector<double>({1, 1}));
  ASSERT_EQ(static_cast<const MujocoEnv&>(*gym).model()->nq, 4) << "arm joints + target_x, target_y";
  // Same goals, same reset noise (on the arm joints only), same arm: the
  // observations match the built-in model's, and the target follows the goal.
  const auto tasks = sample_tasks(*gym, Split::Test, 4, 5);
  for (int e = 0; e < 5; ++e) {
    auto a = gym->reset(e, tasks[e]);
    auto b = builtin->reset(e, tasks[e]);
    ASSERT_EQ(a.size(), 10u);
    for (int i = 0; i < 10; ++i) EXPECT_NEAR(a[i], b[i], 1e-12) << "reset obs " << i;
    std::vector<double> act(2);
    for (int t = 0; t < s.episode_steps; ++t) {
      gym->expert_action(act.data());
      a = gym->step(act).obs;
      b = builtin->step(act).obs;
    }
    for (int i = 0; i < 10; ++i) EXPECT_NEAR(a[i], b[i], 1e-9) << "final obs " << i;
    const EnvState state = gym->get_state();
    // target_x, target_y hold the goal (their ref is the body's position).
    EXPECT_NEAR(state.qpos[2], tasks[e].goal[0], 1e-12);
    EXPECT_NEAR(state.qpos[3], tasks[e].goal[1], 1e-12);
    EXPECT_EQ(state.qvel[2], 0.0);
    EXPECT_EQ(state.qvel[3], 0.0);
  }
  // The expert reaches the goals as on the built-in model.
  const Config gym_options = env_options("reacher", "", {"env.model=" + kGymnasiumReacher});
  const Config builtin_options = env_options("reacher", "", {});
  for (Split split : {Split::Test, Split::Ood}) {
    const ExpertResult g = run_expert("reacher", gym_options, split, 100, 0, 2);
    const ExpertResult b = run_expert("reacher", builtin_options, split, 100, 0, 2);
    EXPECT_GE(g.success_rate, 0.9) << split_name(split);
    EXPECT_NEAR(g.success_rate, b.success_rate, 0.03) << split_name(split);
  }
}

TEST(UserModel, GymnasiumReacherTargetBodyFollowsTheGoal) {
  // Through MuJoCo's own kinematics (not only qpos): the target body sits on
  // the goal after reset and after steps, and set_state replays exactly.
  auto env = make_env("reacher", {"model=" + kGymnasiumReacher});
  const auto& mj = static_cast<const MujocoEnv&>(*env);
  const int target = mj_name2id(mj.model(), mjOBJ_BODY, "target");
  mjData* d = mj_makeData(mj.model());
  const Task task{{-0.05, 0.12}};
  env->reset(1, task);
  for (int t = 0; t < 10; ++t) env->step({0.3, -0.2});
  const EnvState state = env->get_state();
  std::copy(state.qpos.begin(), state.qpos.end(), d->qpos);
  mj_kinematics(mj.model(), d);
  EXPECT_NEAR(d->xpos[3 * target + 0], task.goal[0], 1e-12);
  EXPECT_NEAR(d->xpos[3 * target + 1], task.goal[1], 1e-12);
  mj_deleteData(d);
  const auto first = env->step({0.1, 0.1}).obs;
  env->set_state(state);
  EXPECT_EQ(env->step({0.1, 0.1}).obs, first);
}

TEST(UserModel, TargetMustBeMocapOrOnTwoSlideJoints) {
  const std::string model = edited_model("reacher.xml", "target_fixed", {{"mocap=\"true\" ", ""}});
  const std::string msg = error_of([&] { make_env("reacher", {"model=" + model}); });
  EXPECT_NE(msg.find(model), std::string::npos) << msg;
  EXPECT_NE(msg.find("mocap body"), std::string::npos) << msg;
  EXPECT_NE(msg.find("two slide joints"), std::string::npos) << msg;
}

TEST(UserModel, PusherWithoutATableIsRejectedByName) {
  const std::string model = edited_model("pusher.xml", "pusher_notable", {{"name=\"table\"", "name=\"floor\""}});
  const std::string msg = error_of([&] { make_env("pusher", {"model=" + model}); });
  EXPECT_NE(msg.find(model), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs a geom named 'table'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ml3
