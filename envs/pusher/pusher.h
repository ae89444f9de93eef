#pragma once
// pusher: in the spirit of Gymnasium Pusher, reduced to a planar 3-link arm
// with a free puck on a table (Gymnasium: 7-DoF arm in 3-D).
// reward = -|obj - goal| - c|a|^2 - tip_cost |obj - tip|.
// obs = [cos q(3), sin q(3), qvel(3), tip(2), obj(2), obj vel(2), goal(2),
// obj - tip(2), goal - obj(2)] = 21 values.
//
// What it reads from a model (built in: envs/pusher/pusher.xml): hinge joints
// "shoulder", "elbow", "wrist"; bodies "link0", "link1", "link2" (reach);
// sites "fingertip", "object"; geoms "fingertip", "object" (contact radii) and
// "table" (a plane in the world body: goals must lie on it); free joint
// "object"; body "target" (mocap, or on two slide joints as in the reacher);
// exactly 3 actuators.
#include "envs/mujoco_env.h"

namespace ml3 {

class Pusher : public MujocoEnv {
 public:
  static constexpr const char* kName = "pusher";
  static constexpr const char* kDescription = "3-link planar arm pushing a free puck to a goal on a table";
  static Schema schema();
  explicit Pusher(const Config& options);

  void observe(double* obs) const override;
  double distance() const override;
  // Scripted expert: approach-and-push (see pusher.cpp).
  void expert_action(double* action) const override;
  // r in [0.08, 0.15] around the puck's start; ood: the wedge toward the arm.
  GoalRegion goal_region(Split split) const override;

 protected:
  void init_state(Rng& rng) override;
  double compute_reward(const double* action) const override;
  std::string goal_problem(const double* goal) const override;

 private:
  double tip_cost_;
  Point tip_, obj_;
  int obj_q_, obj_v_, obj_geom_, tip_geom_, joints_[3];
  int table_;  // the table's geom (a plane)
  double obj_home_[2];
  double reach_ = 0;
};

}  // namespace ml3
