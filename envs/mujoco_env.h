#pragma once
// Shared MuJoCo plumbing for the environments: model loading (embedded asset
// or user file) with precise errors, name lookups that say what a model lacks,
// frame-skip stepping with action validation, exact state get/set, and an
// operational-space controller the scripted experts build on.
#include <mujoco/mujoco.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "envs/env.h"

namespace ml3 {

// The MJCF assets compiled into the library, by file name.
const std::map<std::string, std::string>& embedded_assets();

// Loads an MJCF model: `path` empty -> the embedded asset `builtin`.
// Throws ml3::Error with MuJoCo's message (file, line) on failure.
mjModel* load_model(const std::string& path, const std::string& builtin);

// Options every environment has (keys of its "env." config section).
Schema common_env_schema(const std::string& builtin_file, int episode_steps, int frame_skip,
                         double success_threshold, double ctrl_cost);

class MujocoEnv : public Env {
 public:
  MujocoEnv(const std::string& name, const Config& options, const std::string& builtin_file);
  ~MujocoEnv() override;
  MujocoEnv(const MujocoEnv&) = delete;
  MujocoEnv& operator=(const MujocoEnv&) = delete;

  const EnvSpec& spec() const override { return spec_; }
  void reset(uint64_t seed, const Task& task, double* obs) override;
  void step(const double* action, double* obs, double* reward, bool* terminated, bool* truncated,
            StepInfo* info) override;
  EnvState get_state() const override;
  void set_state(const EnvState& state) override;
  const std::vector<double>& goal() const override { return goal_; }
  void check_task(const Task& task) const override;
  using Env::reset;
  using Env::step;

  const mjModel* model() const { return m_; }

 protected:
  // Derived classes call this at the end of their constructor.
  void finish_spec(int obs_dim);
  int require_id(mjtObj type, const char* name, const char* what) const;
  // Sets qpos/qvel for a new episode (d_ was reset to the model defaults).
  virtual void init_state(Rng& rng) = 0;
  virtual double compute_reward(const double* action) const = 0;
  // Radius-style workspace check of a goal; message on failure, "" if fine.
  virtual std::string goal_problem(const double* goal) const = 0;
  // Moves the visual goal marker (a mocap body) to goal_.
  void place_goal_marker();

  // Operational-space PD toward `target` for site `site` in the x-y plane:
  // desired site velocity kp * error (norm capped at vmax), mapped to joint
  // velocities by damped least squares, tracked with gain kd; writes
  // normalised actions (torque / gear, clipped to the bounds).
  void reach_action(int site, const double* target, double kp, double kd, double vmax,
                    double damping, double* action) const;
  // Site position (x, y).
  const double* site_pos(int site) const { return d_->site_xpos + 3 * site; }

  EnvSpec spec_;
  mjModel* m_ = nullptr;
  mjData* d_ = nullptr;
  std::vector<double> goal_;
  int steps_ = 0;
  int goal_mocap_ = -1;
  double ctrl_cost_ = 0.0;
  mutable std::vector<mjtNum> jac_;  // scratch for reach_action
};

}  // namespace ml3
