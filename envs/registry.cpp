// The registry of environments: one line per environment. Each lives in its
// own folder envs/<name>/ (model file, environment class, scripted expert,
// goal regions).
#include <fmt/format.h>

#include "core/error.h"
#include "envs/arm7_button/arm7_button.h"
#include "envs/arm7_pick/arm7_pick.h"
#include "envs/arm7_push/arm7_push.h"
#include "envs/arm7_reach/arm7_reach.h"
#include "envs/arm7_slide/arm7_slide.h"
#include "envs/gym_pusher/gym_pusher.h"
#include "envs/pointmass/pointmass.h"
#include "envs/pusher/pusher.h"
#include "envs/reacher/reacher.h"

namespace ml3 {

const std::vector<EnvEntry>& env_registry() {
  static const std::vector<EnvEntry> registry = {
      pointmass_env(),
      reacher_env(),
      pusher_env(),
      gym_pusher_env(),
      arm7_reach_env(),
      arm7_push_env(),
      arm7_pick_env(),
      arm7_button_env(),
      arm7_slide_env(),
  };
  return registry;
}

const EnvEntry& find_env(const std::string& name) {
  std::string names;
  for (const auto& e : env_registry()) {
    if (e.name == name) return e;
    names += (names.empty() ? "" : ", ") + e.name;
  }
  throw Error(fmt::format("unknown environment '{}' (registered: {})", name, names));
}

std::unique_ptr<Env> make_env(const std::string& name, const Config& options) {
  return find_env(name).make(options);
}

std::unique_ptr<Env> make_env(const std::string& name, const std::vector<std::string>& overrides) {
  Config c(find_env(name).schema);
  c.apply_overrides(overrides);
  return make_env(name, c);
}

Config env_options(const std::string& name, const std::string& config_file,
                   const std::vector<std::string>& overrides) {
  Schema schema;
  schema.add_string("env.name", name, "environment name");
  schema.include("env.", find_env(name).schema);
  Config c(schema);
  if (!config_file.empty()) c.load_yaml_file(config_file, "env.");
  c.apply_overrides(overrides);
  return c.subset("env.");
}

}  // namespace ml3
