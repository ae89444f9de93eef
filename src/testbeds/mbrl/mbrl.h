#pragma once
// ML3's model-based reacher (the paper's section IV.A, issue 9 section 3;
// docs/method.md 4.5): a learned loss meta-trained through a learned
// dynamics model of our MuJoCo `reacher`.
//
// Modelled state s = (q0, q1, qdot0, qdot1) (the arm's joint angles and
// velocities); the dynamics ensemble (models/dynamics.h) predicts s' - s from
// (cos q0, sin q0, q1, cos q1, sin q1, qdot0, qdot1, a0, a1) (q1 itself: the
// elbow is limited to [-3, 3], and its dynamics change at the limits). The goal is about
// the fingertip, which is computed from s by forward kinematics
// tip = b + l1 (cos q0, sin q0) + l2 (cos(q0+q1), sin(q0+q1)) whose four
// coefficients are fitted by least squares on the babbling data (exact for a
// 2-link arm; the residual is reported). From s and the goal the reacher's
// 10-value observation is rebuilt, so a policy runs the same way through the
// model and in MuJoCo.
//
// Policy: tanh MLP over the scaled observation, tanh output = the action.
// Learned loss M_phi(obs_t, a_t, d_t) with d_t = |tip_t - goal| detached,
// softplus output, mean over t < T. Task loss on the model rollout:
// 10 |tip_T - g| + mean_t |tip_t - g| + 1e-4 mean_t |qdot_t|.
//
// Runs under the runner as the registry's `mbrl` algorithm (src/testbeds/mbrl/meta_trainer.cpp).
#include <string>

#include <nlohmann/json.hpp>

#include "core/config.h"

namespace ml3 {

void declare_mbrl(Schema& s);
void check_mbrl_config(const Config& c, const std::string& source);

// `ml3 dynamics fit`: random babbling in MuJoCo, an ensemble fitted on it,
// held-out one-step and 50-step (the horizon) errors against MuJoCo. Writes
// dynamics.ml3, fit.json and config.yaml into `out_dir`; returns fit.json's text.
std::string run_dynamics_fit(const Config& cfg, const std::string& out_dir, bool force, bool quiet);
// `ml3 dynamics eval`: the same held-out errors of a model file (e.g. the
// dynamics.ml3 of a meta-training run, refitted on policy data) on
// mbrl.holdout_episodes fresh babbling episodes of mbrl.test_seed, which no
// fit has seen. Returns JSON {"model_file", "held_out"}.
std::string run_dynamics_eval(const std::string& model_file, const Config& cfg);

// `ml3 meta-test`: fresh policies on `split` goals take mbrl.test_steps
// gradient steps through the model with the learned loss, and with the task
// loss itself; after each step they run in MuJoCo. Writes results.json and
// config.yaml into `out_dir`; returns results.json's text.
std::string run_mbrl_meta_test(const std::string& loss_file, const Config& cfg, const std::string& split,
                               const std::string& out_dir, bool force, bool quiet);
std::string mbrl_meta_test_table(const std::string& results_json);

// Tests: a dynamics model fitted under `cfg` (babbling + fit, no files), then
// the task loss of a model rollout of one policy, its autograd gradient with
// respect to the policy parameters and a central finite difference along a
// random direction, both in float64:
// {"grad_norm", "directional_autograd", "directional_fd", "task_loss"}.
nlohmann::json mbrl_gradient_check(const Config& cfg, double eps);

}  // namespace ml3
