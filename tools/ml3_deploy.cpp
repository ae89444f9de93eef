// ml3-deploy: runs an exported policy (.ml3p) through ml3_runtime in closed
// loop on a simulated rig (an ml3 environment, optionally another MJCF model),
// as fast as possible or in real time. Links ml3_runtime and the environments,
// not LibTorch.
#include "deploy/rig.h"
#include "tools/cli_main.h"
#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ml3-deploy: run an exported policy (.ml3p) in closed loop on a simulated rig", "ml3-deploy"};
  ml3::RigOptions o;
  bool json = false;
  ml3::register_rig_options(app, o, json);
  app.callback([&] { ml3::print_rig_result(ml3::run_rig(o), json); });
  return ml3::run_cli(app, argc, argv, "run 'ml3-deploy --help'");
}
