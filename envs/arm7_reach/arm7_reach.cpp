#include "envs/arm7_reach/arm7_reach.h"

#include "envs/arm7/arm7.h"
#include "envs/env_util.h"

namespace ml3 {
namespace {

class Arm7Reach : public Arm7Env {
 public:
  static Schema schema() { return arm7_schema("arm7_reach.xml", 0.03); }

  explicit Arm7Reach(const Config& o) : Arm7Env("arm7_reach", o, "arm7_reach.xml") {
    object_ = grasp_;
    spec_.distance_meaning = "grasp site to goal";
    finish_arm7();
  }

  GoalRegion goal_region(Split s) const override {
    GoalRegion r = sector(0.45, 0.0, 0.05, 0.18, s == Split::Ood);
    r.z_min = table_top_ + 0.06, r.z_max = table_top_ + 0.30;
    return r;
  }

 protected:
  Plan plan() const override {
    Plan p;
    for (int c = 0; c < 3; ++c) p.pos[c] = goal_[c];
    p.yaw = natural_yaw(goal_.data());
    p.opening = open_ctrl();
    return p;
  }

  // The grasp site's velocity: sum over the arm's hinges of
  // qdot_j axis_j x (site - anchor_j) (the fingers do not move the site).
  void object_velocity(double* v) const override {
    const double* p = pos(grasp_);
    v[0] = v[1] = v[2] = 0;
    for (int i = 0; i < 7; ++i) {
      const double* a = d_->xaxis + 3 * arm_joint_[i];
      const double* o = d_->xanchor + 3 * arm_joint_[i];
      const double r[3] = {p[0] - o[0], p[1] - o[1], p[2] - o[2]};
      const double w = d_->qvel[arm_dof_[i]];
      v[0] += w * (a[1] * r[2] - a[2] * r[1]);
      v[1] += w * (a[2] * r[0] - a[0] * r[2]);
      v[2] += w * (a[0] * r[1] - a[1] * r[0]);
    }
  }

  void init_state(Rng& rng) override { init_arm(rng); }

  std::string goal_problem(const double* g) const override { return reach_problem(g, "the goal"); }
};

}  // namespace

EnvEntry arm7_reach_env() {
  return env_entry<Arm7Reach>("arm7_reach", "7-DoF arm with a gripper: grasp site to a 3-D goal (position servos)");
}

}  // namespace ml3
