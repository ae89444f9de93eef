#pragma once
// arm7_pick: the arm7 arm (envs/arm7/arm7.h: actuation, the 34-value
// observation, reward) picks up a free 4 cm block (0.1 kg) and places it at
// a 3-D goal above the table. Object = the block (site "object"). Success:
// block centre within 0.05 m of the goal.
// Goals: train/test r in [0.05, 0.16] m around the block's start (0.45, 0),
// angle in [-135, 135] deg, z in [0.08, 0.25] above the table; ood: the
// wedge toward the arm. Block start: +-0.02 m, yaw +-0.2 rad.
// Expert (stateless phases): over the block (gripper open, yawed to the
// block's faces), descend, close, lift, carry to the goal; re-grasps when
// the block is lost. A block wider than the opening is never held: the
// episode runs to its time limit and fails.
// Reads from a model: as arm7_push.
#include "envs/env.h"

namespace ml3 {
EnvEntry arm7_pick_env();
}  // namespace ml3
