#include "envs/demos.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/archive.h"
#include "core/error.h"
#include "envs/expert_runs.h"

namespace ml3 {
namespace {

using json = nlohmann::json;

const char* const kKind = "demos";

[[noreturn]] void fail_meta(const std::string& path, const std::string& key, const std::string& what) {
  throw Error(fmt::format("{}: metadata '{}': {}", path, key, what));
}
[[noreturn]] void fail_entry(const std::string& path, const std::string& entry, const std::string& what) {
  throw Error(fmt::format("{}: entry '{}': {}", path, entry, what));
}

// ---- metadata -------------------------------------------------------------------
const json& meta_key(const json& meta, const std::string& path, const std::string& key, const char* expected) {
  if (!meta.contains(key)) fail_meta(path, key, fmt::format("missing (expected {})", expected));
  return meta[key];
}

// A JSON integer >= 0 (signed in memory, unsigned when parsed).
bool non_negative(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) return *out = v.get<uint64_t>(), true;
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return *out = static_cast<uint64_t>(v.get<int64_t>()), true;
  return false;
}

// An integer in [1, 2^31 - 1].
int meta_int(const json& meta, const std::string& path, const std::string& key) {
  const char* expected = "an integer >= 1";
  const json& v = meta_key(meta, path, key, expected);
  uint64_t n = 0;
  if (!non_negative(v, &n) || n < 1 || n > 0x7fffffffu)
    fail_meta(path, key, fmt::format("{} is not {}", v.dump(), expected));
  return static_cast<int>(n);
}

std::vector<double> meta_bounds(const json& meta, const std::string& path, const std::string& key, int act_dim) {
  const std::string expected = fmt::format("a list of act_dim = {} finite numbers", act_dim);
  const json& v = meta_key(meta, path, key, expected.c_str());
  const bool ok =
      v.is_array() && static_cast<int>(v.size()) == act_dim &&
      std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number() && std::isfinite(x.get<double>()); });
  if (!ok) fail_meta(path, key, fmt::format("{} is not {}", v.dump(), expected));
  return v.get<std::vector<double>>();
}

