#pragma once
// pointmass: a 2-D point mass on two slide joints (force actuators) moving to
// a goal. Model: envs/pointmass/pointmass.xml (site "tip", slide joints
// "slide_x", "slide_y", 2 actuators, body "target").
// obs = [pos(2), vel(2), goal(2), goal - pos(2)]; reward = -|pos - goal| - c|a|^2.
#include "envs/mujoco_env.h"

namespace ml3 {

class PointMass : public MujocoEnv {
 public:
  static constexpr const char* kName = "pointmass";
  static constexpr const char* kDescription = "2-D point mass (slide joints, force actuators) moving to a goal";
  static Schema schema();
  explicit PointMass(const Config& options);

  void observe(double* obs) const override;
  double distance() const override;
  // Scripted expert: PD on position.
  void expert_action(double* action) const override;
  // train/test: r in [0.1, 1] around the origin; ood: r in [0.3, 1] in the held-out wedge.
  GoalRegion goal_region(Split split) const override;

 protected:
  void init_state(Rng& rng) override;
  double compute_reward(const double* action) const override;
  std::string goal_problem(const double* goal) const override;

 private:
  Point tip_;
  int jx_, jy_;  // qpos (= dof) addresses of the slide joints
  double limit_;
};

}  // namespace ml3
