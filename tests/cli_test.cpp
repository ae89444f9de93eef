// End-to-end checks of the ml3 command line (runs the real binary).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace ml3 {
namespace {

using test::run_ml3;

nlohmann::json last_json(const std::string& out) {
  const auto pos = out.find_first_of("{[");
  return nlohmann::json::parse(out.substr(pos));
}

TEST(Cli, EnvsListsSpecs) {
  const auto r = run_ml3("envs --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  ASSERT_EQ(j.size(), 9u);  // pointmass, reacher, pusher, gym_pusher, the five arm7 tasks
  EXPECT_EQ(j[1]["name"], "reacher");
  EXPECT_EQ(j[1]["obs_dim"], 10);
}

// ml3 envs used to print a fixed [-1,1] as the action bounds: a user model
// with other ctrlranges must show its own.
TEST(Cli, EnvsPrintsTheActionBoundsOfAUserModel) {
  const auto dir = test::temp_dir("cli_bounds");
  std::string xml = test::read_text(std::string(ML3_SOURCE_DIR) + "/envs/reacher/reacher.xml");
  for (const char* joint : {"joint0", "joint1"}) {
    const std::string from = std::string("<motor joint=\"") + joint + "\" gear=\"200\" ctrllimited=\"true\" ctrlrange=\"-1 1\"/>";
    ASSERT_NE(xml.find(from), std::string::npos) << from;
    xml.replace(xml.find(from), from.size(), std::string("<motor joint=\"") + joint + "\" gear=\"100\" ctrllimited=\"true\" ctrlrange=\"-2 2\"/>");
  }
  const std::string model = (dir / "strong_reacher.xml").string();
  test::write_file(model, xml);
  auto r = run_ml3("envs --env reacher --json env.model=" + model);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["act_low"], nlohmann::json::array({-2.0, -2.0}));
  EXPECT_EQ(j[0]["act_high"], nlohmann::json::array({2.0, 2.0}));
  EXPECT_EQ(j[0]["model"], model);
  r = run_ml3("envs --env reacher env.model=" + model);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("[-2,2]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[-1,1]"), std::string::npos) << r.out;
  // The built-in models keep [-1,1]; overrides need one environment.
  const std::string table = run_ml3("envs").out;
  EXPECT_NE(table.find("[-1,1]"), std::string::npos);
  // Bounds that differ per dimension (the arm7 servos) used to be printed one
  // by one, breaking the table: "per dim" (the values are in --json), and the
  // names column is as wide as the longest name.
  EXPECT_NE(table.find("arm7_button   34    8  per dim"), std::string::npos) << table;
  EXPECT_NE(table.find("reacher       10    2   [-1,1]"), std::string::npos) << table;
  r = run_ml3("envs env.model=" + model);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("need --env"), std::string::npos) << r.out;
}

