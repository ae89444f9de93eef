#include "envs/reacher/reacher.h"

#include <fmt/format.h>

#include <cmath>

#include "core/error.h"
#include "envs/env_util.h"
#include "envs/mujoco_env.h"

namespace ml3 {
namespace {

class Reacher : public MujocoEnv {
 public:
  static Schema schema() { return common_env_schema("reacher.xml", 50, 2, 0.02, 1.0); }

  explicit Reacher(const Config& o) : MujocoEnv("reacher", o, "reacher.xml") {
    tip_ = require_point("fingertip");
    j0_ = require_id(mjOBJ_JOINT, "joint0", "hinge joint");
    j1_ = require_id(mjOBJ_JOINT, "joint1", "hinge joint");
    if (m_->nu != 2)
      throw Error(fmt::format("{}: reacher needs 2 actuators, the model has {}", spec_.model_file, m_->nu));
    spec_.distance_meaning = "fingertip to goal";
    finish_spec({"cos_q0", "cos_q1", "sin_q0", "sin_q1", "goal_x", "goal_y", "qvel0", "qvel1", "tip_minus_goal_x",
                 "tip_minus_goal_y"});
    // Reach of the arm from the model itself (so modified link lengths work).
    const int b0 = require_id(mjOBJ_BODY, "body0", "body");
    const int b1 = require_id(mjOBJ_BODY, "body1", "body");
    simulate([this] { mj_forward(m_, d_); });
    const double* base = d_->xpos + 3 * b0;
    l1_ = std::hypot(d_->xpos[3 * b1] - base[0], d_->xpos[3 * b1 + 1] - base[1]);
    l2_ = dist2d(d_->xpos + 3 * b1, pos(tip_));
  }

  void observe(double* o) const override {
    const double q0 = d_->qpos[m_->jnt_qposadr[j0_]], q1 = d_->qpos[m_->jnt_qposadr[j1_]];
    o[0] = std::cos(q0), o[1] = std::cos(q1), o[2] = std::sin(q0), o[3] = std::sin(q1);
    o[4] = goal_[0], o[5] = goal_[1];
    o[6] = d_->qvel[m_->jnt_dofadr[j0_]], o[7] = d_->qvel[m_->jnt_dofadr[j1_]];
    const double* p = pos(tip_);
    o[8] = p[0] - goal_[0], o[9] = p[1] - goal_[1];
  }

  double distance() const override { return dist2d(pos(tip_), goal_.data()); }

  // Scripted expert: operational-space control of the fingertip.
  void expert_action(double* a) const override { reach_action(tip_, goal_.data(), 12.0, 60.0, 1.5, 0.02, a); }

  // train/test: r in [0.02, 0.2]; ood: r in [0.05, 0.2] in the held-out wedge.
  GoalRegion goal_region(Split s) const override {
    return s == Split::Ood ? sector(0, 0, 0.05, 0.2, true) : sector(0, 0, 0.02, 0.2, false);
  }

 protected:
  void init_state(Rng& rng) override {
    // Gymnasium's reset noise, on the arm's joints only (never on the goal's
    // slide joints of a Gymnasium model): qpos then qvel, joint0 then joint1.
    for (int j : {j0_, j1_}) d_->qpos[m_->jnt_qposadr[j]] = rng.uniform(-0.1, 0.1);
    for (int j : {j0_, j1_}) d_->qvel[m_->jnt_dofadr[j]] = rng.uniform(-0.005, 0.005);
  }

  double compute_reward(const double* a) const override { return -distance() - ctrl_cost_ * sq_norm(a, 2); }

  std::string goal_problem(const double* g) const override {
    const double r = std::hypot(g[0], g[1]);
    if (r > l1_ + l2_ || r < std::abs(l1_ - l2_))
      return fmt::format("the arm reaches distances in [{}, {}] from its base, the goal is at {}", std::abs(l1_ - l2_),
                         l1_ + l2_, r);
    return "";
  }

 private:
  Point tip_;
  int j0_, j1_;
  double l1_ = 0, l2_ = 0;
};

}  // namespace

EnvEntry reacher_env() {
  return env_entry<Reacher>("reacher", "2-link planar arm reaching a goal (Gymnasium Reacher-like)");
}

}  // namespace ml3
