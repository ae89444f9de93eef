// Minari datasets (envs/minari.h): our files out and back in row for row,
// datasets written independently with h5py (as a user's own tooling would)
// read in, and one precise message per bad input. LibTorch-free.
#include "envs/minari.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "demos_util.h"
#include "test_util.h"

namespace ml3 {
namespace {

namespace fs = std::filesystem;
using test::error_of;

Config defaults(const std::string& env) { return Config(find_env(env).schema); }

bool have_h5py() { return test::run_command(test::debian_python() + " -c 'import h5py'").code == 0; }

TEST(Minari, OurFileOutAndBackInKeepsEveryRow) {
  const auto dir = test::temp_dir("minari_rt");
  const auto env = make_env("pointmass");
  for (double noise : {0.0, 0.4}) {  // the expert's own episodes, and a DART recording with its clean labels
    const Demonstrations d = record_demos("pointmass", defaults("pointmass"), Split::Train, 4, 3, 1, noise);
    ASSERT_EQ(d.episodes[0].final_observation.size(), 8u);
    ASSERT_EQ(d.episodes[0].executed_actions.size(), noise > 0 ? 50u * 2 : 0u);
    const std::string demos = (dir / "a.demos").string(), back = (dir / "b.demos").string();
    save_demos(demos, d);
    const fs::path ds = dir / (noise > 0 ? "pointmass-dart-v0" : "pointmass-expert-v0");
    const auto j = export_minari(load_demos(demos), ds.string(), false);
    EXPECT_EQ(j["steps"], 200);
    EXPECT_TRUE(fs::exists(ds / "data" / "main_data.hdf5"));
    EXPECT_TRUE(fs::exists(ds / "data" / "metadata.json"));
    EXPECT_NE(error_of([&] { export_minari(d, ds.string(), false); }).find("already exists; pass --force"),
              std::string::npos);
    save_demos(back, import_minari(ds.string(), env->spec(), d.env_options));
    test::expect_same(load_demos(demos), load_demos(back));  // identical rows, and the metadata
    // Minari's layout as h5py (what Minari reads through) sees it.
    if (!have_h5py()) continue;
    const auto r = test::run_command(
        test::debian_python() + " -c \"import h5py, json, sys; f = h5py.File(sys.argv[1] + '/data/main_data.hdf5', 'r'); "
        "e = f['episode_1']; m = json.load(open(sys.argv[1] + '/data/metadata.json')); "
        "print(sorted(f.keys()), e['observations'].shape, e['actions'].shape, e['rewards'].shape, "
        "e['terminations'].dtype, bool(e['truncations'][-1]), bool(e['terminations'][-1]), list(e.attrs['options/goal'].shape), "
        "'expert_actions' in e, m['total_episodes'], m['total_steps'], m['data_format'], json.loads(m['action_space'])['high'])\" '" +
        ds.string() + "'");
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out, fmt::format("['episode_0', 'episode_1', 'episode_2', 'episode_3'] (51, 8) (50, 2) (50,) bool True "
                                 "False [2] {} 4 200 hdf5 [1.0, 1.0]\n",
                                 noise > 0 ? "True" : "False"));
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "a temporary folder was left: " << e.path();
}

TEST(Minari, ExportNeedsTheFinalObservationsAndTheExecutedActions) {
  const auto dir = test::temp_dir("minari_old");
  Demonstrations d = record_demos("pointmass", defaults("pointmass"), Split::Train, 2, 0, 1, 0.3);
  Demonstrations no_exec = d;
  for (auto& e : no_exec.episodes) e.executed_actions.clear();
  EXPECT_NE(error_of([&] { export_minari(no_exec, (dir / "x").string(), false); })
                .find("episode 0 of this action-noise (DART) recording has no executed actions"),
            std::string::npos);
  for (auto& e : d.episodes) e.final_observation.clear();
  EXPECT_NE(error_of([&] { export_minari(d, (dir / "x").string(), false); })
                .find("episode 0 has no final observation (entry 'final_observations')"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "x"));
}

// A Minari dataset as a user's own h5py code writes it: float64 observations,
// bool terminations, the goal as the reset option, no ml3 metadata; and the
// bad variants, one folder each.
const char* kWriter = R"PY(
import h5py, numpy as np, os, sys
root = sys.argv[1]
def write(name, episodes=2, steps=50, obs_dim=8, act_dim=2, obs_rows=None, mutate=None, data_dir=True, goal=True):
    d = os.path.join(root, name, 'data') if data_dir else os.path.join(root, name)
    os.makedirs(d)
    with h5py.File(os.path.join(d, 'main_data.hdf5'), 'w') as f:
        for i in range(episodes):
            g = f.create_group('episode_%d' % i)
            g.attrs['id'] = i
            g.attrs['total_steps'] = steps
            if goal:
                g.attrs['options/goal'] = np.array([0.1 * i, -0.2])
            t = np.arange(steps + 1 if obs_rows is None else obs_rows)[:, None]
            g.create_dataset('observations', data=0.001 * t + 0.1 * np.arange(obs_dim)[None, :] + i)
            g.create_dataset('actions', data=(np.sin(np.arange(steps * act_dim) + i).reshape(steps, act_dim) * 0.9).astype(np.float32))
            g.create_dataset('rewards', data=-0.01 * np.arange(steps))
            g.create_dataset('terminations', data=np.zeros(steps, dtype=bool))
            g.create_dataset('truncations', data=np.arange(steps) == steps - 1)
            if mutate: mutate(i, g)
def nan_in(key):
    def m(i, g):
        if i == 1:
            v = g[key][()]; v[3, 1] = np.nan; del g[key]; g.create_dataset(key, data=v)
    return m
def shorter(i, g):
    if i == 1:
        for k in ('actions', 'rewards', 'terminations', 'truncations'):
            v = g[k][()][:40]; del g[k]; g.create_dataset(k, data=v)
        v = g['observations'][()][:41]; del g['observations']; g.create_dataset('observations', data=v)
def dict_obs(i, g):
    v = g['observations'][()]; del g['observations']
    g.create_group('observations').create_dataset('observation', data=v)
write('good')
write('flat', data_dir=False)
write('obs_rows', obs_rows=50)
write('lengths', mutate=shorter)
write('nan_obs', mutate=nan_in('observations'))
write('nan_act', mutate=nan_in('actions'))
write('obs_dim', obs_dim=10)
write('act_dim', act_dim=3)
write('dict_obs', mutate=dict_obs)
write('no_goal', goal=False)
os.makedirs(os.path.join(root, 'empty', 'data'))
print('written')
)PY";

fs::path h5py_datasets(const std::string& tag) {
  const auto dir = test::temp_dir(tag);
  test::write_file(dir / "writer.py", kWriter);
  const auto r = test::run_command(test::debian_python() + " '" + (dir / "writer.py").string() + "' '" + dir.string() + "'");
  EXPECT_EQ(r.code, 0) << r.out;
  return dir;
}

TEST(Minari, ImportsADatasetWrittenWithH5py) {
  if (!have_h5py()) GTEST_SKIP() << "python3-h5py is not installed (tools/setup.sh installs it)";
  const auto dir = h5py_datasets("minari_h5py");
  const auto env = make_env("pointmass");
  for (const char* name : {"good", "flat"}) {  // dir/data/main_data.hdf5 (Minari's layout) or dir/main_data.hdf5
    double seconds = -1;
    const Demonstrations d = import_minari((dir / name).string(), env->spec(), {}, &seconds);
    EXPECT_GE(seconds, 0);
    ASSERT_EQ(d.episodes.size(), 2u);
    EXPECT_EQ(d.episode_steps, 50);
    EXPECT_FALSE(d.outcomes_known);  // no ml3_final_distance / ml3_success attributes
    const DemoEpisode& e = d.episodes[1];
    EXPECT_EQ(e.goal, (std::vector<float>{0.1f, -0.2f}));
    EXPECT_EQ(e.observations[3 * 8 + 2], static_cast<float>(0.001 * 3 + 0.1 * 2 + 1));
    EXPECT_EQ(e.final_observation[0], static_cast<float>(0.001 * 50 + 1));
    EXPECT_EQ(e.actions[5 * 2 + 1], static_cast<float>(std::sin(11.0 + 1) * 0.9));
    EXPECT_EQ(e.rewards[7], static_cast<float>(-0.07));
    EXPECT_TRUE(e.executed_actions.empty());
    // It saves as a valid .demos file.
    const std::string out = (dir / (std::string(name) + ".demos")).string();
    save_demos(out, d);
    EXPECT_FALSE(load_demos(out, &env->spec()).outcomes_known);
  }
}

TEST(Minari, BadDatasetsGiveOnePreciseMessage) {
  if (!have_h5py()) GTEST_SKIP() << "python3-h5py is not installed (tools/setup.sh installs it)";
  const auto dir = h5py_datasets("minari_bad");
  const auto spec = make_env("pointmass")->spec();
  auto err = [&](const std::string& name) {
    return error_of([&] { import_minari((dir / name).string(), spec); });
  };
  auto file = [&](const std::string& name) { return (dir / name / "data" / "main_data.hdf5").string() + ": "; };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", (dir / "empty").string() + ": no main_data.hdf5 (expected " + (dir / "empty/data/main_data.hdf5").string()},
      {"missing", (dir / "missing").string() + ": not a folder"},
      {"obs_rows", file("obs_rows") + "episode_0/observations: has 50 rows, expected 51 (actions has 50 rows; Minari "
                                      "stores the reset observation too, so steps + 1)"},
      {"lengths", file("lengths") + "episode_1: has 40 steps, episode_0 has 50; a .demos file holds episodes of one "
                                    "length"},
      {"nan_obs", file("nan_obs") + "episode_1/observations: row 3, [1] is nan; expected finite values"},
      {"nan_act", file("nan_act") + "episode_1/actions: row 3, [1] is nan; expected finite values"},
      {"obs_dim", file("obs_dim") + "episode_0/observations: has shape (51, 10), expected (51, 8): pointmass has 8 "
                                    "observation values"},
      {"act_dim", file("act_dim") + "episode_0/actions: has shape (50, 3), expected (steps, 2): pointmass has 2 action "
                                    "values"},
      {"dict_obs", file("dict_obs") + "episode_0/observations: is a group, expected a dataset"},
      {"no_goal", file("no_goal") + "episode_0: attribute 'options/goal' is missing, expected goal_dim = 2 numbers"},
  };
  for (const auto& [name, expected] : cases) {
    const std::string e = err(name);
    EXPECT_NE(e.find(expected), std::string::npos) << name << ": " << e;
  }
  // A dataset exported from another environment's demonstrations.
  const Demonstrations d = record_demos("pointmass", defaults("pointmass"), Split::Train, 1, 0, 1);
  export_minari(d, (dir / "pm").string(), false);
  const auto reacher = make_env("reacher");
  const std::string e = error_of([&] { import_minari((dir / "pm").string(), reacher->spec()); });
  EXPECT_NE(e.find("metadata.json: key 'ml3.env': a dataset exported from 'pointmass' demonstrations, imported as "
                   "'reacher'"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace ml3
