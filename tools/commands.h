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
// Adds bench sine.
void register_meta_commands(CLI::App& app);

}  // namespace ml3
