#include "envs/pusher/pusher.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "envs/env_util.h"
#include "envs/mujoco_env.h"

namespace ml3 {
namespace {

class Pusher : public MujocoEnv {
 public:
  static Schema schema() {
    Schema s = common_env_schema("pusher.xml", 100, 10, 0.05, 0.1);
    s.add_double("tip_cost", 0.5, "weight of the fingertip-to-object distance in the reward", 0.0);
    return s;
  }

  explicit Pusher(const Config& o) : MujocoEnv("pusher", o, "pusher.xml") {
    tip_cost_ = o.get_double("tip_cost");
    tip_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "fingertip", "site")};
    obj_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "object", "site")};
    const int obj_joint = require_id(mjOBJ_JOINT, "object", "free joint");
    if (m_->jnt_type[obj_joint] != mjJNT_FREE) throw Error(spec_.model_file + ": joint 'object' must be a free joint");
    obj_q_ = m_->jnt_qposadr[obj_joint];
    obj_v_ = m_->jnt_dofadr[obj_joint];
    obj_geom_ = require_id(mjOBJ_GEOM, "object", "geom");
    tip_geom_ = require_id(mjOBJ_GEOM, "fingertip", "geom");
    table_ = require_id(mjOBJ_GEOM, "table", "geom");
    if (m_->geom_type[table_] != mjGEOM_PLANE || m_->geom_bodyid[table_] != 0)
      throw Error(spec_.model_file + ": geom 'table' must be a plane in the worldbody (its size gives the table's extent)");
    const char* names[3] = {"shoulder", "elbow", "wrist"};
    for (int i = 0; i < 3; ++i) joints_[i] = require_id(mjOBJ_JOINT, names[i], "hinge joint");
    if (m_->nu != 3)
      throw Error(fmt::format("{}: pusher needs 3 actuators, the model has {}", spec_.model_file, m_->nu));
    spec_.distance_meaning = "object to goal";
    finish_spec({"cos_q0", "cos_q1", "cos_q2", "sin_q0", "sin_q1", "sin_q2", "qvel0", "qvel1", "qvel2", "tip_x",
                 "tip_y", "obj_x", "obj_y", "obj_vel_x", "obj_vel_y", "goal_x", "goal_y", "obj_minus_tip_x",
                 "obj_minus_tip_y", "goal_minus_obj_x", "goal_minus_obj_y"});
    simulate([this] { mj_forward(m_, d_); });
    obj_home_[0] = d_->qpos[obj_q_], obj_home_[1] = d_->qpos[obj_q_ + 1];
    // Arm reach from the model itself (so modified link lengths work).
    const double* p0 = d_->xpos + 3 * require_id(mjOBJ_BODY, "link0", "body");
    const double* p1 = d_->xpos + 3 * require_id(mjOBJ_BODY, "link1", "body");
    const double* p2 = d_->xpos + 3 * require_id(mjOBJ_BODY, "link2", "body");
    reach_ = dist2d(p0, p1) + dist2d(p1, p2) + dist2d(p2, pos(tip_));
  }

  void observe(double* o) const override {
    for (int i = 0; i < 3; ++i) {
      const double q = d_->qpos[m_->jnt_qposadr[joints_[i]]];
      o[i] = std::cos(q), o[3 + i] = std::sin(q);
      o[6 + i] = d_->qvel[m_->jnt_dofadr[joints_[i]]];
    }
    const double* t = pos(tip_);
    const double* ob = pos(obj_);
    o[9] = t[0], o[10] = t[1];
    o[11] = ob[0], o[12] = ob[1];
    o[13] = d_->qvel[obj_v_], o[14] = d_->qvel[obj_v_ + 1];
    o[15] = goal_[0], o[16] = goal_[1];
    o[17] = ob[0] - t[0], o[18] = ob[1] - t[1];
    o[19] = goal_[0] - ob[0], o[20] = goal_[1] - ob[1];
  }

  double distance() const override { return dist2d(pos(obj_), goal_.data()); }

  // r in [0.08, 0.15] around the puck's start; ood: the wedge toward the arm.
  GoalRegion goal_region(Split s) const override {
    return sector(obj_home_[0], obj_home_[1], 0.08, 0.15, s == Split::Ood);
  }

  // Approach-and-push, a pure function of the state: go to the point behind the
  // puck on the goal line (around the puck if the fingertip is on the wrong
  // side), then push along the line while correcting the lateral offset.
  void expert_action(double* a) const override {
    const double* t = pos(tip_);
    const double* o = pos(obj_);
    double u[2] = {goal_[0] - o[0], goal_[1] - o[1]};
    const double gap = std::hypot(u[0], u[1]);
    double target[2];
    const double contact = m_->geom_size[3 * obj_geom_] + m_->geom_size[3 * tip_geom_];
    if (gap < 1e-6) {
      target[0] = t[0], target[1] = t[1];
    } else {
      u[0] /= gap, u[1] /= gap;
      const double n[2] = {-u[1], u[0]};
      const double rel[2] = {t[0] - o[0], t[1] - o[1]};
      const double along = rel[0] * u[0] + rel[1] * u[1];
      const double lateral = rel[0] * n[0] + rel[1] * n[1];
      const double stand = contact + 0.015;
      if (along < -0.6 * contact && std::abs(lateral) < 0.012) {
        // Behind the puck and aligned: push through, aiming a little past the goal.
        const double push = std::min(gap, 0.05) + contact;
        target[0] = o[0] + u[0] * (push - contact) - n[0] * lateral * 2.0;
        target[1] = o[1] + u[1] * (push - contact) - n[1] * lateral * 2.0;
      } else if (along > -contact * 0.9 && std::abs(lateral) < stand + 0.01) {
        // Beside or in front of the puck: go around on the near side.
        const double side = lateral >= 0 ? 1.0 : -1.0;
        target[0] = o[0] - u[0] * stand + n[0] * side * (stand + 0.02);
        target[1] = o[1] - u[1] * stand + n[1] * side * (stand + 0.02);
      } else {
        target[0] = o[0] - u[0] * stand;
        target[1] = o[1] - u[1] * stand;
      }
    }
    reach_action(tip_, target, 10.0, 1.0, 0.5, 0.05, a);
  }

 protected:
  void init_state(Rng& rng) override {
    const double home[3] = {-1.2, 1.9, 1.2};
    for (int i = 0; i < 3; ++i) d_->qpos[m_->jnt_qposadr[joints_[i]]] = home[i] + rng.uniform(-0.1, 0.1);
    d_->qpos[obj_q_] = obj_home_[0] + rng.uniform(-0.02, 0.02);
    d_->qpos[obj_q_ + 1] = obj_home_[1] + rng.uniform(-0.02, 0.02);
  }

  double compute_reward(const double* a) const override {
    return -distance() - ctrl_cost_ * sq_norm(a, 3) - tip_cost_ * dist2d(pos(obj_), pos(tip_));
  }

  std::string goal_problem(const double* g) const override {
    // The table is a plane geom: its size holds its half extents along x and y.
    const double* half = m_->geom_size + 3 * table_;
    const double* center = m_->geom_pos + 3 * table_;
    const double r = std::hypot(g[0], g[1]);
    if (std::abs(g[0] - center[0]) > half[0] || std::abs(g[1] - center[1]) > half[1])
      return fmt::format("pusher goals must lie on the table (|x - {}| <= {}, |y - {}| <= {})", center[0], half[0],
                         center[1], half[1]);
    if (r > reach_ - 0.05)
      return fmt::format("the puck can be pushed to at most {} m from the arm base, the goal is at {}", reach_ - 0.05, r);
    return "";
  }

 private:
  double tip_cost_;
  Point tip_, obj_;
  int obj_q_, obj_v_, obj_geom_, tip_geom_, joints_[3];
  int table_;  // the table's geom (a plane)
  double obj_home_[2];
  double reach_ = 0;
};

}  // namespace

EnvEntry pusher_env() {
  return env_entry<Pusher>("pusher", "3-link planar arm pushing a free puck to a goal on a table");
}

}  // namespace ml3
