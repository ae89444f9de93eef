#pragma once
// arm7_button: the arm7 arm (envs/arm7/arm7.h: actuation, the 34-value
// observation, reward) presses a push button. The goal is the position of
// the button's top when fully pressed; the button's housing (mocap body
// "button_base", the goal marker) stands at the goal, so the goal's z is
// fixed (the housing's height in the model). Object = the button's top
// (site "object", 0.02 m above the goal at rest). Success: distance below
// 0.008 m, i.e. the button held down by at least 12 of its 20 mm at the end.
// Goals: train/test r in [0.05, 0.18] m around (0.45, 0), angle in
// [-135, 135] deg; ood: the wedge toward the arm.
// Expert: closed gripper over the button, then down until the finger tips
// are 6 mm below the pressed position (the joint limit stops the cap).
// Reads from a model: the arm7 names (arm7.h), geom "finger_left" (how far
// the finger tips reach below the grasp site), mocap body "button_base",
// slide joint "button" (along z; its lower limit is the travel) and site
// "object" on the button.
#include "envs/env.h"

namespace ml3 {
EnvEntry arm7_button_env();
}  // namespace ml3
