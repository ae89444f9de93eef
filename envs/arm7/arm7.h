#pragma once
// arm7: the shared part of the arm7_* family of goal-conditioned 3-D
// manipulation tasks (arm7_reach, arm7_push, arm7_pick, arm7_button,
// arm7_slide) on one 7-DoF arm with a parallel gripper on a table
// (envs/arm7/arm7.xml, included by each task's model).
//
// Actuation: joint-position servos. Action (8 values) = target angles of the
// 7 arm joints (rad, bounds = the actuators' ctrlrange = the joint ranges)
// and the gripper opening (m, [0, 0.08] built in). Control at 25 Hz
// (timestep 0.002 s x frame_skip 20), 100 steps = 4 s per episode.
//
// Observation (34 values, the same layout for every task, so one policy or
// learned loss shape fits the family):
//   [0, 7)   joint angles q       [7, 14)  joint velocities
//   14       gripper opening      15       gripper opening velocity
//   [16, 19) grasp site position  [19, 22) object position
//   [22, 25) object - grasp site  [25, 28) object velocity
//   [28, 31) goal                 [31, 34) goal - object
// "object" is the task's manipulated point (site "object"): the block
// (push, pick), the button's top (button), the slider's knob (slide); in
// arm7_reach, which has no object, it is the grasp site itself.
// Reward (every task): -|object - goal| - tip_cost |object - grasp site|
//   - ctrl_cost sum_arm (ctrl_i - q_i)^2   (the servos' tracking error,
//   proportional to their torque; the gripper is not charged).
// success: distance() = |object - goal| below success_threshold at the end.
//
// What it reads from a model: hinge joints shoulder_pan, shoulder_lift,
// upper_arm_roll, elbow_flex, forearm_roll, wrist_flex, wrist_roll; slide
// joints finger_left, finger_right (opening = their sum); site "grasp"; geom
// "table" (a box whose top is the table surface: goals must lie over it);
// body "target" (mocap goal marker; arm7_button: "button_base"); exactly 8
// actuators: <position> servos on the 7 arm joints in that order, then the
// gripper (on a finger joint). Each task adds its own names (see its header).
#include <string>

#include "envs/mujoco_env.h"

namespace ml3 {

class Arm7Env : public MujocoEnv {
 public:
  // Options of every arm7 task (common ones plus tip_cost).
  static Schema arm7_schema(const std::string& builtin_file, double success_threshold);

  Arm7Env(const std::string& name, const Config& options, const std::string& builtin_file);

  void observe(double* obs) const override;
  double distance() const override;
  void expert_action(double* action) const override;

 protected:
  // What a task's expert wants now: the grasp site's target, the gripper's
  // yaw about the vertical (it always points down), the gripper opening.
  struct Plan {
    double pos[3] = {0, 0, 0};
    double yaw = 0;
    double opening = 0;
  };
  virtual Plan plan() const = 0;

  // Call at the end of the derived constructor (after naming the object).
  void finish_arm7();

  // The task's object: site "object" (reach: the grasp site).
  const double* object() const { return pos(object_); }
  virtual void object_velocity(double* v) const = 0;

  double compute_reward(const double* action) const override;
  // Arm at its home posture plus noise of +-0.05 rad, gripper open.
  void init_arm(Rng& rng);
  // Reach and table checks of a goal for a grasp site pointing down
  // ("" if fine); `what` names the goal in messages.
  std::string reach_problem(const double* g, const char* what) const;
  // The goal's height must be `z` (tasks whose goals lie on a surface).
  std::string height_problem(const double* g, double z, const char* what) const;

  // Expert building blocks (pure functions of the state).
  double natural_yaw(const double* at) const;  // the yaw the arm has reaching `at` from home
  // Of the yaws base + k * period, the one nearest the natural yaw at `at`.
  double nearest_yaw(double base, double period, const double* at) const;
  // Grasp the object (half width `half` across the fingers, yaw `obj_yaw`)
  // and carry it so that it reaches `dest`; `lift`: rise before carrying.
  Plan grasp_and_carry(double half, double obj_yaw, const double* dest, bool lift) const;
  // Push the object (contact radius `half`) on the table toward dest.
  Plan push(double half, const double* dest) const;

  // A free block named "object" (free joint, geom and site): push, pick.
  void find_block();
  void init_block(Rng& rng);    // at its model position +-0.02 m, yaw +-0.2 rad
  double block_yaw() const;     // about the vertical
  void block_velocity(double* v) const { for (int c = 0; c < 3; ++c) v[c] = d_->qvel[obj_v_ + c]; }
  int obj_q_ = -1, obj_v_ = -1;
  double half_ = 0;             // the object's half width (box: x half size; cylinder: radius)
  double rest_z_ = 0;           // height of its centre resting on the table
  double home_[3] = {0, 0, 0};  // its position in the model (qpos0)

  double opening() const;
  double open_ctrl() const { return spec_.act_high[7]; }
  double closed_ctrl() const { return spec_.act_low[7]; }

  Point grasp_, object_;
  int arm_joint_[7], arm_qpos_[7], arm_dof_[7];
  int finger_qpos_[2], finger_dof_[2];
  double table_top_ = 0, table_center_[2] = {0, 0}, table_half_[2] = {0, 0};
  double shoulder_[3] = {0, 0, 0};  // shoulder_lift's anchor (fixed: only the pan turns below it)
  double arm_reach_ = 0;            // shoulder to wrist, straight
  double hand_ = 0;                 // wrist to grasp site
  double tip_cost_ = 0;
  static constexpr double kHome[7] = {0.0, 0.2, 0.0, 1.8, 0.0, 1.14, 0.0};
};

}  // namespace ml3
