#pragma once
// The mountain car meta-gradient derived by hand (mountain_car.implementation:
// eigen; src/testbeds/mountain_car/mountain_car.h has the problem). LibTorch-free: the rollouts carry
// forward-mode tangents along the two policy weights, the learned loss runs as
// one stacked primal/tangent ELU pass (src/policy/elu_tangent.h), so one meta-step
// is a few matrix products instead of a double-backward graph. Tested against
// the LibTorch autograd path (mountain_car.implementation: autograd) to 1e-10
// in double (tests/paper_test.cpp).
#include <array>
#include <memory>
#include <vector>

namespace ml3 {

// The physics and goals (the reference's; src/testbeds/mountain_car/mountain_car.h).
namespace mc {
constexpr double kMass = 0.2, kGravity = -9.8, kFriction = 0.3, kDt = 0.1;
constexpr double kMaxAction = 0.25, kMinPos = -1.2, kMaxPos = 0.5, kMaxSpeed = 1.5;
constexpr double kStart[2] = {-0.55, 0.0};
constexpr double kGoal[2] = {0.5, 1.0375};
constexpr double kIntermediate[2] = {-0.947, -0.0055};
constexpr int kShapedSteps = 15;  // states s_0 .. s_14 are pulled to the intermediate goal
}  // namespace mc

struct MountainCarStep {
  double task_loss = 0;   // mean over the pool of the task loss after the inner step
  double inner_loss = 0;  // sum over the pool of the learned loss before it
  std::vector<std::array<double, 2>> w_after;  // the policies after the inner step
  std::vector<double> final_positions;         // final position of each w_after's rollout
};

// One meta-step over a pool of linear policies: the learned loss
// M_phi(p_t, v_t, a_t, d) (sizes 4-...-1, ELU, biases; phi flat in
// core/small_mlp.h's layout, d = |s_T - goal| detached), the inner SGD step
// w' = w - lr d(mean_t M)/dw per policy, the task loss (mean over the pool)
// on the rollouts of w', and its gradient with respect to phi.
template <typename T>
class MountainCarEngine {
 public:
  MountainCarEngine(std::vector<int> loss_sizes, int horizon, double inner_lr, bool shaping, int pool);
  ~MountainCarEngine();
  size_t num_params() const;
  // gphi (num_params()) receives dL_T/dphi.
  MountainCarStep meta_grad(const T* phi, const std::vector<std::array<double, 2>>& pool, T* gphi);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ml3
