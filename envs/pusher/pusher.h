#pragma once
// pusher: in the spirit of Gymnasium Pusher, reduced to a planar 3-link arm
// with a free puck on a table (Gymnasium: 7-DoF arm in 3-D).
// reward = -|obj - goal| - c|a|^2 - tip_cost |obj - tip|.
// obs = [cos q(3), sin q(3), qvel(3), tip(2), obj(2), obj vel(2), goal(2),
// obj - tip(2), goal - obj(2)] = 21 values.
//
// What it reads from a model (built in: envs/pusher/pusher.xml): hinge joints
// "shoulder", "elbow", "wrist"; bodies "link0", "link1", "link2" (reach);
// sites "fingertip", "object"; geoms "fingertip", "object" (contact radii) and
// "table" (a plane in the world body: goals must lie on it); free joint
// "object"; body "target" (mocap, or on two slide joints as in the reacher);
// exactly 3 actuators.
#include "envs/env.h"

namespace ml3 {

// The registry entry of the pusher environment.
EnvEntry pusher_env();

}  // namespace ml3
