// Deployment: `ml3 export` (a policy checkpoint -> a .ml3p file for
// ml3_runtime, or an ONNX model) and `ml3 render` (episodes of a policy or of
// the scripted expert as a GIF and a PNG strip); the `ml3-deploy` command line
// is in tools/cmd_rig.cpp. LibTorch-free: the work is in deploy/.
#include <fmt/format.h>

#include <iostream>

#include "deploy/export.h"
#include "deploy/onnx_export.h"
#include "deploy/rig.h"
#include "tools/commands.h"

namespace ml3 {

void register_deploy_commands(CLI::App& app) {
  static ExportArgs ex;
  static bool json = false;
  auto* cmd = app.add_subcommand(
      "export", "Export a trained policy (checkpoint of ml3 train) as a .ml3p file for ml3_runtime / ml3-deploy, or "
                "as an ONNX model (--format onnx)");
  auto* run = cmd->add_option("--run", ex.run_dir, "Run folder (uses checkpoints/last.ckpt)")->check(CLI::ExistingDirectory);
  auto* ck = cmd->add_option("--checkpoint", ex.checkpoint, "Checkpoint file")->check(CLI::ExistingFile)->excludes(run);
  auto* lt = cmd->add_option("--loss-target", ex.loss_target,
                             "A learned-loss file (loss.ml3) whose target network T is exported as the policy")
                 ->check(CLI::ExistingFile)
                 ->excludes(run)
                 ->excludes(ck);
  cmd->add_option("--policy", ex.policy, "An exported .ml3p file (with --format onnx)")
      ->check(CLI::ExistingFile)
      ->excludes(run)
      ->excludes(ck)
      ->excludes(lt);
  cmd->add_option("--format", ex.format, "ml3p (default; ml3_runtime) or onnx (docs/deploy.md, ONNX)")
      ->check(CLI::IsMember({"ml3p", "onnx"}));
  cmd->add_option("--out", ex.out, "File to write (docs/deploy.md)")->required();
  cmd->add_flag("--force", ex.force, "Overwrite an existing --out file");
  cmd->add_flag("--json", json, "Print one JSON object");
  cmd->callback([] {
    const bool onnx = ex.format == "onnx";
    const nlohmann::json j = onnx ? export_onnx(ex) : export_policy(ex);
    if (json) {
      std::cout << j.dump() << "\n";
      return;
    }
    std::string sizes;
    for (const auto& s : j["sizes"]) sizes += (sizes.empty() ? "" : "-") + std::to_string(s.get<int>());
    fmt::print("wrote {}: {} policy, MLP {} {}, observation normalisation {}, {} bytes, {}\n",
               j["out"].get<std::string>(), j["env"].get<std::string>(), sizes, j["activation"].get<std::string>(),
               j["normalize"].get<bool>() ? "on" : "off", j["bytes"].get<size_t>(),
               onnx ? fmt::format("ONNX opset {}, input '{}', output '{}'", j["opset"].get<int>(),
                                  j["input"].get<std::string>(), j["output"].get<std::string>())
                    : "checksum " + j["checksum"].get<std::string>());
  });

  static RenderArgs ra;
  static bool render_json = false;
  auto* rc = app.add_subcommand(
      "render", "Render episodes of a trained policy or of the scripted expert: an animated GIF with captions "
                "(episode, step, distance) and a PNG strip of every episode's first and last frame");
  auto* rrun = rc->add_option("--run", ra.run_dir, "Run folder of ml3 train (uses checkpoints/last.ckpt)")
                   ->check(CLI::ExistingDirectory);
  auto* rckpt = rc->add_option("--checkpoint", ra.checkpoint, "Policy checkpoint")->check(CLI::ExistingFile);
  auto* rpol = rc->add_option("--policy", ra.policy, "Policy file (.ml3p of ml3 export)")->check(CLI::ExistingFile);
  rrun->excludes(rckpt, rpol);
  rckpt->excludes(rpol);
  rc->add_option("--env", ra.env,
                 "Environment (default: the policy's); without a policy, the scripted expert of this environment");
  rc->add_option("--out", ra.out, "Animated GIF to write")->required();
  rc->add_option("--strip", ra.strip, "PNG strip of first and last frames (default: --out with .png)");
  rc->add_option("--episodes", ra.episodes, "Episodes (one goal each; default 3)")->check(CLI::Range(1, 100));
  rc->add_option("--split", ra.split, "Goal split")->check(CLI::IsMember({"train", "test", "ood"}));
  rc->add_option("--seed", ra.seed, "Seed of goals and initial states (as ml3 eval --seed)");
  rc->add_option("--width", ra.width, "Frame width in pixels (at most 640)")->check(CLI::Range(16, 640));
  rc->add_option("--height", ra.height, "Frame height in pixels (at most 480)")->check(CLI::Range(16, 480));
  rc->add_flag("--force", ra.force, "Overwrite existing output files");
  rc->add_flag("--json", render_json, "Print one JSON object");
  rc->add_option("overrides", ra.overrides, "env.key=value overrides, e.g. env.model=my_arm.xml");
  rc->callback([] {
    const nlohmann::json j = render(ra);
    if (render_json) {
      std::cout << j.dump() << "\n";
      return;
    }
    const auto& v = j["video"];
    fmt::print("{} on {} ({} split, {} episodes): success {:.1f}%, final distance {:.4f}\n",
               j["policy"].get<std::string>(), j["env"].get<std::string>(), j["split"].get<std::string>(),
               j["episodes"].get<int>(), 100 * j["success_rate"].get<double>(), j["final_distance_mean"].get<double>());
    fmt::print("wrote {} ({} frames of {}x{}, {:.1f} KiB; rendered at {:.1f} frames/s) and {} ({} frames, {:.1f} KiB)\n",
               v["file"].get<std::string>(), v["frames"].get<int>(), v["width"].get<int>(), v["height"].get<int>(),
               v["bytes"].get<double>() / 1024, v["frames_per_second"].get<double>(), v["strip"].get<std::string>(),
               v["strip_frames"].get<int>(), v["strip_bytes"].get<double>() / 1024);
  });
}

}  // namespace ml3
