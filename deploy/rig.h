#pragma once
// ml3-deploy: a policy file (.ml3p) through ml3_runtime in closed loop on one
// simulated rig (an environment of envs/, optionally another MJCF model),
// episode after episode, as fast as possible or in real time at a fixed
// control rate, with optional observation noise and action delay.
//
// Episode i of (split, seed) is the episode i of `ml3 eval` with the same
// flags (goal i of sample_tasks(split, seed), initial state of
// mix_seed(mix_seed(seed, kEvalStream), i)), so without noise or delay the
// deployed success equals the evaluation's.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ml3 {
namespace runtime {
class Policy;
}

struct RigOptions {
  std::string policy;             // .ml3p file
  std::string env;                // environment name (must be the policy's)
  std::string model;              // another MJCF model of the environment ("" = the policy's)
  std::string split = "test";
  int episodes = 100;
  uint64_t seed = 0;
  double rate = 0;                // control rate in Hz (0: as fast as possible)
  double obs_noise = 0;           // standard deviation of Gaussian noise added to every observation value
  int action_delay = 0;           // the action computed at step t is applied at step t + action_delay
  std::string trajectories;       // CSV of every step ("" = none)
  std::string video;              // animated GIF of the first video_episodes episodes ("" = none)
  int video_episodes = 1;
  std::string strip;              // PNG of each video episode's first and last frame ("" = the video's name, .png)
  int video_width = 320, video_height = 240;
  bool force = false;             // replace existing --trajectories, --video and --strip files
};

// Runs the episodes; returns success_rate, final_distance_mean, return_mean,
// episodes, steps, latency_us {p50, p99, max, mean}, missed_deadlines,
// faults, ... Throws ml3::Error on a policy/environment mismatch.
nlohmann::json run_rig(const RigOptions& o);

// The same episodes with `policy` acting (named `label` in messages and the
// result; o.policy is not read), or the environment's scripted expert when
// `policy` is null. `env_overrides` (env.key=value) configure the
// environment; the policy's own training options come first.
nlohmann::json run_rig(const RigOptions& o, runtime::Policy* policy, const std::string& label,
                       const std::vector<std::string>& env_overrides = {});

// ml3 render: episodes of a trained policy (a run folder, a checkpoint or a
// .ml3p file) or of the scripted expert, as an animated GIF with captions and
// a PNG strip of first and last frames.
struct RenderArgs {
  std::string run_dir, checkpoint, policy;  // at most one; none: the scripted expert (needs env)
  std::string env;                          // the environment (default: the policy's)
  std::vector<std::string> overrides;       // env.key=value (e.g. env.model=my_arm.xml)
  std::string out;                          // the GIF
  std::string strip;                        // "" = out with .png
  std::string split = "test";
  int episodes = 3;
  uint64_t seed = 0;
  int width = 480, height = 480;
  bool force = false;  // replace existing output files
};
nlohmann::json render(const RenderArgs& a);

// {p50, p99, max, mean} of latencies (nearest-rank percentiles); also the
// summary of `ml3 bench deploy`.
nlohmann::json latency_summary(std::vector<double> us);

}  // namespace ml3