// ---- blobs ----------------------------------------------------------------------
std::string shape_text(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

// The entry `name` with dtype and shape as promised; `dims` names the shape.
const Blob& entry(const Archive& a, const std::string& path, const std::string& name, const std::string& dtype,
                  const std::vector<int64_t>& shape, const char* dims) {
  const std::string expected = fmt::format("{} {} ({})", dtype, shape_text(shape), dims);
  if (!a.has(name)) fail_entry(path, name, "missing (expected " + expected + ")");
  const Blob& b = a.get(name);
  if (b.dtype != dtype || b.shape != shape)
    fail_entry(path, name, fmt::format("is {} {}, expected {}", b.dtype, shape_text(b.shape), expected));
  return b;
}

template <class T>
std::vector<T> values_of(const Blob& b) {
  std::vector<T> v(b.numel());
  std::memcpy(v.data(), b.bytes.data(), b.bytes.size());
  return v;
}

// "episode 3, step 7, [2]" for flat index k of an [episodes, steps, dim] array.
std::string where(size_t k, int steps, int dim) {
  const size_t per_episode = static_cast<size_t>(steps) * dim;
  std::string s = fmt::format("episode {}", k / per_episode);
  if (steps > 1) s += fmt::format(", step {}", k % per_episode / dim);
  if (dim > 1) s += fmt::format(", [{}]", k % dim);
  return s;
}

std::vector<float> finite_f32(const Blob& b, const std::string& path, const std::string& name, int steps, int dim) {
  std::vector<float> v = values_of<float>(b);
  for (size_t k = 0; k < v.size(); ++k)
    if (!std::isfinite(v[k]))
      fail_entry(path, name, fmt::format("{} is {}; expected finite values", where(k, steps, dim), v[k]));
  return v;
}

// Every action within [act_low - tol, act_high + tol] (float32 rounding of the bound).
void check_bounds(const std::vector<float>& act, const Demonstrations& d, const std::string& path, const char* name) {
  for (size_t k = 0; k < act.size(); ++k) {
    const int j = static_cast<int>(k % d.act_dim);
    const double lo = d.act_low[j], hi = d.act_high[j];
    const double tol_lo = 1e-6 * std::max(1.0, std::abs(lo)), tol_hi = 1e-6 * std::max(1.0, std::abs(hi));
    if (act[k] < lo - tol_lo || act[k] > hi + tol_hi)
      fail_entry(path, name,
                 fmt::format("{} is {}, outside the declared bounds [{}, {}] (act_low, act_high)",
                             where(k, d.episode_steps, d.act_dim), act[k], lo, hi));
  }
}

Archive to_archive(const Demonstrations& d) {
  Archive a(kKind);
  json& m = a.meta();
  m = {{"version", kDemosFormatVersion}, {"env", d.env},           {"obs_dim", d.obs_dim},
       {"act_dim", d.act_dim},           {"goal_dim", d.goal_dim}, {"episode_steps", d.episode_steps},
       {"episodes", d.episodes.size()},  {"act_low", d.act_low},   {"act_high", d.act_high},
       {"split", split_name(d.split)},   {"seed", d.seed},         {"env_options", d.env_options},
       {"action_noise", d.action_noise}};
  if (!d.outcomes_known) m["outcomes_known"] = false;
  const int64_t n = static_cast<int64_t>(d.episodes.size()), T = d.episode_steps;
  std::vector<float> goals, obs, act, rew, dist, final_obs, executed;
  std::vector<int64_t> success;
  // The optional per-episode vectors: every episode has them or none does.
  auto all_or_none = [&](auto member, const char* name) {
    const size_t with = std::count_if(d.episodes.begin(), d.episodes.end(),
                                      [&](const DemoEpisode& e) { return !(e.*member).empty(); });
    if (with != 0 && with != d.episodes.size())
      throw Error(fmt::format("demonstrations of {}: {} of {} episodes have {}; every episode or none must", d.env,
                              with, d.episodes.size(), name));
    return with != 0;
  };
  const bool has_final = all_or_none(&DemoEpisode::final_observation, "a final observation");
  const bool has_executed = all_or_none(&DemoEpisode::executed_actions, "executed actions");
  auto append = [&](std::vector<float>& to, const std::vector<float>& from, size_t i, const char* name, int64_t size,
                    const char* dims) {
    if (static_cast<int64_t>(from.size()) != size)
      throw Error(fmt::format("demonstrations of {}: episode {}: {} has {} values, expected {} = {}", d.env, i, name,
                              from.size(), dims, size));
    to.insert(to.end(), from.begin(), from.end());
  };
  for (size_t i = 0; i < d.episodes.size(); ++i) {
    const DemoEpisode& e = d.episodes[i];
    append(goals, e.goal, i, "goal", d.goal_dim, "goal_dim");
    append(obs, e.observations, i, "observations", T * d.obs_dim, "episode_steps x obs_dim");
    append(act, e.actions, i, "actions", T * d.act_dim, "episode_steps x act_dim");
    append(rew, e.rewards, i, "rewards", T, "episode_steps");
    if (has_final) append(final_obs, e.final_observation, i, "final_observation", d.obs_dim, "obs_dim");
    if (has_executed) append(executed, e.executed_actions, i, "executed_actions", T * d.act_dim, "episode_steps x act_dim");
    dist.push_back(e.final_distance);
    success.push_back(e.success ? 1 : 0);
  }
  auto put_f32 = [&](const char* name, const std::vector<int64_t>& shape, const std::vector<float>& v) {
    a.put(name, "f32", shape, v.data(), v.size() * sizeof(float));
  };
  put_f32("goals", {n, d.goal_dim}, goals);
  put_f32("observations", {n, T, d.obs_dim}, obs);
  put_f32("actions", {n, T, d.act_dim}, act);
  put_f32("rewards", {n, T}, rew);
  put_f32("final_distance", {n}, dist);
  if (has_final) put_f32("final_observations", {n, d.obs_dim}, final_obs);
  if (has_executed) put_f32("executed_actions", {n, T, d.act_dim}, executed);
  a.put("success", "i64", {n}, success.data(), success.size() * sizeof(int64_t));
  return a;
}

// Validates an archive read from (or about to be written to) `path`.
Demonstrations from_archive(const Archive& a, const std::string& path, const EnvSpec* expect) {
  const json& m = a.meta();
  const json& version = meta_key(m, path, "version", "the demos format version, 1");
  if (!version.is_number_integer() || version.get<int64_t>() != kDemosFormatVersion)
    fail_meta(path, "version",
              fmt::format("demos format version {} is not supported (this ml3 reads version {})", version.dump(),
                          kDemosFormatVersion));
  Demonstrations d;
  const json& env = meta_key(m, path, "env", "the environment name");
  if (!env.is_string() || env.get<std::string>().empty())
    fail_meta(path, "env", env.dump() + " is not an environment name");
  d.env = env.get<std::string>();
  d.obs_dim = meta_int(m, path, "obs_dim");
  d.act_dim = meta_int(m, path, "act_dim");
  d.goal_dim = meta_int(m, path, "goal_dim");
  d.episode_steps = meta_int(m, path, "episode_steps");
  const int64_t n = meta_int(m, path, "episodes");
  d.act_low = meta_bounds(m, path, "act_low", d.act_dim);
  d.act_high = meta_bounds(m, path, "act_high", d.act_dim);
  for (int j = 0; j < d.act_dim; ++j)
    if (!(d.act_low[j] <= d.act_high[j]))
      fail_meta(path, "act_high",
                fmt::format("[{}] = {} is below act_low[{}] = {}", j, d.act_high[j], j, d.act_low[j]));
  const json& split = meta_key(m, path, "split", "train, test or ood");
  const std::string split_text = split.is_string() ? split.get<std::string>() : split.dump();
  if (split_text != "train" && split_text != "test" && split_text != "ood")
    fail_meta(path, "split", split_text + " is not one of train, test, ood");
  d.split = parse_split(split_text);
  const json& seed = meta_key(m, path, "seed", "an integer >= 0");
  if (!non_negative(seed, &d.seed)) fail_meta(path, "seed", seed.dump() + " is not an integer >= 0");
  if (m.contains("action_noise")) {  // optional (absent: 0, the expert's own episodes)
    const json& v = m["action_noise"];
    if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
      fail_meta(path, "action_noise", v.dump() + " is not a number >= 0");
    d.action_noise = v.get<double>();
  }
  if (m.contains("outcomes_known")) {  // optional (absent: true)
    const json& v = m["outcomes_known"];
    if (!v.is_boolean()) fail_meta(path, "outcomes_known", v.dump() + " is not true or false");
    d.outcomes_known = v.get<bool>();
  }
  if (m.contains("env_options")) {
    const json& o = m["env_options"];
    if (!o.is_object() || !std::all_of(o.begin(), o.end(), [](const json& v) { return v.is_string(); }))
      fail_meta(path, "env_options", "expected an object of strings (option -> value)");
    d.env_options = o.get<std::map<std::string, std::string>>();
  }
  if (expect && (expect->name != d.env || expect->obs_dim != d.obs_dim || expect->act_dim != d.act_dim ||
                 expect->goal_dim != d.goal_dim))
    fail_meta(
        path, "env",
        fmt::format("demonstrations of '{}' (obs {}, act {}, goal {}), but the environment in use is '{}' (obs {}, "
                    "act {}, goal {})",
                    d.env, d.obs_dim, d.act_dim, d.goal_dim, expect->name, expect->obs_dim, expect->act_dim,
                    expect->goal_dim));

  const int T = d.episode_steps;
  const auto goals =
      finite_f32(entry(a, path, "goals", "f32", {n, d.goal_dim}, "episodes x goal_dim"), path, "goals", 1, d.goal_dim);
  const auto obs =
      finite_f32(entry(a, path, "observations", "f32", {n, T, d.obs_dim}, "episodes x episode_steps x obs_dim"), path,
                 "observations", T, d.obs_dim);
  const auto act = finite_f32(entry(a, path, "actions", "f32", {n, T, d.act_dim}, "episodes x episode_steps x act_dim"),
                              path, "actions", T, d.act_dim);
  const auto rew =
      finite_f32(entry(a, path, "rewards", "f32", {n, T}, "episodes x episode_steps"), path, "rewards", T, 1);
  const auto dist = finite_f32(entry(a, path, "final_distance", "f32", {n}, "episodes"), path, "final_distance", 1, 1);
  const auto success = values_of<int64_t>(entry(a, path, "success", "i64", {n}, "episodes"));
  // Optional entries (docs/demos.md, section 3).
  std::vector<float> final_obs, executed;
  if (a.has("final_observations"))
    final_obs = finite_f32(entry(a, path, "final_observations", "f32", {n, d.obs_dim}, "episodes x obs_dim"), path,
                           "final_observations", 1, d.obs_dim);
  if (a.has("executed_actions"))
    executed = finite_f32(
        entry(a, path, "executed_actions", "f32", {n, T, d.act_dim}, "episodes x episode_steps x act_dim"), path,
        "executed_actions", T, d.act_dim);
  check_bounds(act, d, path, "actions");
  check_bounds(executed, d, path, "executed_actions");
  for (int64_t i = 0; i < n; ++i) {
    if (dist[i] < 0) fail_entry(path, "final_distance", fmt::format("episode {} is {}; expected >= 0", i, dist[i]));
    if (success[i] != 0 && success[i] != 1)
      fail_entry(path, "success", fmt::format("episode {} is {}; expected 0 or 1", i, success[i]));
  }
  d.episodes.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    DemoEpisode& e = d.episodes[i];
    auto slice = [i](const std::vector<float>& v, int64_t per) {
      return std::vector<float>(v.begin() + i * per, v.begin() + (i + 1) * per);
    };
    e.goal = slice(goals, d.goal_dim);
    e.observations = slice(obs, int64_t{T} * d.obs_dim);
    e.actions = slice(act, int64_t{T} * d.act_dim);
    e.rewards = slice(rew, T);
    e.final_distance = dist[i];
    e.success = success[i] == 1;
    if (!final_obs.empty()) e.final_observation = slice(final_obs, d.obs_dim);
    if (!executed.empty()) e.executed_actions = slice(executed, int64_t{T} * d.act_dim);
  }
  return d;
}

}  // namespace

