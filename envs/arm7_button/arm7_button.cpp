#include "envs/arm7_button/arm7_button.h"

#include <fmt/format.h>

#include "core/error.h"
#include "envs/arm7/arm7.h"
#include "envs/env_util.h"

namespace ml3 {
namespace {

class Arm7Button : public Arm7Env {
 public:
  static Schema schema() { return arm7_schema("arm7_button.xml", 0.008); }

  explicit Arm7Button(const Config& o) : Arm7Env("arm7_button", o, "arm7_button.xml") {
    goal_marker_ = "button_base";
    object_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "object", "site")};
    const int j = require_id(mjOBJ_JOINT, "button", "slide joint");
    if (m_->jnt_type[j] != mjJNT_SLIDE) throw Error(spec_.model_file + ": joint 'button' must be a slide joint");
    button_v_ = m_->jnt_dofadr[j];
    const int base = require_id(mjOBJ_BODY, "button_base", "body");
    pressed_z_ = m_->body_pos[3 * base + 2];
    const int finger = require_id(mjOBJ_GEOM, "finger_left", "geom");
    spec_.distance_meaning = "button top to its fully pressed position";
    finish_arm7();  // kinematics at qpos0: the arm points straight up
    tip_below_ = d_->geom_xpos[3 * finger + 2] + m_->geom_size[3 * finger + 2] - pos(grasp_)[2];
    travel_ = pos(object_)[2] - d_->xpos[3 * base + 2];
  }

  GoalRegion goal_region(Split s) const override {
    GoalRegion r = sector(0.45, 0.0, 0.05, 0.18, s == Split::Ood);
    r.z_min = r.z_max = pressed_z_;
    return r;
  }

 protected:
  Plan plan() const override {
    const double* g = pos(grasp_);
    Plan p;
    p.yaw = natural_yaw(goal_.data());
    p.opening = closed_ctrl();
    p.pos[0] = goal_[0], p.pos[1] = goal_[1];
    const double above = goal_[2] + travel_ + tip_below_ + 0.04;
    const bool low = g[2] < above - 0.01;
    if (dist2d(g, goal_.data()) > (low ? 0.02 : 0.01))
      p.pos[2] = above;
    else
      p.pos[2] = goal_[2] + tip_below_ - 0.006;
    return p;
  }
  void object_velocity(double* v) const override { v[0] = v[1] = 0, v[2] = d_->qvel[button_v_]; }
  void init_state(Rng& rng) override { init_arm(rng); }
  std::string goal_problem(const double* g) const override {
    std::string p = height_problem(g, pressed_z_, "a button goal (the pressed button's top, the housing's height)");
    return p.empty() ? reach_problem(g, "the button") : p;
  }

 private:
  int button_v_ = -1;
  double pressed_z_ = 0, tip_below_ = 0, travel_ = 0;
};

}  // namespace

EnvEntry arm7_button_env() {
  return env_entry<Arm7Button>("arm7_button", "7-DoF arm with a gripper: press a button placed at the goal");
}

}  // namespace ml3
