#include "deploy/rig.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "deploy/export.h"
#include "deploy/render.h"
#include "envs/env.h"
#include "envs/mujoco_env.h"

namespace ml3 {
namespace {

namespace fs = std::filesystem;

using Clock = std::chrono::steady_clock;

// The strip's file: --strip, or the video's name with .png.
std::string strip_file_of(const std::string& video, const std::string& strip) {
  return strip.empty() ? fs::path(video).replace_extension(".png").string() : strip;
}

// Output files are not replaced unless --force: an earlier run's video or
// trajectories are results too.
void refuse_existing(const std::vector<std::string>& files, bool force) {
  for (const std::string& f : files)
    if (!f.empty() && fs::exists(f) && !force) throw Error(f + ": file already exists; pass --force to overwrite it");
}

std::string list_text(const std::vector<std::string>& v) {
  std::string t;
  for (size_t i = 0; i < v.size(); ++i) t += (i ? "," : "") + v[i];
  return t;
}

// The policy must read this environment's observations and drive its actuators.
void check_spec(const runtime::PolicyData& p, const EnvSpec& s, const std::string& policy_file) {
  if (static_cast<int>(p.obs_dim) != s.obs_dim || static_cast<int>(p.act_dim) != s.act_dim)
    throw Error(fmt::format("{}: the policy maps {} observations to {} actions, the {} environment ({}) has {} "
                            "observations and {} actions",
                            policy_file, p.obs_dim, p.act_dim, s.name, s.model_file, s.obs_dim, s.act_dim));
  if (p.obs_names != s.obs_names)
    throw Error(fmt::format("{}: the policy's observation layout ({}) differs from the environment's ({})", policy_file,
                            list_text(p.obs_names), list_text(s.obs_names)));
}

}  // namespace

nlohmann::json latency_summary(std::vector<double> us) {
  if (us.empty()) return {{"p50", 0.0}, {"p99", 0.0}, {"max", 0.0}, {"mean", 0.0}};
  std::sort(us.begin(), us.end());
  double mean = 0;
  for (double v : us) mean += v / us.size();
  auto at = [&](double q) { return us[std::min(us.size() - 1, static_cast<size_t>(q * (us.size() - 1) + 0.5))]; };
  return {{"p50", at(0.5)}, {"p99", at(0.99)}, {"max", us.back()}, {"mean", mean}};
}

nlohmann::json run_rig(const RigOptions& o) {
  runtime::Policy policy = runtime::Policy::load(o.policy);
  return run_rig(o, &policy, o.policy);
}

nlohmann::json run_rig(const RigOptions& o, runtime::Policy* policy, const std::string& label,
                       const std::vector<std::string>& env_overrides) {
  if (o.episodes < 1) throw UsageError("--episodes must be >= 1");
  if (o.rate < 0 || o.obs_noise < 0 || o.action_delay < 0)
    throw UsageError("--rate, --obs-noise and --action-delay must be >= 0");
  refuse_existing({o.trajectories, o.video, o.video.empty() ? "" : strip_file_of(o.video, o.strip)}, o.force);
  std::vector<std::string> overrides;
  if (policy) {
    const runtime::PolicyData& p = policy->info();
    if (o.env != p.env)
      throw Error(fmt::format("{}: a policy for the {} environment, not for {} (pass --env {}, and --model for "
                              "another model of it)",
                              label, p.env, o.env, p.env));
    overrides = policy_env_overrides(p);
  }
  overrides.insert(overrides.end(), env_overrides.begin(), env_overrides.end());
  if (!o.model.empty()) overrides.push_back("env.model=" + o.model);
  auto env = make_env(o.env, env_options(o.env, "", overrides));
  const EnvSpec& spec = env->spec();
  if (policy) {
    const runtime::PolicyData& p = policy->info();
    check_spec(p, spec, label);
    for (uint32_t j = 0; j < p.act_dim; ++j)
      if (p.act_low[j] != spec.act_low[j] || p.act_high[j] != spec.act_high[j])
        std::fprintf(stderr,
                     "warning: %s: action %u bounds [%g, %g] differ from the model's [%g, %g]; the model clips\n",
                     label.c_str(), j, p.act_low[j], p.act_high[j], spec.act_low[j], spec.act_high[j]);
  }

  const int od = spec.obs_dim, ad = spec.act_dim, T = spec.episode_steps;
  const auto tasks = sample_tasks(*env, parse_split(o.split), o.seed, o.episodes);
  const uint64_t reset_stream = eval_reset_stream(o.seed);
  Rng noise(mix_seed(o.seed, 0x0B5E));  // observation noise (only drawn when --obs-noise > 0)
  std::vector<double> obs(od), seen(od), action(ad * (o.action_delay + 1)), applied(ad);
  std::vector<double> latency_us;
  latency_us.reserve(static_cast<size_t>(o.episodes) * T);
  std::ofstream traj;
  if (!o.trajectories.empty()) {
    traj.open(o.trajectories);
    if (!traj) throw Error(o.trajectories + ": cannot write the trajectories file");
    traj << "episode,t";
    for (const auto& n : spec.obs_names) traj << ",obs_" << n;
    for (int j = 0; j < ad; ++j) traj << ",action_" << j;
    traj << ",reward,distance\n";
    traj.precision(9);
  }

  std::unique_ptr<GifRecorder> video;
  std::unique_ptr<FrameStrip> strip;
  const auto* sim = dynamic_cast<const MujocoEnv*>(env.get());
  if (!o.video.empty()) {
    if (!sim) throw Error("--video: the " + o.env + " environment is not a MuJoCo simulation");
    video = std::make_unique<GifRecorder>(sim->model(), o.video_width, o.video_height,
                                          1.0 / (spec.timestep * spec.frame_skip));
    strip = std::make_unique<FrameStrip>(video->width(), video->height());
  }
  // The caption of a frame: which episode, which step, how far from the goal.
  auto caption = [&](int i, int t, double distance) {
    return fmt::format("{}  episode {}/{}\nstep {}/{}\ndistance {:.3f}{}", label, i + 1, o.episodes, t, T, distance,
                       distance <= spec.success_threshold ? "  (at the goal)" : "");
  };
  // The expert's actions, or the policy's.
  auto act = [&](const double* observation, double* a) {
    if (policy) return policy->act(observation, a);
    env->expert_action(a);
    return true;
  };

  double success = 0, final_distance = 0, returns = 0;
  int64_t missed = 0, steps = 0;
  const auto period = o.rate > 0 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / o.rate))
                                 : Clock::duration::zero();
  const auto start = Clock::now();
  auto deadline = start;
  for (int i = 0; i < o.episodes; ++i) {
    env->reset(mix_seed(reset_stream, i), tasks[i], obs.data());
    // Delayed actions: a ring of the last action_delay + 1 actions, the safe action before the first.
    for (int k = 0; k <= o.action_delay; ++k) {
      double* a = &action[k * ad];
      if (policy) {
        policy->safe_action(a);
      } else {
        for (int j = 0; j < ad; ++j) a[j] = std::clamp(0.0, spec.act_low[j], spec.act_high[j]);
      }
    }
    const bool record = video && i < o.video_episodes;
    if (record) {
      video->frame(sim->data(), caption(i, 0, env->distance()));
      strip->add(video->last_frame());
    }
    double ret = 0;
    StepInfo info;
    for (int t = 0; t < T; ++t) {
      if (o.rate > 0) std::this_thread::sleep_until(deadline);
      for (int j = 0; j < od; ++j) seen[j] = obs[j] + (o.obs_noise > 0 ? o.obs_noise * noise.normal() : 0.0);
      double* slot = &action[(t % (o.action_delay + 1)) * ad];
      const auto t0 = Clock::now();
      act(seen.data(), slot);
      latency_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      // With a delay of d, step t applies the action computed at step t - d (its slot is the next one to be overwritten).
      const double* a = &action[((t + 1) % (o.action_delay + 1)) * ad];
      std::copy(a, a + ad, applied.begin());
      double reward;
      bool terminated, truncated;
      if (traj.is_open()) {
        traj << i << ',' << t;
        for (double v : seen) traj << ',' << v;
        for (double v : applied) traj << ',' << v;
      }
      env->step(applied.data(), obs.data(), &reward, &terminated, &truncated, &info);
      if (traj.is_open()) traj << ',' << reward << ',' << info.distance << '\n';
      if (record) video->frame(sim->data(), caption(i, t + 1, info.distance));
      ret += reward;
      ++steps;
      if (o.rate > 0) {
        deadline += period;
        if (Clock::now() > deadline) ++missed;
      }
      if (terminated || truncated) break;
    }
    if (record) strip->add(video->last_frame());
    success += info.success;
    final_distance += info.distance;
    returns += ret;
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  nlohmann::json video_info = nullptr;
  if (video) {
    const std::string strip_file = strip_file_of(o.video, o.strip);
    video_info = {{"file", o.video},
                  {"frames", video->frames()},
                  {"width", video->width()},
                  {"height", video->height()},
                  {"bytes", video->save(o.video)},
                  {"render_seconds", video->render_seconds()},
                  {"frames_per_second", video->frames() / std::max(1e-9, video->render_seconds())},
                  {"strip", strip_file},
                  {"strip_frames", strip->frames()},
                  {"strip_bytes", strip->save(strip_file)}};
  }
  return {{"policy", label},
          {"env", o.env},
          {"model", spec.model_file},
          {"split", o.split},
          {"episodes", o.episodes},
          {"seed", o.seed},
          {"steps", steps},
          {"success_rate", success / o.episodes},
          {"final_distance_mean", final_distance / o.episodes},
          {"return_mean", returns / o.episodes},
          {"success_threshold", spec.success_threshold},
          {"rate_hz", o.rate},
          {"obs_noise", o.obs_noise},
          {"action_delay", o.action_delay},
          {"latency_us", latency_summary(std::move(latency_us))},
          {"missed_deadlines", missed},
          {"faults", policy ? policy->faults() : 0},
          {"wall_seconds", wall},
          {"video", video_info}};
}

