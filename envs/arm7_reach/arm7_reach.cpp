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

  void object_velocity(double* v) const override {
    const int nv = m_->nv;
    mj_comPos(m_, d_);  // the Jacobian's com quantities, from the current qpos
    mj_jacSite(m_, d_, jac_.data(), nullptr, grasp_.id);
    for (int c = 0; c < 3; ++c) {
      v[c] = 0;
      for (int i = 0; i < nv; ++i) v[c] += jac_[c * nv + i] * d_->qvel[i];
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
