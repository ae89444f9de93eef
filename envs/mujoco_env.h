#pragma once
// Shared MuJoCo plumbing for the environments: model loading (embedded asset
// or user file) with precise errors, name lookups that say what a model lacks,
// frame-skip stepping with action validation, exact state get/set, the goal
// marker, and an operational-space controller the scripted experts build on.
#include <mujoco/mujoco.h>

#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "envs/env.h"
#include "envs/mujoco_log.h"

namespace ml3 {

// The MJCF assets compiled into the library, by file name ("reacher.xml").
const std::map<std::string, std::string>& embedded_assets();
// Where an embedded asset comes from in the source tree ("envs/reacher/reacher.xml").
const std::string& embedded_asset_source(const std::string& name);

// Loads an MJCF model: `path` empty -> the embedded asset `builtin`.
// Throws ml3::Error with MuJoCo's message (file, line) on failure. Installs
// ml3's MuJoCo warning/error handlers first (see envs/mujoco_log.h).
mjModel* load_model(const std::string& path, const std::string& builtin);

// Options every environment has (keys of its "env." config section).
Schema common_env_schema(const std::string& builtin_file, int episode_steps, int frame_skip,
                         double success_threshold, double ctrl_cost,
                         const std::string& ctrl_cost_doc = "weight of the control cost |a|^2 in the reward");

// Options of MujocoEnv::reach_action.
struct ReachOptions {
  int dims = 2;                    // 2: track x, y; 3: x, y, z
  const double* align = nullptr;   // if set (a unit 3-vector): also turn the frame's x axis toward it,
  double kr = 0.0;                 //   angular velocity kr * (x axis cross align)
  bool inertia = false;            // torque = M(q) kd (dq - qdot) instead of kd (dq - qdot): for arms
                                   // whose joints carry very different inertias
};

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
  const mjData* data() const { return d_; }

 protected:
  // A tracked point of the model: a site, or the origin of a body.
  struct Point {
    mjtObj type = mjOBJ_SITE;
    int id = -1;
  };

  // Derived classes call this at the end of their constructor with the names
  // of the observation values, in the order observe() writes them.
  void finish_spec(std::vector<std::string> obs_names);
  int require_id(mjtObj type, const char* name, const char* what) const;
  // The site named `name`, else the body of that name (Gymnasium's models
  // mark the fingertip with a body, ours with a site).
  Point require_point(const char* name) const;
  // Sets qpos/qvel for a new episode (d_ was reset to the model defaults).
  virtual void init_state(Rng& rng) = 0;
  virtual double compute_reward(const double* action) const = 0;
  // Radius-style workspace check of a goal; message on failure, "" if fine.
  virtual std::string goal_problem(const double* goal) const = 0;
  // Moves the goal marker (body goal_marker_) to goal_.
  void place_goal_marker();
  // Runs MuJoCo calls; a MuJoCo error becomes an ml3::Error naming the model
  // file, and the episode must be reset (see envs/mujoco_log.h).
  template <class F>
  void simulate(F fn);

  // Operational-space PD toward `target` for point `p`, in the x-y plane
  // (options.dims 2) or in space (3): desired point velocity kp * error (norm
  // capped at vmax), mapped to joint velocities by damped least squares,
  // tracked with gain kd (times the joint-space inertia with
  // options.inertia); writes normalised actions (torque / gear, clipped to the
  // bounds). See ReachOptions for turning the frame as well.
  void reach_action(Point p, const double* target, double kp, double kd, double vmax, double damping,
                    double* action, const ReachOptions& options = {}) const;
  // Operational-space control in 3-D for an arm driven by joint-position
  // servos (<position> actuators on hinge or slide joints), the arm7 tasks'
  // helper beside reach_action (planar, torque outputs). For point `p`: the
  // position error to `target` (times `gain`, norm capped at `max_step`) and,
  // if `xmat` is given (3x3 row-major, columns = desired axes of the site
  // frame; sites only), the orientation error (times `rot_gain`, capped at
  // `max_rot` rad) are mapped to a joint displacement dq by damped least
  // squares on the site/body Jacobian of the joints of actuators [0, n); the
  // null space pulls toward `posture` (n angles) with `posture_gain`. Writes
  // action[i] = servo target q_i + dq_i, plus the offset at which the servo
  // holds the arm against gravity (kp and gear from the model), clipped to
  // the ctrlrange. Refreshes MuJoCo's com-based quantities (mj_comPos) first,
  // so the result depends only on the state (qpos), not on the last step.
  struct ServoReach {
    double gain = 1.0, max_step = 0.04;     // position: fraction of the error per call, cap (m)
    double rot_gain = 1.0, max_rot = 0.4;   // orientation: fraction, cap (rad)
    double damping = 0.05;                  // damped least squares
    double posture_gain = 0.1;              // null-space pull toward posture
    const double* posture = nullptr;        // n joint angles, or none
  };
  void servo_reach_action(Point p, const double* target, const double* xmat, const ServoReach& c, int n,
                          double* action) const;
  // Position of a point (x, y, z).
  const double* pos(Point p) const { return p.type == mjOBJ_SITE ? d_->site_xpos + 3 * p.id : d_->xpos + 3 * p.id; }
  // Orientation of a point's frame (3x3 row-major: its columns are the frame's axes).
  const double* rot(Point p) const { return p.type == mjOBJ_SITE ? d_->site_xmat + 9 * p.id : d_->xmat + 9 * p.id; }

  EnvSpec spec_;
  mjModel* m_ = nullptr;
  mjData* d_ = nullptr;
  std::vector<double> goal_;
  int steps_ = 0;
  double ctrl_cost_ = 0.0;
  mutable std::vector<mjtNum> jac_, jacr_, torque_;  // scratch for reach_action
  // The body that shows the goal; derived classes may rename it before
  // finish_spec() (Gymnasium's pusher.xml calls it "goal").
  std::string goal_marker_ = "target";

 private:
  // The goal marker, body goal_marker_: a mocap body (all goal coordinates),
  // or for 2-D goals a body on two slide joints along x and y (Gymnasium's
  // reacher.xml) whose qpos place it and whose qvel are held at 0.
  void find_goal_marker();
  void hold_goal_joints();
  int goal_mocap_ = -1;
  int goal_qpos_[2] = {-1, -1}, goal_dof_[2] = {-1, -1};
  double goal_qpos_offset_[2] = {0.0, 0.0};  // joint qpos = goal + offset
  bool needs_reset_ = false;  // a MuJoCo error interrupted the episode
};

template <class F>
void MujocoEnv::simulate(F fn) {
  try {
    mujoco_call(spec_.model_file, fn);
  } catch (const Error&) {
    mj_resetData(m_, d_);  // the interrupted call left d_ mid-step
    needs_reset_ = true;
    throw;
  }
}

}  // namespace ml3
