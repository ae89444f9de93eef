#include "envs/pointmass/pointmass.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "envs/env_util.h"
#include "envs/mujoco_env.h"

namespace ml3 {
namespace {

class PointMass : public MujocoEnv {
 public:
  static Schema schema() { return common_env_schema("pointmass.xml", 50, 2, 0.1, 0.01); }

  explicit PointMass(const Config& o) : MujocoEnv("pointmass", o, "pointmass.xml") {
    tip_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "tip", "site")};
    const int jx = require_id(mjOBJ_JOINT, "slide_x", "slide joint");
    const int jy = require_id(mjOBJ_JOINT, "slide_y", "slide joint");
    jx_ = m_->jnt_qposadr[jx];
    jy_ = m_->jnt_qposadr[jy];
    if (m_->nu != 2)
      throw Error(fmt::format("{}: pointmass needs 2 actuators, the model has {}", spec_.model_file, m_->nu));
    spec_.distance_meaning = "point mass to goal";
    finish_spec({"pos_x", "pos_y", "vel_x", "vel_y", "goal_x", "goal_y", "goal_minus_pos_x", "goal_minus_pos_y"});
    limit_ = std::min(m_->jnt_range[2 * jx + 1], m_->jnt_range[2 * jy + 1]);
  }

  void observe(double* o) const override {
    const double* p = pos(tip_);
    o[0] = p[0], o[1] = p[1];
    o[2] = d_->qvel[jx_], o[3] = d_->qvel[jy_];
    o[4] = goal_[0], o[5] = goal_[1];
    o[6] = goal_[0] - p[0], o[7] = goal_[1] - p[1];
  }

  double distance() const override { return dist2d(pos(tip_), goal_.data()); }

  // Scripted expert: PD on position.
  void expert_action(double* a) const override {
    const double* p = pos(tip_);
    const double gear = m_->actuator_gear[0];
    for (int i = 0; i < 2; ++i) {
      const double force = 30.0 * (goal_[i] - p[i]) - 8.0 * d_->qvel[i == 0 ? jx_ : jy_];
      a[i] = std::clamp(force / gear, spec_.act_low[i], spec_.act_high[i]);
    }
  }

  // train/test: r in [0.1, 1] around the origin; ood: r in [0.3, 1] in the held-out wedge.
  GoalRegion goal_region(Split s) const override {
    return s == Split::Ood ? sector(0, 0, 0.3, 1.0, true) : sector(0, 0, 0.1, 1.0, false);
  }

 protected:
  void init_state(Rng& rng) override {
    d_->qpos[jx_] = rng.uniform(-0.05, 0.05);
    d_->qpos[jy_] = rng.uniform(-0.05, 0.05);
  }

  double compute_reward(const double* a) const override { return -distance() - ctrl_cost_ * sq_norm(a, 2); }

  std::string goal_problem(const double* g) const override {
    if (std::abs(g[0]) > limit_ || std::abs(g[1]) > limit_)
      return fmt::format("pointmass goals must lie within the slide range |x|, |y| <= {}", limit_);
    return "";
  }

 private:
  Point tip_;
  int jx_, jy_;  // qpos (= dof) addresses of the slide joints
  double limit_;
};

}  // namespace

EnvEntry pointmass_env() {
  return env_entry<PointMass>("pointmass", "2-D point mass (slide joints, force actuators) moving to a goal");
}

}  // namespace ml3