DemoSummary summarize(const Demonstrations& demos) {
  DemoSummary s;
  s.episodes = static_cast<int>(demos.episodes.size());
  for (const DemoEpisode& e : demos.episodes) s.success_rate += e.success, s.final_distance_mean += e.final_distance;
  if (s.episodes > 0) s.success_rate /= s.episodes, s.final_distance_mean /= s.episodes;
  return s;
}

Demonstrations record_demos(const std::string& env_name, const Config& env_options, Split split, int episodes,
                            uint64_t seed, int threads, double action_noise) {
  if (!(action_noise >= 0) || !std::isfinite(action_noise))
    throw Error(fmt::format("demonstrations: action noise must be a number >= 0, got {}", action_noise));
  if (episodes < 1) throw Error(fmt::format("demonstrations: episodes must be >= 1, got {}", episodes));
  Demonstrations d;
  d.split = split;
  d.seed = seed;
  d.action_noise = action_noise;
  d.env_options = env_options.values();
  d.episodes.resize(episodes);
  const ExpertStepHook hook = [&](const EnvSpec& spec, int t, const double* obs, const double* act,
                                  const double* executed, const double* rew, const double* next_obs) {
    const int od = spec.obs_dim, ad = spec.act_dim, T = spec.episode_steps;
    for (int i = 0; i < episodes; ++i) {
      DemoEpisode& e = d.episodes[i];
      if (t == 0) {
        e.observations.resize(T * od), e.actions.resize(T * ad), e.rewards.resize(T);
        if (action_noise > 0) e.executed_actions.resize(T * ad);
      }
      std::copy(obs + i * od, obs + (i + 1) * od, e.observations.begin() + t * od);
      std::copy(act + i * ad, act + (i + 1) * ad, e.actions.begin() + t * ad);
      if (action_noise > 0) std::copy(executed + i * ad, executed + (i + 1) * ad, e.executed_actions.begin() + t * ad);
      e.rewards[t] = static_cast<float>(rew[i]);
      if (t == T - 1) e.final_observation.assign(next_obs + i * od, next_obs + (i + 1) * od);
    }
  };
  const ExpertEpisodes r = run_expert_episodes(env_name, env_options, split, episodes, seed, threads, hook, action_noise);
  const EnvSpec& spec = r.spec;
  d.env = spec.name;
  d.obs_dim = spec.obs_dim, d.act_dim = spec.act_dim, d.goal_dim = spec.goal_dim, d.episode_steps = spec.episode_steps;
  d.act_low = spec.act_low, d.act_high = spec.act_high;
  for (int i = 0; i < episodes; ++i) {
    DemoEpisode& e = d.episodes[i];
    e.goal.assign(r.tasks[i].goal.begin(), r.tasks[i].goal.end());
    e.final_distance = static_cast<float>(r.final_info[i].distance);
    e.success = r.final_info[i].success;
  }
  return d;
}

void save_demos(const std::string& path, const Demonstrations& demos) {
  const Archive a = to_archive(demos);
  from_archive(a, path + " (not written)", nullptr);  // never write a file load_demos would refuse
  a.save(path);
}

Demonstrations load_demos(const std::string& path, const EnvSpec* expect) {
  return from_archive(Archive::load(path, kKind), path, expect);
}

}  // namespace ml3
