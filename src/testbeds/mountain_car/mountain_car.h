#pragma once
// ML3's mountain car with an intermediate goal (the paper, Bechtle et al. 2021,
// section IV.B; docs/method.md): shaping for exploration. The dynamics are
// differentiable, so a policy's rollout is a function of its parameters:
//   v += (g m cos(3p) + a/m - k v) dt,  p += v dt,
//   m = 0.2, g = -9.8, k = 0.3, dt = 0.1, a clipped to [-0.25, 0.25],
//   p in [-1.2, 0.5], |v| <= 1.5 (state bounds straight-through, as the
//   reference's in-place clamps), start (-0.55, 0), goal (0.5, 1.0375).
// Policy: linear a = w . (p, v), no bias. Learned loss M_phi(p_t, v_t, a_t, d)
// with d = |s_T - goal| (detached), 4-400-400-1 ELU, mean over t < T.
// Inner step: w' = w - lr dM/dw (create_graph); task loss on the rollout of w':
// |S - goal| (Frobenius norm over all states), or with shaping
// |S[:15] - intermediate| + |S[15:] - goal|. Meta-test: a fresh policy takes
// SGD steps on the learned loss alone; after each, its rollout's final position.
//
// Beyond the reference (one fixed policy, one inner step from it): a pool of
// policies that keep training under the current loss, each reset to a fresh
// initialisation every mountain_car.pool_reset_every steps, so that the loss is
// meta-trained on the states training passes through, not only the first step.
//
// Runs under the runner as the registry's `mountain_car` algorithm
// (src/testbeds/mountain_car/*.cpp but engine.cpp, which is LibTorch-free).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "src/testbeds/mountain_car/engine.h"

namespace ml3 {

void declare_mountain_car(Schema& s);
void check_mountain_car_config(const Config& c);

// One meta-step over `pool` in double precision with the hand-derived engine
// (autograd = false) or LibTorch autograd: phi flat in core/small_mlp.h's
// layout for the config's loss sizes; gphi receives dL_T/dphi (for tests).
MountainCarStep mountain_car_meta_step(const Config& cfg, bool autograd, const std::vector<double>& phi,
                                       const std::vector<std::array<double, 2>>& pool, std::vector<double>& gphi);

// The reference's rollout in double precision without autograd (for tests and
// landscapes): states s_0 .. s_T of the linear policy w.
std::vector<std::array<double, 2>> mountain_car_rollout(const std::array<double, 2>& w, int horizon);

// Meta-test of a loss file (JSON text: final_position_after_steps,
// max_consecutive_steps_at_goal, ... for the learned loss and for SGD on the
// unshaped task loss itself).
std::string run_mountain_car_meta_test(const std::string& loss_file, const Config& cfg, bool quiet);

// The landscape of a loss file over the policy's two weights: a 1-D slice
// along the line from the initial to the trained policy and a 2-D grid, the
// learned loss and the task loss at each point. JSON for tools/plot.py's
// `landscape` mode.
std::string mountain_car_landscape(const std::string& loss_file, const Config& cfg, int points);

}  // namespace ml3
