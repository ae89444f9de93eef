#include "envs/arm7/arm7.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "envs/env_util.h"

namespace ml3 {

namespace {
const char* kArmJoints[7] = {"shoulder_pan", "shoulder_lift", "upper_arm_roll", "elbow_flex",
                             "forearm_roll", "wrist_flex",    "wrist_roll"};
}  // namespace

Schema Arm7Env::arm7_schema(const std::string& builtin_file, double success_threshold) {
  Schema s = common_env_schema(builtin_file, 100, 20, success_threshold, 0.1,
                               "weight of the arm servos' tracking error sum_i (ctrl_i - q_i)^2 in the reward "
                               "(proportional to their torque; the gripper is not charged)");
  s.add_double("tip_cost", 0.5, "weight of the grasp-site-to-object distance in the reward", 0.0);
  return s;
}

Arm7Env::Arm7Env(const std::string& name, const Config& o, const std::string& builtin_file)
    : MujocoEnv(name, o, builtin_file) {
  spec_.goal_dim = 3;
  tip_cost_ = o.get_double("tip_cost");
  int arm_joints[7];
  for (int i = 0; i < 7; ++i) {
    arm_joints[i] = require_id(mjOBJ_JOINT, kArmJoints[i], "hinge joint");
    if (m_->jnt_type[arm_joints[i]] != mjJNT_HINGE)
      throw Error(fmt::format("{}: joint '{}' must be a hinge joint", spec_.model_file, kArmJoints[i]));
    arm_joint_[i] = arm_joints[i];
    arm_qpos_[i] = m_->jnt_qposadr[arm_joints[i]];
    arm_dof_[i] = m_->jnt_dofadr[arm_joints[i]];
  }
  int fingers[2];
  const char* finger_names[2] = {"finger_left", "finger_right"};
  for (int k = 0; k < 2; ++k) {
    fingers[k] = require_id(mjOBJ_JOINT, finger_names[k], "slide joint");
    if (m_->jnt_type[fingers[k]] != mjJNT_SLIDE)
      throw Error(fmt::format("{}: joint '{}' must be a slide joint", spec_.model_file, finger_names[k]));
    finger_qpos_[k] = m_->jnt_qposadr[fingers[k]];
    finger_dof_[k] = m_->jnt_dofadr[fingers[k]];
  }
  grasp_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "grasp", "site")};
  const int table = require_id(mjOBJ_GEOM, "table", "geom");
  if (m_->geom_type[table] != mjGEOM_BOX || m_->geom_bodyid[table] != 0)
    throw Error(spec_.model_file + ": geom 'table' must be a box in the worldbody (its top is the table surface)");
  table_top_ = m_->geom_pos[3 * table + 2] + m_->geom_size[3 * table + 2];
  for (int c = 0; c < 2; ++c) table_center_[c] = m_->geom_pos[3 * table + c], table_half_[c] = m_->geom_size[3 * table + c];
  if (m_->nu != 8)
    throw Error(fmt::format("{}: {} needs 8 actuators (7 arm joints, then the gripper), the model has {}",
                            spec_.model_file, spec_.name, m_->nu));
  for (int i = 0; i < 8; ++i) {
    const int j = m_->actuator_trntype[i] == mjTRN_JOINT ? m_->actuator_trnid[2 * i] : -1;
    const bool servo = m_->actuator_gaintype[i] == mjGAIN_FIXED && m_->actuator_biastype[i] == mjBIAS_AFFINE &&
                       m_->actuator_gainprm[mjNGAIN * i] > 0 &&
                       m_->actuator_biasprm[mjNBIAS * i + 1] == -m_->actuator_gainprm[mjNGAIN * i] &&
                       m_->actuator_ctrllimited[i];
    const bool on_joint = i < 7 ? j == arm_joints[i] : (j == fingers[0] || j == fingers[1]);
    if (!servo || !on_joint)
      throw Error(fmt::format(
          "{}: {}: actuator {} must be a <position> servo with a ctrlrange on joint '{}'", spec_.model_file,
          spec_.name, i, i < 7 ? kArmJoints[i] : "finger_left or finger_right"));
  }
}

