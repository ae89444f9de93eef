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

TEST(UserModel, PusherWithoutATableIsRejectedByName) {
  const std::string model = edited_model("pusher.xml", "pusher_notable", {{"name=\"table\"", "name=\"floor\""}});
  const std::string msg = error_of([&] { make_env("pusher", {"model=" + model}); });
  EXPECT_NE(msg.find(model), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs a geom named 'table'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ml3
