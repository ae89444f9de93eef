#pragma once
// Demonstrations in and out as Minari datasets (Farama's offline-RL dataset
// format; mapping and layout in docs/demos.md, section 7): a folder with
// data/main_data.hdf5 (one group per episode: observations with the reset
// observation first, so episode_steps + 1 rows; actions, rewards,
// terminations, truncations) and data/metadata.json. HDF5's C API; LibTorch-
// free, in its own library (ml3_minari) so that only its users link HDF5.
//
//   export_minari(load_demos("reacher.demos"), "datasets/reacher-expert-v0", false);
//   Demonstrations d = import_minari("datasets/reacher-expert-v0", env->spec());
#include <nlohmann/json.hpp>
#include <string>

#include "envs/demos.h"

namespace ml3 {

// Writes `demos` as the Minari dataset folder `dir` (dir/data/main_data.hdf5
// and dir/data/metadata.json), built in a temporary folder beside it and
// renamed into place; an existing `dir` is replaced only with `force`. Needs
// every episode's final observation and, for action-noise (DART) recordings,
// the executed actions (files recorded since ml3 stores them). Returns a
// summary: dir, episodes, steps, bytes, seconds.
nlohmann::json export_minari(const Demonstrations& demos, const std::string& dir, bool force);

// Reads the Minari dataset in `dir` (dir/data/main_data.hdf5 or
// dir/main_data.hdf5; metadata.json beside it is optional) as demonstrations
// of the environment `spec`, with its action bounds. Every failure is one
// ml3::Error naming the file, the episode and dataset (or attribute) and what
// was expected: no main_data.hdf5, no episodes, observation or action sizes
// other than the environment's, episodes whose datasets disagree in length or
// that differ in length from each other, non-finite values, actions outside
// the bounds, a missing goal. `seconds` (optional) receives the read time.
Demonstrations import_minari(const std::string& dir, const EnvSpec& spec,
                             const std::map<std::string, std::string>& env_options = {}, double* seconds = nullptr);

}  // namespace ml3
