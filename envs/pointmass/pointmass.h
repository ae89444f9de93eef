#pragma once
// pointmass: a 2-D point mass on two slide joints (force actuators) moving to
// a goal. Model: envs/pointmass/pointmass.xml (site "tip", slide joints
// "slide_x", "slide_y", 2 actuators, body "target").
// obs = [pos(2), vel(2), goal(2), goal - pos(2)]; reward = -|pos - goal| - c|a|^2.
#include "envs/env.h"

namespace ml3 {

// The registry entry of the pointmass environment.
EnvEntry pointmass_env();

}  // namespace ml3
