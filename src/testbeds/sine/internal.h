#pragma once
// What the files of src/sine/ share and the API does not show: the flat
// parameter layout, the config and problem checks, the Config -> SineProblem
// mapping, the seed streams and the initialisation into a buffer of either
// precision. LibTorch-free and Eigen-free.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "src/testbeds/sine/sine.h"

namespace ml3::sine_detail {

// Offsets of the layers in a flat parameter vector.
struct Layout {
  std::vector<int> sizes;
  bool bias = true;
  std::vector<size_t> w_off, b_off;
  size_t total = 0;
  Layout() = default;
  explicit Layout(const MlpShape& s) : sizes(s.sizes), bias(s.bias) {
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
      w_off.push_back(total);
      total += static_cast<size_t>(sizes[l]) * sizes[l + 1];
      b_off.push_back(total);
      if (bias) total += sizes[l + 1];
    }
  }
  size_t layers() const { return sizes.size() - 1; }
};

// ml3::Error unless the networks have the sine shapes and theta / phi their
// sizes (phi_size 0: no learned loss).
void check_problem(const SineProblem& pb, size_t theta_size, size_t phi_size);
SineProblem problem_from(const Config& cfg);

// Fills `out` (shape.num_params() values) with a seeded initialisation; the
// Torch scheme draws in FunctionalMlp::init's order (W row-major, then b).
// Defined for float and double.
template <typename T>
void init_mlp_into(const MlpShape& shape, SineInit init, uint64_t seed, T* out);

template <typename T>
std::vector<T> cast_vec(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Seed streams (tags keep them apart).
constexpr uint64_t kTagLossInit = 1, kTagTrainData = 2, kTagTrainTheta = 3;
constexpr uint64_t kTagTestTasks = 101, kTagTestData = 102, kTagTestTheta = 103;

}  // namespace ml3::sine_detail
