#pragma once
// arm7_slide: the arm7 arm (envs/arm7/arm7.h: actuation, the 34-value
// observation, reward) drags a knob on an x-y slide table (two damped slide
// joints with friction, +-0.2 m) to a goal. Object = the knob (site
// "object"); the goal's z is the knob's height. Success: within 0.03 m.
// Goals: train/test r in [0.05, 0.15] m around the knob's start (0.45, 0),
// angle in [-135, 135] deg; ood: the wedge toward the arm.
// Knob start: +-0.01 m on each rail.
// Expert: grasp the knob (as arm7_pick) and carry it to the goal.
// Reads from a model: the arm7 names (arm7.h), mocap body "target", slide
// joints "knob_x", "knob_y" (along world x and y; their ranges bound the
// goals), geom "object" (box: its x half size is the grasp width) and site
// "object" on the knob.
#include "envs/env.h"

namespace ml3 {
EnvEntry arm7_slide_env();
}  // namespace ml3
