// ml3: command-line entry point. Exit codes: 0 ok, 1 runtime error (bad
// config, model, checkpoint, ...), 2 bad command line.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/run/dist.h"
#include "tools/cli_main.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  // A rank of a distributed run (WORLD_SIZE > 1, docs/distributed.md) runs
  // meta-train, meta-test or compare; other commands would only repeat the
  // same work on every rank.
  const char* world = std::getenv("WORLD_SIZE");
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (world && std::atoi(world) > 1 && !cmd.empty() && cmd[0] != '-' && !ml3::dist::command_runs_on_ranks(cmd)) {
    std::fprintf(stderr, "error: 'ml3 %s' does not run on several ranks (WORLD_SIZE=%s); distributed runs are "
                 "ml3 meta-train (algorithm ml3), meta-test and compare (docs/distributed.md)\n", argv[1], world);
    return 1;
  }
  CLI::App app{"ml3: robot policies in MuJoCo with standard and meta-learned losses"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all sub-commands");
  ml3::register_env_commands(app);
  ml3::register_train_commands(app);
  ml3::register_meta_commands(app);
  ml3::register_deploy_commands(app);
  ml3::register_launch_command(app);
  return ml3::run_cli(app, argc, argv, "run 'ml3 --help' or 'ml3 <command> --help'");
}
