#pragma once
// Run helpers for the tests of meta-learning problems (runner, resume).
#include <filesystem>
#include <stdexcept>
#include <string>

#include "src/run/algorithm.h"

namespace ml3::test {

// Runs `args` into `dir` stopped after iteration `stop_after` (no summary
// then), and resumes it there to the end, quietly.
inline void run_stopped_and_resumed(RunArgs args, const std::filesystem::path& dir, int stop_after) {
  args.out_dir = dir.string();
  args.stop_after = stop_after;
  if (!run(args).summary.empty()) throw std::runtime_error("the run did not stop after iteration " + std::to_string(stop_after));
  RunArgs resume;
  resume.command = args.command;
  resume.resume_dir = dir.string();
  resume.quiet = true;
  run(resume);
}

}  // namespace ml3::test
