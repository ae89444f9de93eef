#pragma once
// The two meta-gradient engines behind one interface, in precision T (float or
// double), each built once for a problem and a data set:
//   - eigen_engine.cpp: hand-derived forward-over-reverse, one inner step;
//   - torch_engine.cpp: LibTorch autograd, K unrolled inner steps; the only
//     file of src/sine/ that includes LibTorch.
// LibTorch-free and Eigen-free.
#include <memory>
#include <vector>

#include "src/testbeds/sine/sine.h"

namespace ml3::sine_detail {

template <typename T>
class Engine {
 public:
  virtual ~Engine() = default;
  // gphi = dL_T(theta_K)/dphi (phi's size); *task_loss = L_T(theta_K),
  // *inner_loss = L_in(theta_0); theta_after (optional) receives theta_K.
  virtual void meta_grad(const T* theta, const T* phi, T* gphi, double* task_loss, double* inner_loss,
                         T* theta_after = nullptr) = 0;
  // The learned loss L_in(theta) (phi non-null) and the MSE at theta.
  virtual void values(const T* theta, const T* phi, double* learned, double* mse) = 0;
  // `steps` plain SGD steps of size `lr` on theta (in place), on the learned
  // loss, or on the MSE when `phi` is null. Returns the MSE before each step
  // and after the last one.
  virtual std::vector<double> train(T* theta, const T* phi, double lr, int steps) = 0;
};

// Defined for float and double.
template <typename T>
std::unique_ptr<Engine<T>> make_eigen_engine(const SineProblem& pb, const SineData& data);
template <typename T>
std::unique_ptr<Engine<T>> make_torch_engine(const SineProblem& pb, const SineData& data);

template <typename T>
std::unique_ptr<Engine<T>> make_engine(SineImpl impl, const SineProblem& pb, const SineData& data) {
  return impl == SineImpl::Eigen ? make_eigen_engine<T>(pb, data) : make_torch_engine<T>(pb, data);
}

// LibTorch's intra-op threads and the BLAS pool (models/nets.h's
// set_compute_threads), for the files that do not include LibTorch.
void set_sine_threads(int threads);

}  // namespace ml3::sine_detail
