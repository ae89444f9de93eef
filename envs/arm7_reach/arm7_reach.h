#pragma once
// arm7_reach: the arm7 arm (envs/arm7/arm7.h: actuation, the 34-value
// observation, reward) moves its grasp site to a 3-D goal above the table.
// The "object" of the observation is the grasp site itself (object - grasp
// = 0, object velocity = the grasp site's velocity), so the reward is
// -|grasp - goal| - ctrl_cost * servo effort. Success: within 0.03 m.
// Goals: train/test r in [0.05, 0.18] m around (0.45, 0), angle in
// [-135, 135] deg, z in [0.06, 0.30]; ood: the wedge toward the arm.
// Expert: operational-space control of the grasp site (gripper down, open).
// Reads from a model: the arm7 names (arm7.h) and the mocap body "target".
#include "envs/env.h"

namespace ml3 {
EnvEntry arm7_reach_env();
}  // namespace ml3
