// ml3: command-line entry point. Exit codes: 0 ok, 1 runtime error (bad
// config, model, checkpoint, ...), 2 bad command line.
#include "tools/cli_main.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ml3: robot policies in MuJoCo with standard and meta-learned losses"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all sub-commands");
  ml3::register_env_commands(app);
  ml3::register_train_commands(app);
  ml3::register_meta_commands(app);
  ml3::register_deploy_commands(app);
  return ml3::run_cli(app, argc, argv, "run 'ml3 --help' or 'ml3 <command> --help'");
}
