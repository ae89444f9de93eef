#pragma once
// The layout of a run folder, owned here because every layer reads it: the
// runner writes it (src/run/), `ml3 eval` and `ml3 export` (deploy/) read
// its last checkpoint, and every command that writes outputs picks its
// default folder here.
#include <filesystem>
#include <string>

namespace ml3 {

// The output folder of a command: `out_dir` when given, else the default
// runs/<config file stem><suffix> (runs/<fallback><suffix> without a file).
inline std::filesystem::path run_dir_or_default(const std::string& out_dir, const std::string& config_path,
                                                const std::string& suffix = "", const std::string& fallback = "run") {
  if (!out_dir.empty()) return out_dir;
  const std::string stem = config_path.empty() ? fallback : std::filesystem::path(config_path).stem().string();
  return std::filesystem::path("runs") / (stem + suffix);
}
// Where a run keeps its checkpoints, and the newest of them.
inline std::filesystem::path checkpoint_dir(const std::filesystem::path& run_dir) { return run_dir / "checkpoints"; }
inline std::filesystem::path last_checkpoint(const std::filesystem::path& run_dir) {
  return checkpoint_dir(run_dir) / "last.ckpt";
}

}  // namespace ml3
