#include "src/run/run.h"

#include <algorithm>

#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <unistd.h>

#include "core/error.h"

namespace fs = std::filesystem;

namespace ml3 {

void prepare_run_dir(const fs::path& dir, bool force) {
  if (fs::exists(dir) && !fs::is_empty(dir)) {
    if (!force)
      throw Error(dir.string() + ": run folder already exists; pass --force to replace it or --resume " +
                  dir.string() + " to continue it");
    if (!fs::exists(dir / "config.yaml"))
      throw Error(dir.string() + ": exists and is not an ml3 run folder (no config.yaml); not replacing it");
    fs::remove_all(dir);
  }
  fs::create_directories(dir);
}

MetricsWriter::MetricsWriter(const fs::path& dir, std::vector<std::string> columns, bool append)
    : columns_(std::move(columns)) {
  const bool had_csv = append && fs::exists(dir / "metrics.csv");
  const auto mode = append ? std::ios::app : std::ios::trunc;
  csv_.open(dir / "metrics.csv", std::ios::out | mode);
  jsonl_.open(dir / "metrics.jsonl", std::ios::out | mode);
  if (!csv_ || !jsonl_) throw Error(dir.string() + ": cannot write metrics files");
  if (!had_csv) {
    for (size_t i = 0; i < columns_.size(); ++i) csv_ << (i ? "," : "") << columns_[i];
    csv_ << "\n" << std::flush;
  }
}

void MetricsWriter::append(const nlohmann::json& row) {
  nlohmann::json out = nlohmann::json::object();
  for (size_t i = 0; i < columns_.size(); ++i) {
    const auto it = row.find(columns_[i]);
    const bool missing = it == row.end() || it->is_null() || (it->is_number_float() && !std::isfinite(it->get<double>()));
    out[columns_[i]] = missing ? nlohmann::json() : *it;
    csv_ << (i ? "," : "");
    if (missing) continue;
    if (it->is_string()) csv_ << it->get<std::string>();
    else csv_ << it->dump();
  }
  csv_ << "\n" << std::flush;
  jsonl_ << out.dump() << "\n" << std::flush;
}

Progress::Progress(std::string label, int total, bool quiet)
    : label_(std::move(label)), total_(total), quiet_(quiet), tty_(::isatty(2)) {
  start_ = last_print_ = std::chrono::steady_clock::now();
}

void Progress::update(int done, const std::string& text) {
  if (quiet_) return;
  const auto now = std::chrono::steady_clock::now();
  if (first_ < 0) {
    first_ = done - 1;
    start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? (done - first_) / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : NAN;
  const int pct = total_ > 0 ? 100 * done / total_ : 100;
  std::string eta_text = "?";
  if (std::isfinite(eta)) {
    const int s = static_cast<int>(eta);
    eta_text = s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, s % 3600 / 60) : fmt::format("{}m{:02d}s", s / 60, s % 60);
  }
  const std::string line =
      fmt::format("{} {}/{} {:3d}% | {} | {:.2f} it/s | ETA {}", label_, done, total_, pct, text, rate, eta_text);
  if (tty_) {
    std::fprintf(stderr, "\r%-150s", line.c_str());
    open_ = true;
  } else if (pct / 5 != last_pct_ / 5 || done == total_ ||
             std::chrono::duration<double>(now - last_print_).count() > 15) {
    std::fprintf(stderr, "%s\n", line.c_str());
    last_print_ = now;
  }
  last_pct_ = pct;
  std::fflush(stderr);
}

void Progress::finish() {
  if (open_) std::fprintf(stderr, "\n");
  open_ = false;
}

}  // namespace ml3

#include "core/archive.h"
#include "core/run_paths.h"

namespace ml3 {

fs::path open_run_folder(const std::string& config_path, const std::vector<std::string>& overrides,
                         const std::string& out_dir, const std::string& resume_dir, bool force,
                         const ConfigLoader& load, Config* cfg) {
  if (!resume_dir.empty()) {
    if (!overrides.empty() || !config_path.empty())
      throw UsageError("--resume takes the run's own config.yaml; do not pass --config or overrides");
    const fs::path dir(resume_dir);
    if (!fs::exists(dir / "config.yaml")) throw Error(dir.string() + ": not a run folder (no config.yaml) to resume");
    *cfg = load((dir / "config.yaml").string(), {});
    return dir;
  }
  if (config_path.empty()) throw UsageError("needs --config FILE (or --resume DIR)");
  *cfg = load(config_path, overrides);
  const fs::path dir = run_dir_or_default(out_dir, config_path);
  prepare_run_dir(dir, force);
  write_file_atomic((dir / "config.yaml").string(), cfg->to_yaml());
  return dir;
}

}  // namespace ml3

namespace ml3 {
namespace {
// Keeps the rows of a metrics file up to `iteration` (resume).
void truncate_file(const fs::path& path, int iteration, bool csv) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  bool header = csv;
  while (std::getline(in, line)) {
    if (header) {
      kept += line + "\n", header = false;
      continue;
    }
    int it = -1;
    if (csv) it = std::atoi(line.c_str());
    else {
      try {
        it = nlohmann::json::parse(line).at("iteration").get<int>();
      } catch (...) {
        it = -1;
      }
    }
    if (it >= 1 && it <= iteration) kept += line + "\n";
  }
  in.close();
  write_file_atomic(path.string(), kept);
}

}  // namespace

void truncate_metrics(const fs::path& dir, int iteration) {
  truncate_file(dir / "metrics.csv", iteration, true);
  truncate_file(dir / "metrics.jsonl", iteration, false);
}

std::string fmt_count(double v) {
  if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
  if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
  return fmt::format("{:.0f}", v);
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

}  // namespace ml3