nlohmann::json render(const RenderArgs& a) {
  const int sources = !a.run_dir.empty() + !a.checkpoint.empty() + !a.policy.empty();
  if (sources > 1) throw UsageError("render takes at most one of --run, --checkpoint and --policy");
  if (a.out.empty()) throw UsageError("render needs --out FILE.gif");
  if (sources == 0 && a.env.empty())
    throw UsageError("render needs a policy (--run DIR, --checkpoint FILE or --policy FILE.ml3p) or --env NAME for "
                     "the scripted expert");
  const std::string strip = strip_file_of(a.out, a.strip);
  refuse_existing({a.out, strip}, a.force);
  if (!rendering_built()) throw Error("render: this build cannot render (EGL was not found when it was configured)");
  std::unique_ptr<runtime::Policy> policy;
  std::string label = "expert";
  if (sources) {
    if (!a.policy.empty()) {
      policy = std::make_unique<runtime::Policy>(runtime::Policy::load(a.policy));
      label = fs::path(a.policy).filename().string();
    } else {
      const std::string path = checkpoint_of(a.run_dir, a.checkpoint);
      policy = std::make_unique<runtime::Policy>(policy_from_checkpoint(Archive::load(path, "checkpoint")), path);
      label = a.run_dir.empty() ? fs::path(path).filename().string() : fs::path(a.run_dir).filename().string();
    }
  }
  RigOptions o;
  o.env = a.env.empty() ? policy->info().env : a.env;
  o.split = a.split;
  o.episodes = a.episodes;
  o.seed = a.seed;
  o.video = a.out;
  o.video_episodes = a.episodes;
  o.strip = strip;
  o.force = a.force;
  o.video_width = a.width;
  o.video_height = a.height;
  nlohmann::json j = run_rig(o, policy.get(), label, a.overrides);
  j.erase("latency_us");  // render is not a timing run
  j.erase("missed_deadlines");
  return j;
}

}  // namespace ml3