// MuJoCo's default handlers write MUJOCO_LOG.TXT into the working directory
// and print on stdout; ours print one `warning: mujoco:` line on stderr and
// turn errors into one `error:` line naming the model file.
TEST(Cli, MujocoWarningsAndErrorsComeThroughOurOutputWithoutALogFile) {
  const auto dir = test::temp_dir("cli_mjlog");
  const std::string src = test::read_text(std::string(ML3_SOURCE_DIR) + "/envs/reacher/reacher.xml");
  // A stiff spring on joint1 against the reset noise: a huge acceleration at the first step.
  const std::string range = "range=\"-3.0 3.0\"";
  std::string xml = src;
  xml.replace(xml.find(range), range.size(), range + " stiffness=\"1e12\"");
  test::write_file(dir / "unstable.xml", xml);
  auto r = run_ml3("expert --env reacher --episodes 2 env.model=unstable.xml", dir.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("warning: mujoco: Nan, Inf or huge value in QACC"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error: reacher: the simulation became unstable"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "MUJOCO_LOG.TXT")) << r.out;
  // A MuJoCo error (arena stack overflow mid-episode: a pusher with a tiny
  // stack and contacts) ends the run with one error line naming the file.
  std::string pusher = test::read_text(std::string(ML3_SOURCE_DIR) + "/envs/pusher/pusher.xml");
  pusher.replace(pusher.find("<option"), 0, "<size nstack=\"400\"/>\n  ");
  test::write_file(dir / "small_stack.xml", pusher);
  r = run_ml3("expert --env pusher --episodes 4 env.model=small_stack.xml", dir.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: small_stack.xml: MuJoCo error: Stack overflow"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "MUJOCO_LOG.TXT")) << r.out;
}

TEST(Cli, ExpertJson) {
  const auto r = run_ml3("expert --env pointmass --split test --episodes 10 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  EXPECT_EQ(j["episodes"], 10);
  EXPECT_GE(j["success_rate"].get<double>(), 0.9);
  EXPECT_TRUE(j.contains("final_distance_mean"));
}

TEST(Cli, ExpertReadsEnvSectionOfAConfigAndOverrides) {
  const auto dir = test::temp_dir("cli_cfg");
  test::write_file(dir / "c.yaml", "env:\n  name: reacher\n  episode_steps: 3\nppo:\n  lr: 1\n");
  auto r = run_ml3("expert --env reacher --episodes 4 --json --config " + (dir / "c.yaml").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_LT(last_json(r.out)["success_rate"].get<double>(), 0.5) << "3 steps are too few to reach";
  r = run_ml3("expert --env reacher --episodes 4 env.success_thresold=1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("did you mean 'env.success_threshold'"), std::string::npos) << r.out;
}

TEST(Cli, DemosRecordsTheExpertRefusesToOverwriteAndChecks) {
  const auto dir = test::temp_dir("cli_demos");
  const std::string file = (dir / "pm.demos").string();
  const std::string record = "demos --env pointmass --split ood --episodes 12 --seed 4 --threads 2 --out " + file;
  auto r = run_ml3(record + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  EXPECT_EQ(j["episodes"], 12);
  EXPECT_EQ(j["split"], "ood");
  EXPECT_EQ(j["bytes"].get<uintmax_t>(), std::filesystem::file_size(file));
  // The same goals as `ml3 expert`: the same successes.
  r = run_ml3("expert --env pointmass --split ood --episodes 12 --seed 4 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(j["success_rate"], last_json(r.out)["success_rate"]);
  EXPECT_NEAR(j["final_distance_mean"].get<double>(), last_json(r.out)["final_distance_mean"].get<double>(), 1e-6);
  // An existing file is kept unless --force.
  const auto before = std::filesystem::last_write_time(file);
  r = run_ml3(record);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: " + file + ": file already exists; pass --force to overwrite it"), std::string::npos)
      << r.out;
  EXPECT_EQ(std::filesystem::last_write_time(file), before);
  r = run_ml3(record + " --force");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("wrote " + file + ": pointmass demonstrations (ood split, seed 4), 12 episodes x 50 steps"),
            std::string::npos)
      << r.out;
  // --check: the summary; against another environment or on a corrupt file, one error line and exit 1.
  r = run_ml3("demos --check " + file + " --env pointmass --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(last_json(r.out)["success_rate"], j["success_rate"]);
  r = run_ml3("demos --check " + file + " --env reacher");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("but the environment in use is 'reacher'"), std::string::npos) << r.out;
  std::string bytes = test::read_text(file);
  bytes[bytes.size() / 3] ^= 0x01;
  std::ofstream(dir / "corrupt.demos", std::ios::binary) << bytes;
  r = run_ml3("demos --check " + (dir / "corrupt.demos").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out, "error: " + (dir / "corrupt.demos").string() +
                       ": checksum mismatch: the file is truncated or corrupt; not loaded\n");
  // Bad command lines.
  const std::vector<std::string> bad = {"demos --env pointmass", "demos --out " + file,
                                       "demos --check " + file + " --episodes 3",
                                       "demos --check " + file + " --out x.demos"};
  for (const std::string& args : bad) {
    r = run_ml3(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
  }
}

// Interop end to end: demonstrations out to a Minari dataset and back in,
// a policy out as ONNX; bad input: exit 1, the file named, nothing written.
TEST(Cli, MinariAndOnnxInteropWriteOrRefuseWithOneMessage) {
  const auto dir = test::temp_dir("cli_interop");
  const std::string demos = (dir / "pm.demos").string(), ds = (dir / "pm-expert-v0").string();
  auto r = run_ml3("demos --env pointmass --episodes 3 --out " + demos + " --export-minari " + ds);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("wrote Minari dataset " + ds + ": 3 episodes, 150 steps"), std::string::npos) << r.out;
  r = run_ml3("demos --check " + demos + " --export-minari " + ds);  // exists: kept unless --force
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: " + ds + ": already exists; pass --force"), std::string::npos) << r.out;
  EXPECT_EQ(run_ml3("demos --check " + demos + " --export-minari " + ds + " --force").code, 0);
  const std::string other = (dir / "other.demos").string();  // recording: refused before anything is written
  r = run_ml3("demos --env pointmass --episodes 3 --out " + other + " --export-minari " + ds);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_FALSE(std::filesystem::exists(other));
  const std::string back = (dir / "back.demos").string();
  r = run_ml3("demos --import-minari " + ds + " --env pointmass --out " + back);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("read Minari dataset " + ds + ": 3 episodes x 50 steps"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_text(back), test::read_text(demos));  // the same file, byte for byte
  // Bad input: one error line, exit 1, no --out file.
  const std::string out = (dir / "never.demos").string();
  std::filesystem::create_directories(dir / "empty");
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"demos --import-minari " + (dir / "empty").string() + " --env pointmass --out " + out,
       "error: " + (dir / "empty").string() + ": no main_data.hdf5"},
      {"demos --import-minari " + ds + " --env reacher --out " + out, "imported as 'reacher'"},
      {"export --format onnx --checkpoint " + demos + " --out " + (dir / "p.onnx").string(),
       "error: " + demos + ": is a demos file, expected a checkpoint"}};
  for (const auto& [args, message] : bad) {
    r = run_ml3(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << args << "\n" << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(dir / "p.onnx"));
  // A .ml3p file out as ONNX.
  const std::string policy = std::string(ML3_SOURCE_DIR) + "/tests/data/pointmass_tiny.ml3p";
  r = run_ml3("export --format onnx --policy " + policy + " --out " + (dir / "p.onnx").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(last_json(r.out)["bytes"].get<uintmax_t>(), std::filesystem::file_size(dir / "p.onnx"));
  EXPECT_EQ(last_json(r.out)["env"], "pointmass");
  // Bad command lines: exit 2.
  for (const std::string& args : {"export --policy " + policy + " --out x.ml3p",
                                  "export --format onnx --policy " + policy + " --checkpoint " + demos + " --out x.onnx",
                                  "demos --import-minari " + ds + " --out " + out})
    EXPECT_EQ(run_ml3(args).code, 2)
        << args;
}

// ml3 compare end to end: --json prints one object with the documented keys;
// the output folder is not overwritten without --force; bad input: exit 1
// with the file named, bad flags: exit 2.
TEST(Cli, CompareJsonAndErrors) {
  const auto root = test::temp_dir("cli_compare");
  test::write_file(root / "c.yaml",
                   "env: {name: pointmass}\npolicy: {hidden: [8]}\nvalue: {hidden: [8]}\n"
                   "compare: {seeds: 2, updates: 2, episodes_per_update: 4, eval_every: 1, eval_episodes: 4}\n"
                   "methods:\n  reinforce: {kind: reinforce, pg: {epochs: 1, minibatches: 1}}\n"
                   "  ppo: {kind: ppo, pg: {epochs: 1, minibatches: 1}}\n");
  const std::string base = "compare --quiet --config " + (root / "c.yaml").string() + " --out " + (root / "out").string();
  auto r = run_ml3(base + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  for (const char* k : {"env", "split", "threshold", "updates", "methods"}) EXPECT_TRUE(j.contains(k)) << k;
  ASSERT_EQ(j["methods"].size(), 2u);
  for (const char* k : {"name", "kind", "shaped", "final_success_rate", "final_distance_mean", "updates_to_threshold",
                        "seeds_reaching_threshold", "auc", "ci"})
    EXPECT_TRUE(j["methods"][1].contains(k)) << k;
  EXPECT_EQ(run_ml3(base).code, 1);  // exists
  r = run_ml3(base + " --force");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("| method | kind |"), std::string::npos) << r.out;
  r = run_ml3(base + " --force methods.ll.kind=learned_loss methods.ll.learned_loss.file=" + (root / "no.ml3").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no.ml3"), std::string::npos) << r.out;
  EXPECT_EQ(run_ml3(base + " --split val").code, 2);
}

TEST(Cli, BadCommandLinesExitWithCode2) {
  for (const char* args : {"expert --env reacher --bogus", "expert --env reacher --episodes zero",
                           "expert --env reacher --split val", "nosuchcommand", "bench"}) {
    const auto r = run_ml3(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("error:"), std::string::npos) << args;
  }
  const auto r = run_ml3("expert --env walker");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("unknown environment 'walker'"), std::string::npos) << r.out;
}

TEST(Cli, HelpOnEverySubcommand) {
  for (const char* args : {"--help", "envs --help", "expert --help", "demos --help", "bench envs --help", "demo --help", "train --help",
                           "eval --help", "meta-train --help", "meta-test --help", "compare --help", "bench sine --help",
                           "bench train --help", "dynamics --help", "dynamics fit --help", "dynamics eval --help"}) {
    const auto r = run_ml3(args);
    EXPECT_EQ(r.code, 0) << args;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << args << "\n" << r.out;
  }
}

TEST(Cli, BenchEnvsJson) {
  const auto r = run_ml3("bench envs --seconds 0.3 --batch 4 --env pointmass --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  ASSERT_EQ(j.size(), 1u);
  for (const char* k : {"env", "env_steps_per_s", "raw_env_steps_per_s", "overhead_ratio"})
    EXPECT_TRUE(j[0].contains(k)) << k;
  EXPECT_GT(j[0]["env_steps_per_s"].get<double>(), 0);
}

// ml3 bench train: both backends' timings and the same-run env rate, in one JSON
// object; a learner without pg.backend is refused with one error line.
TEST(Cli, BenchTrainJson) {
  const auto dir = test::temp_dir("cli_bench_train");
  test::write_file(dir / "c.yaml", "algorithm: ppo\nenv:\n  name: pointmass\ntrain:\n  episodes_per_iteration: 4\n");
  const std::string cfg = (dir / "c.yaml").string();
  const auto r = run_ml3("bench train --config " + cfg + " --iterations 2 --env-seconds 0.2 --env-batch 4 --json pg.epochs=1");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  EXPECT_GT(j["batched_env_steps_per_s_2_threads"].get<double>(), 0);
  // Each backend is compared with the env rate measured right before and
  // right after its own iterations, not with one measurement before both.
  const auto& m = j.at("batched_env_measurements");
  ASSERT_EQ(m.size(), 3u);
  int i = 0;
  for (const char* b : {"torch", "fast"}) {
    for (const char* k : {"update_seconds_per_iteration", "rollout_seconds_per_iteration", "train_steps_per_s",
                          "batched_env_steps_per_s", "vs_batched_env"})
      EXPECT_GT(j[b][k].get<double>(), 0) << b << " " << k;
    EXPECT_DOUBLE_EQ(j[b]["batched_env_steps_per_s"].get<double>(), 0.5 * (m[i].get<double>() + m[i + 1].get<double>())) << b;
    EXPECT_DOUBLE_EQ(j[b]["vs_batched_env"].get<double>(),
                     j[b]["train_steps_per_s"].get<double>() / j[b]["batched_env_steps_per_s"].get<double>()) << b;
    ++i;
  }
  EXPECT_GT(j["update_speedup"].get<double>(), 0);
  EXPECT_FALSE(j.at("blas_kernels").get<std::string>().empty());
  EXPECT_FALSE(j.at("fast_products").get<std::string>().empty());
  for (const char* k : {"fast", "blas", "ratio"}) EXPECT_GT(j.at("product_100x64x64_us").at(k).get<double>(), 0) << k;
  EXPECT_EQ(run_ml3("bench train --iterations 2").code, 2) << "--config is required";
  test::write_file(dir / "bc.yaml", "algorithm: bc\nenv:\n  name: pointmass\n");
  const auto bad = run_ml3("bench train --config " + (dir / "bc.yaml").string() + " --iterations 1");
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("needs a policy-gradient algorithm"), std::string::npos) << bad.out;
}

// ml3 dynamics fit and eval: the fit's JSON with its held-out errors, the model file;
// model-based meta-training refuses a truncated model file with one error
// naming it (exit 1).
TEST(Cli, DynamicsFitAndATruncatedModelFile) {
  const auto dir = test::temp_dir("cli_dynamics");
  const std::string cfg = std::string(ML3_SOURCE_DIR) + "/configs/reacher_mbrl_ml3.yaml";
  const std::string small = " mbrl.babble_episodes=20 mbrl.holdout_episodes=4 mbrl.ensemble=2 mbrl.fit_epochs=3 env.episode_steps=10";
  auto r = run_ml3("dynamics fit --quiet --json --config " + cfg + " --out " + (dir / "fit").string() + small);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = last_json(r.out);
  EXPECT_EQ(j["held_out"]["one_step_rmse"].size(), 4u);
  EXPECT_EQ(j["held_out"]["horizon"], 10);
  EXPECT_EQ(j["train_episodes"], 16);
  // The same model evaluated on fresh babbling: the same fields.
  r = run_ml3("dynamics eval --json --model " + (dir / "fit" / "dynamics.ml3").string() + " --config " + cfg + small);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(last_json(r.out)["held_out"]["episodes"], 4);
  EXPECT_EQ(last_json(r.out)["held_out"]["horizon"], 10);
  r = run_ml3("dynamics fit --quiet --config " + cfg + " --out " + (dir / "fit").string() + small);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("--force"), std::string::npos) << r.out;
  r = run_ml3("dynamics fit --quiet --config " + cfg + " --out " + (dir / "x").string() + " mbrl.ensembel=2");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("did you mean 'mbrl.ensemble'"), std::string::npos) << r.out;
  const std::string text = test::read_text(dir / "fit" / "dynamics.ml3");
  test::write_file(dir / "cut.ml3", text.substr(0, text.size() - 100));
  r = run_ml3("meta-train --quiet --config " + cfg + " --out " + (dir / "run").string() + small +
              " mbrl.iterations=1 mbrl.dynamics_file=" + (dir / "cut.ml3").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("cut.ml3"), std::string::npos) << r.out;
  std::filesystem::remove_all(dir);
}

// ml3 dynamics fit/eval on another algorithm's config: one message naming the
// file and the algorithm it needs, exit 1, no output folder.
TEST(Cli, DynamicsRefusesAConfigOfAnotherAlgorithm) {
  const auto dir = test::temp_dir("dyn_wrong");
  const std::string cfg = std::string(ML3_SOURCE_DIR) + "/configs/reacher_ml3.yaml";
  auto r = test::run_ml3("dynamics fit --config " + cfg + " --out " + (dir / "fit").string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(cfg + ": the model-based reacher needs a config with algorithm: mbrl (got 'ml3')"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "fit"));
  r = test::run_ml3("dynamics eval --model " + cfg + " --config " + cfg);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("algorithm: mbrl (got 'ml3')"), std::string::npos) << r.out;
  std::filesystem::remove_all(dir);
}

// docs/configs.md is what tools/configs_md.sh prints from this binary's schemas:
// a key added, renamed or re-documented without regenerating it fails here.
TEST(Docs, ConfigsMdIsUpToDate) {
  const auto dir = test::temp_dir("configs_md");
  const std::string build = std::filesystem::path(ML3_BINARY).parent_path().string();
  const auto r = test::run_command("bash tools/configs_md.sh '" + build + "' > '" + (dir / "configs.md").string() + "'",
                                   ML3_SOURCE_DIR);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(test::read_text(dir / "configs.md") == test::read_text(std::string(ML3_SOURCE_DIR) + "/docs/configs.md"))
      << "docs/configs.md is out of date: run tools/configs_md.sh > docs/configs.md";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ml3
