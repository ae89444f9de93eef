#pragma once
// gym_pusher: Gymnasium's Pusher-v5 task, goal-conditioned. A 7-DoF arm
// (torque motors in [-2, 2], gravity off, Euler at 0.01 s, frame skip 5, 100
// steps) pushes a cylinder to a goal on a table.
//
// As Pusher-v5:
//   obs (23) = [qpos of the 7 arm joints, their qvel, centre of mass of body
//              "tips_arm" (3), of body "object" (3), of body "goal" (3)];
//   reward   = -dist_weight |object - goal| - ctrl_cost |a|^2
//              - near_weight |object - tips_arm|     (1, 0.1, 0.5; after the step);
//   reset    = the model's qpos0; arm velocities U(-0.005, 0.005); the object's
//              two slide joints get (U(-0.3, 0), U(-0.2, 0.2)) in the model's
//              joint order, redrawn until the object is more than 0.17 m from
//              the goal; the object and goal do not move initially.
// ml3's additions: the goal is the task (Pusher-v5 fixes it at the goal body's
// rest position, which is the goal (0.45, -0.05) here); train/test goals
// within 0.10 m of that point, ood goals in the wedge toward -x; success =
// final horizontal object-goal distance < success_threshold (0.05 m); a scripted
// expert (operational-space control of the hand in 3-D).
//
// What it reads from a model (built in: envs/gym_pusher/gym_pusher.xml, ml3's
// model with Pusher-v5's names; Gymnasium's own pusher.xml works unmodified
// through env.model): hinge joints r_shoulder_pan_joint, r_shoulder_lift_joint,
// r_upper_arm_roll_joint, r_elbow_flex_joint, r_forearm_roll_joint,
// r_wrist_flex_joint, r_wrist_roll_joint; bodies "tips_arm", "object" (on two
// slide joints along x and y) and "goal" (on two slide joints along x and y);
// geom "table" (a plane); exactly 7 actuators.
#include "envs/env.h"

namespace ml3 {

// The registry entry of the gym_pusher environment.
EnvEntry gym_pusher_env();

}  // namespace ml3
