#pragma once
// Helpers shared by the test files: temp dirs, running the ml3 binary.
#include <array>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace ml3::test {

// A results JSON without what varies between identical runs: wall times
// (wall_seconds, meta_training_seconds, at any depth) and the plot's path.
inline nlohmann::json without_timings(nlohmann::json j) {
  if (j.is_object()) {
    for (const char* k : {"wall_seconds", "meta_training_seconds", "plot"}) j.erase(k);
    for (auto& [k, v] : j.items()) v = without_timings(v);
  } else if (j.is_array()) {
    for (auto& v : j) v = without_timings(v);
  }
  return j;
}

inline std::filesystem::path temp_dir(const std::string& tag) {
  auto dir = std::filesystem::temp_directory_path() /
             ("ml3_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The message of the exception `fn` throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// The rows of a run's metrics.jsonl without its wall-clock columns (those
// differ between runs; every other value must not).
inline std::vector<std::string> metric_rows(const std::filesystem::path& dir) {
  std::ifstream in(dir / "metrics.jsonl");
  std::vector<std::string> rows;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    for (const char* k : {"wall_seconds", "seconds", "steps_per_s", "collect_seconds", "update_seconds"}) j.erase(k);
    rows.push_back(j.dump());
  }
  return rows;
}

// The named columns of each row of a run's metrics.jsonl, one string per row
// (for comparing runs whose timing columns differ).
inline std::vector<std::string> metric_columns(const std::filesystem::path& dir, const std::vector<std::string>& cols) {
  std::vector<std::string> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    std::string row;
    for (const auto& c : cols) row += j.value(c, nlohmann::json()).dump() + " ";
    out.push_back(row);
  }
  return out;
}

struct RunResult {
  int code = -1;
  std::string out;  // stdout + stderr
};

// Runs a shell command (in directory `cwd` if given) and captures its output
// (stdout + stderr) and exit code.
inline RunResult run_command(const std::string& command, const std::string& cwd = "") {
  RunResult r;
  const std::string cmd = (cwd.empty() ? "" : "cd '" + cwd + "' && ") + command + " 2>&1 </dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Debian's python3 (where python3-onnx, python3-h5py and python3-matplotlib
// are), ahead of another python3 on the PATH (as src/run/plot.cpp does).
inline std::string debian_python() {
  return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}

#ifdef ML3_BINARY
// Runs `ml3 <args>`.
inline RunResult run_ml3(const std::string& args, const std::string& cwd = "") {
  return run_command(std::string(ML3_BINARY) + " " + args, cwd);
}
#endif
#ifdef ML3_DEPLOY_BINARY
// Runs `ml3-deploy <args>`.
inline RunResult run_deploy(const std::string& args, const std::string& cwd = "") {
  return run_command(std::string(ML3_DEPLOY_BINARY) + " " + args, cwd);
}
#endif

}  // namespace ml3::test
