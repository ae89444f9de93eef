#pragma once
// Sub-command registration. Each group lives in its own translation unit so
// that only the learning commands pay for LibTorch headers.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace ml3 {

// Adds the environment commands: envs, expert, bench envs, demo.
void register_env_commands(CLI::App& app);
// Adds the learning commands: train, eval, meta-train, meta-test, compare.
void register_train_commands(CLI::App& app);
// Adds bench sine and bench deploy.
void register_meta_commands(CLI::App& app);
// Adds export (a checkpoint -> a deployable .ml3p policy or an ONNX model) and
// render (a GIF and a PNG strip of episodes); LibTorch-free.
void register_deploy_commands(CLI::App& app);
// Adds launch: N ranks of a distributed run on this machine (tools/cmd_launch.cpp).
void register_launch_command(CLI::App& app);
// ml3-deploy's flags and its printed result (tools/cmd_rig.cpp, for tools/ml3_deploy.cpp).
struct RigOptions;
void register_rig_options(CLI::App& app, RigOptions& o, bool& json);
void print_rig_result(const nlohmann::json& j, bool json);

}  // namespace ml3