void Arm7Env::finish_arm7() {
  std::vector<std::string> names;
  for (const char* j : kArmJoints) names.push_back(std::string("q_") + j);
  for (const char* j : kArmJoints) names.push_back(std::string("qvel_") + j);
  names.push_back("gripper_opening");
  names.push_back("gripper_opening_vel");
  for (const char* what : {"grasp", "obj", "obj_minus_grasp", "obj_vel", "goal", "goal_minus_obj"})
    for (const char* c : {"_x", "_y", "_z"}) names.push_back(std::string(what) + c);
  finish_spec(std::move(names));
  // Arm geometry at qpos0 (straight up), for the workspace checks.
  simulate([this] { mj_forward(m_, d_); });
  const int lift = mj_name2id(m_, mjOBJ_JOINT, "shoulder_lift");
  const int elbow = mj_name2id(m_, mjOBJ_JOINT, "elbow_flex");
  const int wrist = mj_name2id(m_, mjOBJ_JOINT, "wrist_flex");
  for (int c = 0; c < 3; ++c) shoulder_[c] = d_->xanchor[3 * lift + c];
  arm_reach_ = dist3d(shoulder_, d_->xanchor + 3 * elbow) + dist3d(d_->xanchor + 3 * elbow, d_->xanchor + 3 * wrist);
  hand_ = dist3d(d_->xanchor + 3 * wrist, pos(grasp_));
}

void Arm7Env::observe(double* o) const {
  for (int i = 0; i < 7; ++i) o[i] = d_->qpos[arm_qpos_[i]], o[7 + i] = d_->qvel[arm_dof_[i]];
  o[14] = opening();
  o[15] = d_->qvel[finger_dof_[0]] + d_->qvel[finger_dof_[1]];
  const double* g = pos(grasp_);
  const double* ob = object();
  double v[3];
  object_velocity(v);
  for (int c = 0; c < 3; ++c) {
    o[16 + c] = g[c];
    o[19 + c] = ob[c];
    o[22 + c] = ob[c] - g[c];
    o[25 + c] = v[c];
    o[28 + c] = goal_[c];
    o[31 + c] = goal_[c] - ob[c];
  }
}

double Arm7Env::distance() const { return dist3d(object(), goal_.data()); }

double Arm7Env::opening() const { return d_->qpos[finger_qpos_[0]] + d_->qpos[finger_qpos_[1]]; }

double Arm7Env::compute_reward(const double* a) const {
  double effort = 0;
  for (int i = 0; i < 7; ++i) effort += (a[i] - d_->qpos[arm_qpos_[i]]) * (a[i] - d_->qpos[arm_qpos_[i]]);
  return -distance() - tip_cost_ * dist3d(object(), pos(grasp_)) - ctrl_cost_ * effort;
}

void Arm7Env::init_arm(Rng& rng) {
  for (int i = 0; i < 7; ++i) d_->qpos[arm_qpos_[i]] = kHome[i] + rng.uniform(-0.05, 0.05);
  for (int k = 0; k < 2; ++k) d_->qpos[finger_qpos_[k]] = 0.5 * open_ctrl();
}

