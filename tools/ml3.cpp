// ml3: command-line entry point. Exit codes: 0 ok, 1 runtime error (bad
// config, model, checkpoint, ...), 2 bad command line.
#include <iostream>

#include "core/error.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ml3: robot policies in MuJoCo with standard and meta-learned losses"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all sub-commands");
  ml3::register_env_commands(app);
  ml3::register_train_commands(app);
  ml3::register_meta_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n(run 'ml3 --help' or 'ml3 <command> --help')\n";
    return 2;
  } catch (const ml3::UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const ml3::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    // Library errors (LibTorch) append a stack trace: keep the first line.
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    std::cerr << "error: " << msg << "\n";
    return 1;
  }
  return 0;
}
