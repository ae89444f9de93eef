#include "envs/arm7_slide/arm7_slide.h"

#include <fmt/format.h>

#include "core/error.h"
#include "envs/arm7/arm7.h"
#include "envs/env_util.h"

namespace ml3 {
namespace {

class Arm7Slide : public Arm7Env {
 public:
  static Schema schema() { return arm7_schema("arm7_slide.xml", 0.03); }

  explicit Arm7Slide(const Config& o) : Arm7Env("arm7_slide", o, "arm7_slide.xml") {
    object_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "object", "site")};
    const char* names[2] = {"knob_x", "knob_y"};
    for (int k = 0; k < 2; ++k) {
      const int j = require_id(mjOBJ_JOINT, names[k], "slide joint");
      if (m_->jnt_type[j] != mjJNT_SLIDE || !m_->jnt_limited[j])
        throw Error(fmt::format("{}: joint '{}' must be a slide joint with a range", spec_.model_file, names[k]));
      knob_q_[k] = m_->jnt_qposadr[j], knob_v_[k] = m_->jnt_dofadr[j];
      range_[k][0] = m_->jnt_range[2 * j], range_[k][1] = m_->jnt_range[2 * j + 1];
    }
    half_ = m_->geom_size[3 * require_id(mjOBJ_GEOM, "object", "geom")];
    spec_.distance_meaning = "knob to goal";
    finish_arm7();  // kinematics at qpos0: the knob at its start
    for (int c = 0; c < 3; ++c) home_[c] = pos(object_)[c];
  }

  GoalRegion goal_region(Split s) const override {
    GoalRegion r = sector(home_[0], home_[1], 0.05, 0.15, s == Split::Ood);
    r.z_min = r.z_max = home_[2];
    return r;
  }

 protected:
  Plan plan() const override { return grasp_and_carry(half_, 0.0, goal_.data(), false); }
  void object_velocity(double* v) const override {
    v[0] = d_->qvel[knob_v_[0]], v[1] = d_->qvel[knob_v_[1]], v[2] = 0;
  }
  void init_state(Rng& rng) override {
    init_arm(rng);
    for (int k = 0; k < 2; ++k) d_->qpos[knob_q_[k]] = rng.uniform(-0.01, 0.01);
  }
  std::string goal_problem(const double* g) const override {
    std::string p = height_problem(g, home_[2], "a slide goal (the knob's height)");
    if (!p.empty()) return p;
    for (int k = 0; k < 2; ++k) {
      const double q = g[k] - home_[k];
      if (q < range_[k][0] || q > range_[k][1])
        return fmt::format("the knob slides {} in [{}, {}] m from its start, the goal needs {:.3f}", k ? "y" : "x",
                           range_[k][0], range_[k][1], q);
    }
    return reach_problem(g, "the goal");
  }

 private:
  int knob_q_[2], knob_v_[2];
  double range_[2][2];
};

}  // namespace

EnvEntry arm7_slide_env() {
  return env_entry<Arm7Slide>("arm7_slide", "7-DoF arm with a gripper: drag a knob on an x-y slide table to a goal");
}

}  // namespace ml3
