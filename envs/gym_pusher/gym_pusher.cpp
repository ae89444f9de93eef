#include "envs/gym_pusher/gym_pusher.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "envs/env_util.h"
#include "envs/mujoco_env.h"

namespace ml3 {
namespace {

constexpr const char* kArmJoints[7] = {"r_shoulder_pan_joint", "r_shoulder_lift_joint", "r_upper_arm_roll_joint",
                                       "r_elbow_flex_joint",   "r_forearm_roll_joint",  "r_wrist_flex_joint",
                                       "r_wrist_roll_joint"};

class GymPusher : public MujocoEnv {
 public:
  static Schema schema() {
    Schema s = common_env_schema("gym_pusher.xml", 100, 5, 0.05, 0.1);
    s.add_double("dist_weight", 1.0, "weight of the object-to-goal distance in the reward (reward_dist_weight)", 0.0);
    s.add_double("near_weight", 0.5, "weight of the object-to-tips_arm distance in the reward (reward_near_weight)",
                 0.0);
    return s;
  }

  explicit GymPusher(const Config& o) : MujocoEnv("gym_pusher", o, "gym_pusher.xml") {
    dist_weight_ = o.get_double("dist_weight");
    near_weight_ = o.get_double("near_weight");
    for (int i = 0; i < 7; ++i) {
      const int j = require_id(mjOBJ_JOINT, kArmJoints[i], "hinge joint");
      if (m_->jnt_type[j] != mjJNT_HINGE)
        throw Error(fmt::format("{}: joint '{}' must be a hinge joint", spec_.model_file, kArmJoints[i]));
      arm_q_[i] = m_->jnt_qposadr[j], arm_v_[i] = m_->jnt_dofadr[j];
    }
    tips_ = require_id(mjOBJ_BODY, "tips_arm", "body");
    obj_ = require_id(mjOBJ_BODY, "object", "body");
    table_ = require_id(mjOBJ_GEOM, "table", "geom");
    if (m_->geom_type[table_] != mjGEOM_PLANE || m_->geom_bodyid[table_] != 0)
      throw Error(spec_.model_file + ": geom 'table' must be a plane in the worldbody (its size gives the table's extent)");
    if (m_->nu != 7)
      throw Error(fmt::format("{}: gym_pusher needs 7 actuators (the arm's joints), the model has {}", spec_.model_file,
                              m_->nu));
    goal_marker_ = "goal";
    spec_.distance_meaning = "object to goal";
    std::vector<std::string> names;
    for (const char* j : kArmJoints) names.push_back(std::string("qpos_") + j);
    for (const char* j : kArmJoints) names.push_back(std::string("qvel_") + j);
    for (const char* b : {"tips_arm", "object", "goal"})
      for (const char* c : {"x", "y", "z"}) names.push_back(fmt::format("{}_{}", b, c));
    finish_spec(std::move(names));
    goal_body_ = mj_name2id(m_, mjOBJ_BODY, "goal");
    find_object_joints();
  }

  void observe(double* o) const override {
    for (int i = 0; i < 7; ++i) o[i] = d_->qpos[arm_q_[i]], o[7 + i] = d_->qvel[arm_v_[i]];
    // Gymnasium's get_body_com: the bodies' centres of mass (xipos).
    for (int c = 0; c < 3; ++c) {
      o[14 + c] = d_->xipos[3 * tips_ + c];
      o[17 + c] = d_->xipos[3 * obj_ + c];
      o[20 + c] = d_->xipos[3 * goal_body_ + c];
    }
  }

  // Success is measured on the table: the horizontal object-goal distance (the
  // reward, as Gymnasium's, uses the 3-D distance between the centres of mass,
  // which never falls below the goal disc's 0.048 m height gap).
  double distance() const override { return dist2d(d_->xipos + 3 * obj_, d_->xipos + 3 * goal_body_); }

  GoalRegion goal_region(Split s) const override {
    return sector(goal_home_[0], goal_home_[1], 0.02, 0.10, s == Split::Ood);
  }