std::string Arm7Env::reach_problem(const double* g, const char* what) const {
  if (std::abs(g[0] - table_center_[0]) > table_half_[0] || std::abs(g[1] - table_center_[1]) > table_half_[1])
    return fmt::format("{} must lie over the table (|x - {}| <= {}, |y - {}| <= {})", what, table_center_[0],
                       table_half_[0], table_center_[1], table_half_[1]);
  if (g[2] < table_top_)
    return fmt::format("{} must lie above the table surface z = {}, it is at z = {}", what, table_top_, g[2]);
  const double wrist[3] = {g[0], g[1], g[2] + hand_};
  const double r = dist3d(wrist, shoulder_);
  if (r > arm_reach_ - 0.03)
    return fmt::format("{} is out of reach: with the gripper pointing down the wrist would be {:.3f} m from the "
                       "shoulder, the arm reaches {:.3f} m (minus a 0.03 m margin)",
                       what, r, arm_reach_);
  const double radial = std::hypot(g[0] - shoulder_[0], g[1] - shoulder_[1]);
  if (radial < 0.2)
    return fmt::format("{} is {:.3f} m from the arm's axis, closer than 0.2 m: the gripper cannot point down there",
                       what, radial);
  return "";
}

std::string Arm7Env::height_problem(const double* g, double z, const char* what) const {
  if (std::abs(g[2] - z) > 0.005) return fmt::format("{} must be at height z = {:.4f} (got {:.4f})", what, z, g[2]);
  return "";
}

void Arm7Env::find_block() {
  object_ = {mjOBJ_SITE, require_id(mjOBJ_SITE, "object", "site")};
  const int j = require_id(mjOBJ_JOINT, "object", "free joint");
  if (m_->jnt_type[j] != mjJNT_FREE) throw Error(spec_.model_file + ": joint 'object' must be a free joint");
  obj_q_ = m_->jnt_qposadr[j];
  obj_v_ = m_->jnt_dofadr[j];
  const int geom = require_id(mjOBJ_GEOM, "object", "geom");
  const double* size = m_->geom_size + 3 * geom;
  const int type = m_->geom_type[geom];
  if (type != mjGEOM_BOX && type != mjGEOM_CYLINDER)
    throw Error(spec_.model_file + ": geom 'object' must be a box or a cylinder");
  half_ = size[0];
  rest_z_ = table_top_ + (type == mjGEOM_BOX ? size[2] : size[1]);
  for (int c = 0; c < 3; ++c) home_[c] = m_->qpos0[obj_q_ + c];
}

void Arm7Env::init_block(Rng& rng) {
  d_->qpos[obj_q_] = home_[0] + rng.uniform(-0.02, 0.02);
  d_->qpos[obj_q_ + 1] = home_[1] + rng.uniform(-0.02, 0.02);
  d_->qpos[obj_q_ + 2] = rest_z_;
  const double yaw = rng.uniform(-0.2, 0.2);
  d_->qpos[obj_q_ + 3] = std::cos(0.5 * yaw);
  d_->qpos[obj_q_ + 4] = 0, d_->qpos[obj_q_ + 5] = 0;
  d_->qpos[obj_q_ + 6] = std::sin(0.5 * yaw);
}

double Arm7Env::block_yaw() const {
  const double* q = d_->qpos + obj_q_ + 3;  // w, x, y, z
  return std::atan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] * q[2] + q[3] * q[3]));
}

double Arm7Env::natural_yaw(const double* at) const {
  return std::atan2(at[1] - shoulder_[1], at[0] - shoulder_[0]) + kPi;
}

double Arm7Env::nearest_yaw(double base, double period, const double* at) const {
  const double n = natural_yaw(at);
  return base + period * std::round((n - base) / period);
}

void Arm7Env::expert_action(double* a) const {
  const Plan p = plan();
  const double c = std::cos(p.yaw), s = std::sin(p.yaw);
  // Desired grasp-site frame: x = (c, s, 0), y = (s, -c, 0), z = down.
  const double xmat[9] = {c, s, 0, s, -c, 0, 0, 0, -1};
  ServoReach params;
  params.posture = kHome;
  servo_reach_action(grasp_, p.pos, xmat, params, 7, a);
  a[7] = std::min(spec_.act_high[7], std::max(spec_.act_low[7], p.opening));
}

