#pragma once
// arm7_push: the arm7 arm (envs/arm7/arm7.h: actuation, the 34-value
// observation, reward) pushes a free 4 cm block across the table to a goal
// on the table (the block's resting height). Object = the block (site
// "object"). Success: block centre within 0.05 m of the goal.
// Goals: train/test r in [0.08, 0.16] m around the block's start (0.45, 0),
// angle in [-135, 135] deg; ood: the wedge toward the arm (pull-back pushes).
// Block start: +-0.02 m, yaw +-0.2 rad.
// Expert: closed gripper as a paddle; move (high) behind the block on the
// goal line, descend, push along the line correcting the lateral offset.
// Reads from a model: the arm7 names (arm7.h), mocap body "target", free
// joint, geom (box or cylinder: its size gives the resting height) and site
// all named "object".
#include "envs/env.h"

namespace ml3 {
EnvEntry arm7_push_env();
}  // namespace ml3
