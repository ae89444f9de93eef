#pragma once
// The one main() of the command-line tools (ml3, ml3-deploy): parse, run the
// sub-command's callback, map errors to exit codes -- 0 ok, 1 runtime error
// (bad config, model, checkpoint, policy file, ...), 2 bad command line.
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>
#include <string>

#include "core/error.h"

namespace ml3 {

// `help_hint` follows a bad command line, e.g. "run 'ml3 --help'".
inline int run_cli(CLI::App& app, int argc, char** argv, const std::string& help_hint) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n(" << help_hint << ")\n";
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    // ml3::Error, the runtime's errors; library errors (LibTorch) append a
    // stack trace: keep the first line.
    std::string msg = e.what();
    msg = msg.substr(0, msg.find('\n'));
    std::cerr << "error: " << msg << "\n";
    return 1;
  }
  return 0;
}

}  // namespace ml3
