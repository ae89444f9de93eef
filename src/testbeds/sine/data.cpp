// Sine tasks and their data, MLP shapes and the seeded initialisations.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

namespace ml3 {

SineTask sine_train_task() { return SineTask{}; }

std::vector<SineTask> sine_test_tasks(int count, uint64_t seed) {
  Rng rng(seed);
  std::vector<SineTask> tasks(static_cast<size_t>(std::max(count, 0)));
  for (auto& t : tasks) {
    t.amplitude = rng.uniform(0.2, 5.0);
    t.phase = rng.uniform(-M_PI, M_PI);
    t.x_min = -5.0, t.x_max = 5.0;
  }
  return tasks;
}

SineData frequency_data(double frequency, int points, uint64_t seed, bool grid) {
  if (points < 1) throw Error("sine: a task needs at least one point");
  Rng rng(seed);
  SineData d;
  d.x.resize(points), d.y.resize(points);
  d.theta_star = frequency;
  for (int i = 0; i < points; ++i) {
    d.x[i] = grid ? -5.0 + 10.0 * i / points : rng.uniform(-5.0, 5.0);
    d.y[i] = std::sin(frequency * d.x[i]);
  }
  return d;
}

SineData sample_sine_data(const SineTask& task, int points, uint64_t seed) {
  if (std::isfinite(task.frequency)) return frequency_data(task.frequency, points, seed);
  if (points < 1) throw Error("sine: a task needs at least one point");
  Rng rng(seed);
  SineData d;
  d.x.resize(points), d.y.resize(points);
  for (int i = 0; i < points; ++i) {
    d.x[i] = rng.uniform(task.x_min, task.x_max);
    d.y[i] = task.amplitude * std::sin(d.x[i] - task.phase);
  }
  return d;
}

// ---- networks ----------------------------------------------------------------------

size_t MlpShape::num_params() const { return weight_offset(num_layers()); }

size_t MlpShape::weight_offset(size_t layer) const {
  size_t n = 0;
  for (size_t l = 0; l < layer; ++l) n += static_cast<size_t>(sizes[l]) * sizes[l + 1] + (bias ? sizes[l + 1] : 0);
  return n;
}

size_t MlpShape::bias_offset(size_t layer) const {
  if (!bias) throw Error("internal: bias_offset of an MLP without biases");
  return weight_offset(layer) + static_cast<size_t>(sizes[layer]) * sizes[layer + 1];
}

namespace {

MlpShape mlp_shape(int inputs, const std::vector<int>& hidden, int outputs, bool bias) {
  MlpShape s;
  s.sizes.push_back(inputs);
  s.sizes.insert(s.sizes.end(), hidden.begin(), hidden.end());
  s.sizes.push_back(outputs);
  s.bias = bias;
  return s;
}

}  // namespace

MlpShape sine_regressor_shape(const std::vector<int>& hidden) { return mlp_shape(1, hidden, 1, true); }
MlpShape sine_loss_shape(const std::vector<int>& hidden, SineModel model) {
  return model == SineModel::Frequency ? mlp_shape(3, hidden, 1, true) : mlp_shape(2, hidden, 1, false);
}
MlpShape frequency_model_shape() { return MlpShape{{1, 1}, false}; }

namespace sine_detail {

template <typename T>
void init_mlp_into(const MlpShape& shape, SineInit init, uint64_t seed, T* out) {
  Rng rng(seed);
  size_t k = 0;
  for (size_t l = 0; l < shape.num_layers(); ++l) {
    const int in = shape.sizes[l], outs = shape.sizes[l + 1];
    const double bound = init == SineInit::Torch ? 1.0 / std::sqrt(static_cast<double>(in))
                                                 : std::sqrt(6.0 / static_cast<double>(in + outs));
    for (int64_t i = 0; i < static_cast<int64_t>(in) * outs; ++i) out[k++] = static_cast<T>(rng.uniform(-bound, bound));
    if (shape.bias)
      for (int i = 0; i < outs; ++i) out[k++] = init == SineInit::Torch ? static_cast<T>(rng.uniform(-bound, bound)) : T(0);
  }
}

template void init_mlp_into<float>(const MlpShape&, SineInit, uint64_t, float*);
template void init_mlp_into<double>(const MlpShape&, SineInit, uint64_t, double*);

}  // namespace sine_detail

std::vector<double> init_mlp_params(const MlpShape& shape, SineInit init, uint64_t seed) {
  std::vector<double> p(shape.num_params());
  sine_detail::init_mlp_into(shape, init, seed, p.data());
  return p;
}

}  // namespace ml3
