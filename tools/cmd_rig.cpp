// The `ml3-deploy` command line (the closed-loop rig runner,
// tools/ml3_deploy.cpp): its flags and its printed result. Apart from
// tools/cmd_deploy.cpp so that ml3-deploy links neither the exporters nor ONNX.
#include <fmt/format.h>

#include <iostream>

#include "deploy/rig.h"
#include "tools/commands.h"

namespace ml3 {

void register_rig_options(CLI::App& app, RigOptions& o, bool& json) {
  app.add_option("--policy", o.policy, "Policy file (.ml3p of ml3 export)")->required()->check(CLI::ExistingFile);
  app.add_option("--env", o.env, "Environment the rig simulates (the policy's; ml3 envs lists them)")->required();
  app.add_option("--model", o.model, "Another MJCF model of the environment (e.g. a modified robot)")
      ->check(CLI::ExistingFile);
  app.add_option("--episodes", o.episodes, "Episodes (one goal each)")->check(CLI::Range(1, 1000000));
  app.add_option("--split", o.split, "Goal split")->check(CLI::IsMember({"train", "test", "ood"}));
  app.add_option("--seed", o.seed, "Seed of goals, initial states and observation noise (as ml3 eval --seed)");
  app.add_option("--rate", o.rate, "Control rate in Hz, real time (sleep to deadlines); 0: as fast as possible")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--obs-noise", o.obs_noise, "Std of Gaussian noise added to every observation value")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--action-delay", o.action_delay, "Apply each action this many control steps late")
      ->check(CLI::Range(0, 1000));
  app.add_option("--trajectories", o.trajectories, "Write every step (observation, action, reward, distance) as CSV");
  app.add_option("--video", o.video, "Render the first --video-episodes episodes offscreen into this animated GIF");
  app.add_option("--video-episodes", o.video_episodes, "Episodes in the --video file (default 1)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--strip", o.strip, "PNG strip of each --video episode's first and last frame (default: the video's "
                                     "name with .png)");
  app.add_option("--video-width", o.video_width, "--video frame width in pixels (default 320, at most 640)")
      ->check(CLI::Range(16, 640));
  app.add_option("--video-height", o.video_height, "--video frame height in pixels (default 240, at most 480)")
      ->check(CLI::Range(16, 480));
  app.add_flag("--force", o.force, "Replace existing --trajectories, --video and --strip files");
  app.add_flag("--json", json, "Print one JSON object");
}

void print_rig_result(const nlohmann::json& j, bool json) {
  if (json) {
    std::cout << j.dump() << "\n";
    return;
  }
  const auto& l = j["latency_us"];
  fmt::print("{} on {} ({} split, {} episodes): success {:.1f}%, final distance {:.4f}, return {:.2f}\n",
             j["policy"].get<std::string>(), j["env"].get<std::string>(), j["split"].get<std::string>(),
             j["episodes"].get<int>(), 100 * j["success_rate"].get<double>(), j["final_distance_mean"].get<double>(),
             j["return_mean"].get<double>());
  fmt::print("per-action latency: p50 {:.2f} us, p99 {:.2f} us, max {:.1f} us ({} actions); missed deadlines {}{}; "
             "faults {}\n",
             l["p50"].get<double>(), l["p99"].get<double>(), l["max"].get<double>(), j["steps"].get<int64_t>(),
             j["missed_deadlines"].get<int64_t>(),
             j["rate_hz"].get<double>() > 0 ? fmt::format(" at {:g} Hz", j["rate_hz"].get<double>()) : " (no rate)",
             j["faults"].get<uint64_t>());
  if (!j["video"].is_null())
    fmt::print("video: {} ({} frames, {:.1f} KiB, rendered at {:.1f} frames/s); strip of first and last frames: {}\n",
               j["video"]["file"].get<std::string>(), j["video"]["frames"].get<int>(),
               j["video"]["bytes"].get<double>() / 1024, j["video"]["frames_per_second"].get<double>(),
               j["video"]["strip"].get<std::string>());
}

}  // namespace ml3