Arm7Env::Plan Arm7Env::grasp_and_carry(double half, double obj_yaw, const double* dest, bool lift) const {
  const double* o = object();
  const double* g = pos(grasp_);
  Plan p;
  p.yaw = nearest_yaw(obj_yaw, 0.5 * kPi, o);
  const double w = opening();
  // Held: between the fingers (which span +-0.03 m about the grasp site
  // vertically) and the fingers closed on it.
  const bool holding = dist2d(g, o) < 0.02 && std::abs(g[2] - o[2]) < 0.03 && w < 2 * half + 0.006 &&
                       w > 2 * half - 0.02;
  if (holding) {
    p.opening = closed_ctrl();
    // Where the grasp site must go to put the object at dest: the grasp
    // offset, bounded (a slipping object must not drive the target away).
    for (int c = 0; c < 3; ++c) p.pos[c] = dest[c] + std::min(0.015, std::max(-0.015, g[c] - o[c]));
    if (lift && o[2] < table_top_ + half + 0.03 && dist2d(o, dest) > 0.03)
      p.pos[0] = g[0], p.pos[1] = g[1], p.pos[2] = g[2] + 0.05;  // straight up first
    return p;
  }
  p.opening = open_ctrl();
  const double above = o[2] + half + 0.05;
  const double h = dist2d(g, o);
  const bool low = g[2] < above - 0.01;
  if (h > (low ? 0.02 : 0.01)) {
    if (low && h < 0.08)  // next to the object: rise before moving over it
      p.pos[0] = g[0], p.pos[1] = g[1], p.pos[2] = above;
    else
      p.pos[0] = o[0], p.pos[1] = o[1], p.pos[2] = above;
    return p;
  }
  for (int c = 0; c < 3; ++c) p.pos[c] = o[c];
  if (dist3d(g, o) < 0.012) p.opening = closed_ctrl();
  return p;
}

Arm7Env::Plan Arm7Env::push(double half, const double* dest) const {
  const double* o = object();
  const double* g = pos(grasp_);
  Plan p;
  p.opening = closed_ctrl();
  double u[2] = {dest[0] - o[0], dest[1] - o[1]};
  const double gap = std::hypot(u[0], u[1]);
  if (gap < 1e-6) {
    p.yaw = natural_yaw(g);
    for (int c = 0; c < 3; ++c) p.pos[c] = g[c];
    return p;
  }
  u[0] /= gap, u[1] /= gap;
  const double n[2] = {-u[1], u[0]};
  // Fingers side by side across the push direction.
  p.yaw = nearest_yaw(std::atan2(u[1], u[0]), kPi, o);
  const double contact = half + 0.012;
  const double rel[2] = {g[0] - o[0], g[1] - o[1]};
  const double along = rel[0] * u[0] + rel[1] * u[1];
  const double lateral = rel[0] * n[0] + rel[1] * n[1];
  const double low = o[2], high = o[2] + half + 0.05;
  const double stand = contact + 0.015;
  const double behind[2] = {o[0] - u[0] * stand, o[1] - u[1] * stand};
  if (along < -0.6 * contact && std::abs(lateral) < 0.015 && g[2] < low + 0.02) {
    // Behind the object and aligned: push it along the line to the goal.
    const double step = std::min(gap, 0.03) - contact;
    p.pos[0] = o[0] + u[0] * step - n[0] * lateral;
    p.pos[1] = o[1] + u[1] * step - n[1] * lateral;
    p.pos[2] = low;
    return p;
  }
  const double to_behind = std::hypot(g[0] - behind[0], g[1] - behind[1]);
  if (to_behind < 0.015) {
    p.pos[0] = behind[0], p.pos[1] = behind[1], p.pos[2] = low;
  } else if (g[2] < high - 0.02 && dist2d(g, o) < stand + 0.05) {
    p.pos[0] = g[0], p.pos[1] = g[1], p.pos[2] = high;  // next to the object: rise first
  } else {
    p.pos[0] = behind[0], p.pos[1] = behind[1], p.pos[2] = high;
  }
  return p;
}

}  // namespace ml3