  // Go behind the object on the line from the goal through it, with the hand's
  // open side (its x axis) facing the goal, then push along the line.
  void expert_action(double* a) const override {
    const double* o = d_->xipos + 3 * obj_;
    const double* g = d_->xipos + 3 * goal_body_;
    double u[3] = {g[0] - o[0], g[1] - o[1], 0.0};
    const double gap = std::hypot(u[0], u[1]);
    if (gap < 1e-6) u[0] = 1.0, u[1] = 0.0; else u[0] /= gap, u[1] /= gap;
    const MujocoEnv::Point hand{mjOBJ_BODY, hand_body()};
    const double* h = pos(hand);
    const double rel[2] = {h[0] - o[0], h[1] - o[1]};
    const double along = rel[0] * u[0] + rel[1] * u[1];
    const double lateral = -rel[0] * u[1] + rel[1] * u[0];
    const double contact = 0.07;  // cylinder radius 0.05 + palm bar 0.02
    const double stand = contact + 0.02;
    double target[3];
    double vmax = 0.6;
    const double z = o[2];
    const double behind[2] = {o[0] - u[0] * stand, o[1] - u[1] * stand};
    if (gap < 0.01) {
      // At the goal: hold the hand where it is.
      target[0] = h[0], target[1] = h[1], target[2] = h[2];
    } else if (along < -0.6 * stand && std::abs(lateral) < 0.06 && h[2] < z + 0.03) {
      // Down behind the cylinder, within the palm bar's half width of the line:
      // push (the bar's normal is the line), aiming it at most 6 cm ahead.
      const double push = std::min(gap, 0.06);
      vmax = std::min(0.3, 2.0 * gap);  // slow down near the goal: the cylinder slides on
      target[0] = o[0] + u[0] * (push - contact) + u[1] * lateral;
      target[1] = o[1] + u[1] * (push - contact) - u[0] * lateral;
      target[2] = z;
    } else if (std::hypot(h[0] - behind[0], h[1] - behind[1]) < 0.03) {
      // Above the push point: come down.
      target[0] = behind[0], target[1] = behind[1], target[2] = z;
    } else {
      // Travel to the push point above the cylinder's top, never through it.
      target[0] = behind[0], target[1] = behind[1], target[2] = z + 0.12;
    }
    // The palm bar pushes with either face: turn the hand's x axis to +u or -u,
    // whichever is nearer (the arm cannot point its hand back at its base).
    const double* R = d_->xmat + 9 * hand_body();
    const double sign = R[0] * u[0] + R[3] * u[1] >= 0 ? 1.0 : -1.0;
    const double face[3] = {sign * u[0], sign * u[1], 0.0};
    reach_action(hand, target, 8.0, 8.0, vmax, 0.05, a, {3, face, 3.0, true});
  }

 protected:
  void init_state(Rng& rng) override {
    // qpos is the model's qpos0 (mj_resetData) with the goal already placed.
    const double* g = goal_.data();
    for (int attempt = 0;; ++attempt) {
      if (attempt == 10000)
        throw Error(fmt::format("gym_pusher: no object start is 0.17 m from the goal ({}, {})", g[0], g[1]));
      const double c[2] = {rng.uniform(-0.3, 0.0), rng.uniform(-0.2, 0.2)};
      double w[2] = {obj_home_[0], obj_home_[1]};
      for (int k = 0; k < 2; ++k) {
        d_->qpos[obj_q_[k]] = m_->qpos0[obj_q_[k]] + c[k];
        w[obj_axis_[k]] += c[k];
      }
      if (std::hypot(w[0] - g[0], w[1] - g[1]) > 0.17) break;
    }
    for (int i = 0; i < 7; ++i) d_->qvel[arm_v_[i]] = rng.uniform(-0.005, 0.005);
  }

