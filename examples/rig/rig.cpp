// A minimal rig bridge on the C++ API: reads one observation per line from
// stdin (obs_dim numbers, in the order the policy file names them), writes
// the action (act_dim numbers) per line to stdout, optionally paced at a fixed
// control rate. A real rig replaces stdin/stdout with its sensors and
// actuators; the policy call is the same.
//
//   rig POLICY.ml3p [RATE_HZ] < observations.txt > actions.txt
#include <ml3/runtime.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: rig POLICY.ml3p [RATE_HZ] < observations > actions\n";
    return 2;
  }
  try {
    ml3::runtime::Policy policy = ml3::runtime::Policy::load(argv[1]);
    const auto& info = policy.info();
    const double rate = argc > 2 ? std::atof(argv[2]) : 0.0;
    std::cerr << argv[1] << ": " << info.env << " policy, " << info.obs_dim << " observations, " << info.act_dim
              << " actions, trained at " << 1.0 / info.control_period << " Hz\n";
    std::vector<double> obs(info.obs_dim), action(info.act_dim);
    auto deadline = std::chrono::steady_clock::now();
    long actions = 0;
    std::string line;
    while (std::getline(std::cin, line)) {
      std::istringstream in(line);
      for (auto& v : obs) {
        std::string tok;
        if (!(in >> tok)) {
          std::cerr << "error: line " << actions + 1 << ": expected " << info.obs_dim << " numbers\n";
          return 1;
        }
        v = std::strtod(tok.c_str(), nullptr);  // accepts nan / inf: the policy's fault path
      }
      if (rate > 0) {
        deadline += std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(1.0 / rate));
        std::this_thread::sleep_until(deadline);
      }
      policy.act(obs.data(), action.data());
      for (size_t j = 0; j < action.size(); ++j) std::printf(j ? " %.9g" : "%.9g", action[j]);
      std::printf("\n");
      ++actions;
    }
    std::cerr << actions << " actions, " << policy.faults() << " fault" << (policy.faults() == 1 ? "" : "s") << "\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
