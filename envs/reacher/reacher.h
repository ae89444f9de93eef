#pragma once
// reacher: a 2-link planar arm reaching a goal, as Gymnasium Reacher-v5
// except: obs drops the always-zero z of (fingertip - target) -> 10 values
// [cos q(2), sin q(2), goal(2), qvel(2), fingertip - goal(2)]; goals come from
// split regions (train/test: the annulus 0.02 < r < 0.2 minus a 90-degree
// wedge around -x, ood: that wedge). Gymnasium's disc includes goals closer
// than 0.01 m to the base, which the arm cannot reach.
//
// What it reads from a model (built in: envs/reacher/reacher.xml; Gymnasium's
// own reacher.xml works unmodified): hinge joints "joint0", "joint1"; bodies
// "body0", "body1" (link lengths); "fingertip", a site or a body; body
// "target", a mocap body or a body on two slide joints along x and y (their
// qpos place the goal, their qvel is held at 0; they are not part of the arm's
// observation, reset noise or expert); exactly 2 actuators, on the arm joints.
#include "envs/env.h"

namespace ml3 {

// The registry entry of the reacher environment.
EnvEntry reacher_env();

}  // namespace ml3