  double compute_reward(const double* a) const override {
    const double* o = d_->xipos + 3 * obj_;
    return -dist_weight_ * dist3d(o, d_->xipos + 3 * goal_body_) - ctrl_cost_ * sq_norm(a, 7) - near_weight_ * dist3d(o, d_->xipos + 3 * tips_);
  }

  std::string goal_problem(const double* g) const override {
    const double* half = m_->geom_size + 3 * table_;
    const double* center = m_->geom_pos + 3 * table_;
    if (std::abs(g[0] - center[0]) > half[0] || std::abs(g[1] - center[1]) > half[1])
      return fmt::format("gym_pusher goals must lie on the table (|x - {}| <= {}, |y - {}| <= {})", center[0], half[0],
                         center[1], half[1]);
    const double r = std::hypot(g[0] - base_[0], g[1] - base_[1]);
    if (r > reach_ - 0.08)
      return fmt::format("the object can be pushed to at most {:.3f} m from the arm's shoulder axis, the goal is at {:.3f}",
                         reach_ - 0.08, r);
    return "";
  }

 private:
  // The object's two slide joints in model order, and which world axis each moves.
  void find_object_joints() {
    const std::string expected =
        fmt::format("{}: body 'object' must carry two slide joints, along x and along y (as Pusher-v5's obj_slidey, "
                    "obj_slidex)",
                    spec_.model_file);
    if (m_->body_jntnum[obj_] != 2) throw Error(expected);
    simulate([this] { mj_kinematics(m_, d_); });
    bool seen[2] = {false, false};
    for (int k = 0; k < 2; ++k) {
      const int j = m_->body_jntadr[obj_] + k;
      if (m_->jnt_type[j] != mjJNT_SLIDE) throw Error(expected);
      const double* axis = d_->xaxis + 3 * j;
      int c = -1;
      for (int cc = 0; cc < 2; ++cc)
        if (std::abs(axis[cc] - 1.0) < 1e-9 && std::abs(axis[1 - cc]) < 1e-9 && std::abs(axis[2]) < 1e-9) c = cc;
      if (c < 0 || seen[c]) throw Error(expected);
      seen[c] = true;
      obj_q_[k] = m_->jnt_qposadr[j], obj_axis_[k] = c;
      obj_v_[k] = m_->jnt_dofadr[j];
    }
    obj_home_[0] = d_->xipos[3 * obj_], obj_home_[1] = d_->xipos[3 * obj_ + 1];
    goal_home_[0] = d_->xipos[3 * goal_body_], goal_home_[1] = d_->xipos[3 * goal_body_ + 1];
    // Horizontal reach: from the shoulder-pan axis to the tips at full stretch.
    const int pan = mj_name2id(m_, mjOBJ_JOINT, kArmJoints[0]);
    const double* anchor = d_->xanchor + 3 * pan;
    base_[0] = anchor[0], base_[1] = anchor[1];
    reach_ = 0.0;
    int b = tips_;
    double prev[3] = {d_->xipos[3 * tips_], d_->xipos[3 * tips_ + 1], d_->xipos[3 * tips_ + 2]};
    while (b > 0 && b != m_->jnt_bodyid[pan]) {  // sum of link offsets along the chain
      b = m_->body_parentid[b];
      reach_ += dist3d(prev, d_->xpos + 3 * b);
      std::copy(d_->xpos + 3 * b, d_->xpos + 3 * b + 3, prev);
    }
  }
  int hand_body() const { return m_->body_parentid[tips_]; }

  double dist_weight_, near_weight_;
  int arm_q_[7], arm_v_[7];
  int tips_, obj_, goal_body_ = -1, table_;
  int obj_q_[2], obj_v_[2], obj_axis_[2];
  double obj_home_[2], goal_home_[2], base_[2], reach_ = 0;
};

}  // namespace

EnvEntry gym_pusher_env() {
  return env_entry<GymPusher>("gym_pusher",
                              "Gymnasium Pusher-v5: a 7-DoF arm pushing a cylinder to a goal (goal-conditioned)");
}

}  // namespace ml3
