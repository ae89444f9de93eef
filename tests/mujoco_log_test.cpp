// MuJoCo's warnings and errors routed into ml3 (envs/mujoco_log.h): no
// MUJOCO_LOG.TXT, warnings through our sink, errors as ml3::Error.
#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "envs/mujoco_env.h"
#include "envs/vec_env.h"
#include "test_util.h"

namespace ml3 {
namespace {

using test::error_of;

// Runs the test body in a fresh working directory with warnings collected.
class MujocoLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_cwd_ = std::filesystem::current_path();
    dir_ = test::temp_dir("mjlog");
    std::filesystem::current_path(dir_);
    install_mujoco_handlers();
    old_sink_ = set_mujoco_warning_sink([this](const std::string& w) {
      std::lock_guard<std::mutex> lock(mutex_);
      warnings_.push_back(w);
    });
  }
  void TearDown() override {
    set_mujoco_warning_sink(old_sink_);
    std::filesystem::current_path(old_cwd_);
  }
  bool log_file_written() const { return std::filesystem::exists(dir_ / "MUJOCO_LOG.TXT"); }
  // The built-in model `asset` with `from` replaced by `from + extra`.
  std::string model_with(const std::string& asset, const std::string& from, const std::string& extra) {
    std::string xml = embedded_assets().at(asset);
    xml.replace(xml.find(from), from.size(), from + extra);
    const auto path = dir_ / ("edited_" + asset);
    test::write_file(path, xml);
    return path.string();
  }
  // A pusher whose arena stack overflows once contacts appear (MuJoCo 2.2.2:
  // it loads, then mj_step raises "Stack overflow" within the first episode).
  std::string small_stack_pusher() { return model_with("pusher.xml", "<mujoco model=\"pusher\">", "<size nstack=\"400\"/>"); }

  std::filesystem::path dir_, old_cwd_;
  MujocoWarningSink old_sink_;
  std::mutex mutex_;
  std::vector<std::string> warnings_;
};

TEST_F(MujocoLogTest, UnstableSimulationWarnsThroughTheSinkAndWritesNoLogFile) {
  // A stiff spring on joint1 against the reset noise: a huge acceleration.
  const std::string model = model_with("reacher.xml", "range=\"-3.0 3.0\"", " stiffness=\"1e12\"");
  auto env = make_env("reacher", {"model=" + model});
  env->reset(0, Task{{0.1, 0.1}});
  const std::string msg = error_of([&] { env->step({0.0, 0.0}); });
  EXPECT_NE(msg.find("the simulation became unstable"), std::string::npos) << msg;
  EXPECT_NE(msg.find(model), std::string::npos) << msg;
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_NE(warnings_[0].find("Nan, Inf or huge value in QACC"), std::string::npos) << warnings_[0];
  EXPECT_NE(warnings_[0].find("(model " + model + ")"), std::string::npos) << warnings_[0];
  EXPECT_EQ(warnings_[0].find('\n'), std::string::npos);
  EXPECT_FALSE(log_file_written());
  // The episode is over; a reset starts a new one.
  EXPECT_NE(error_of([&] { env->step({0.0, 0.0}); }).find("call reset() first"), std::string::npos);
  EXPECT_NO_THROW(env->reset(1, Task{{0.1, 0.1}}));
}

TEST_F(MujocoLogTest, MujocoErrorBecomesAnErrorNamingTheModelAndTheEnvRecovers) {
  const std::string model = small_stack_pusher();
  auto env = make_env("pusher", {"model=" + model});
  const Task task = sample_tasks(*env, Split::Test, 0, 1)[0];
  env->reset(0, task);
  std::vector<double> a(3);
  std::string msg = "(no error)";
  for (int t = 0; t < env->spec().episode_steps && msg == "(no error)"; ++t) {
    env->expert_action(a.data());
    msg = error_of([&] { env->step(a); });
  }
  EXPECT_EQ(msg, model + ": MuJoCo error: Stack overflow");
  EXPECT_NE(error_of([&] { env->step(a); }).find("after a MuJoCo error"), std::string::npos);
  // The env is usable again after a reset (its data was reset, arena included).
  const auto obs = env->reset(0, task);
  auto fresh = make_env("pusher", {"model=" + model});
  EXPECT_EQ(fresh->reset(0, task), obs);
  EXPECT_FALSE(log_file_written());
}

TEST_F(MujocoLogTest, ErrorsInWorkerThreadsOfABatchedEnvPropagate) {
  Config options(find_env("pusher").schema);
  options.apply_overrides({"model=" + small_stack_pusher()});
  VecEnv venv("pusher", options, 4, 2);
  const int n = venv.size(), ad = venv.spec().act_dim, od = venv.spec().obs_dim;
  std::vector<uint64_t> seeds = {0, 1, 2, 3};
  std::vector<double> obs(n * od), act(n * ad), rew(n);
  std::vector<uint8_t> term(n), trunc(n);
  std::vector<StepInfo> info(n);
  venv.reset(seeds, sample_tasks(venv.env(0), Split::Test, 0, n), obs.data());
  std::string msg = "(no error)";
  for (int t = 0; t < venv.spec().episode_steps && msg == "(no error)"; ++t) {
    venv.expert_actions(act.data());
    msg = error_of([&] { venv.step(act.data(), obs.data(), rew.data(), term.data(), trunc.data(), info.data()); });
  }
  EXPECT_NE(msg.find("MuJoCo error: Stack overflow"), std::string::npos) << msg;
  EXPECT_FALSE(log_file_written());
}

TEST_F(MujocoLogTest, GuardsNestAndAreThreadLocal) {
  // An error inside an inner guard returns to the inner guard only.
  std::string inner;
  EXPECT_NO_THROW(mujoco_call("outer.xml", [&] {
    inner = error_of([] { mujoco_call("inner.xml", [] { mju_error("first"); }); });
  }));
  EXPECT_EQ(inner, "inner.xml: MuJoCo error: first");
  EXPECT_EQ(error_of([] { mujoco_call("outer.xml", [] { mju_error("second\nline"); }); }),
            "outer.xml: MuJoCo error: second line");
  // Each thread jumps back to its own guard.
  std::string in_thread[2];
  std::thread threads[2];
  for (int i = 0; i < 2; ++i)
    threads[i] = std::thread([&, i] {
      for (int k = 0; k < 200; ++k)
        in_thread[i] = error_of([&] { mujoco_call(std::to_string(i), [] { mju_error("x"); }); });
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(in_thread[0], "0: MuJoCo error: x");
  EXPECT_EQ(in_thread[1], "1: MuJoCo error: x");
  // Warnings outside any env name no model.
  mju_warning("plain");
  ASSERT_EQ(warnings_.size(), 1u);
  EXPECT_EQ(warnings_[0], "plain");
}

}  // namespace
}  // namespace ml3
