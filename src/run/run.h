#pragma once
// Run-folder plumbing shared by `train`, `meta-train` and `meta-test`: folder
// creation policy, metrics files (CSV + JSON Lines, stable columns), and the
// progress line (rate and ETA). LibTorch-free.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ml3 {

// Creates `dir`. An existing non-empty folder is refused unless `force`, and
// even then only an ml3 run folder (one with config.yaml) is replaced.
void prepare_run_dir(const std::filesystem::path& dir, bool force);

// Appends one row per call to metrics.csv and metrics.jsonl in `dir`
// (flushed each row). Missing/null/NaN values are empty CSV cells and JSON null.
class MetricsWriter {
 public:
  MetricsWriter(const std::filesystem::path& dir, std::vector<std::string> columns, bool append);
  void append(const nlohmann::json& row);

 private:
  std::vector<std::string> columns_;
  std::ofstream csv_, jsonl_;
};

// Wall time: seconds elapsed since `t` on the steady clock.
using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A count for a progress line or a table: 1.23M, 45.6k, 789.
std::string fmt_count(double v);

// Median of a summary statistic (mean of the two middle values for an even
// count; NaN when empty).
double median(std::vector<double> values);

// "label 12/300 4% | <text> | 1.2 it/s | ETA 4m01s" on stderr: rewritten in
// place on a terminal, else printed as a line every ~5% (or 15 s).
class Progress {
 public:
  Progress(std::string label, int total, bool quiet);
  void update(int done, const std::string& text);
  void finish();

 private:
  std::string label_;
  int total_, first_ = -1;
  bool quiet_, tty_, open_ = false;
  std::chrono::steady_clock::time_point start_, last_print_;
  int last_pct_ = -1;
};

}  // namespace ml3

#include <functional>

#include "core/config.h"

namespace ml3 {
// Opens the run folder of a command that writes one: with `resume_dir`, the
// folder's own config.yaml (no other config or overrides allowed); else the
// config file + overrides, a fresh folder (default runs/<config stem>) and
// its config.yaml. Returns the folder; *cfg receives the resolved config.
// Resume: keeps the metrics rows (CSV and JSON Lines) of iterations <= `iteration`.
void truncate_metrics(const std::filesystem::path& dir, int iteration);

using ConfigLoader = std::function<Config(const std::string&, const std::vector<std::string>&)>;
std::filesystem::path open_run_folder(const std::string& config_path, const std::vector<std::string>& overrides,
                                      const std::string& out_dir, const std::string& resume_dir, bool force,
                                      const ConfigLoader& load, Config* cfg);
}  // namespace ml3
