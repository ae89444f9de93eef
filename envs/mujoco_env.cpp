#include "envs/mujoco_env.h"

#include <fmt/format.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace ml3 {

mjModel* load_model(const std::string& path, const std::string& builtin) {
  install_mujoco_handlers();
  char error[1024] = "";
  mjModel* m = nullptr;
  if (path.empty()) {
    const auto& assets = embedded_assets();
    auto it = assets.find(builtin);
    if (it == assets.end()) throw Error(fmt::format("internal: no embedded model '{}'", builtin));
    // Every embedded asset goes into the virtual file system, so that a model
    // may <include> another by file name (the arm7 tasks include arm7.xml).
    mjVFS vfs;
    mj_defaultVFS(&vfs);
    for (const auto& [name, text] : assets) {
      const int size = static_cast<int>(text.size());
      if (mj_makeEmptyFileVFS(&vfs, name.c_str(), size) != 0) {
        mj_deleteVFS(&vfs);
        throw Error(fmt::format("internal: cannot create VFS file for '{}'", name));
      }
      std::memcpy(vfs.filedata[vfs.nfile - 1], text.data(), size);
    }
    m = mj_loadXML(builtin.c_str(), &vfs, error, sizeof(error));
    mj_deleteVFS(&vfs);
    if (!m) throw Error(fmt::format("embedded model {}: {}", builtin, mujoco_one_line(error)));
  } else {
    std::ifstream probe(path);
    if (!probe) throw Error(path + ": cannot open MJCF model file");
    m = mj_loadXML(path.c_str(), nullptr, error, sizeof(error));
    if (!m) throw Error(fmt::format("{}: MuJoCo could not load the model: {}", path, mujoco_one_line(error)));
  }
  return m;
}

Schema common_env_schema(const std::string& builtin_file, int episode_steps, int frame_skip,
                         double success_threshold, double ctrl_cost,
                         const std::string& ctrl_cost_doc) {
  Schema s;
  s.add_string("model", "",
               fmt::format("MJCF file to load instead of the built-in {} (e.g. other link lengths or masses)",
                           embedded_asset_source(builtin_file)));
  s.add_int("episode_steps", episode_steps, "time limit: steps per episode (truncation)", 1, 100000);
  s.add_int("frame_skip", frame_skip, "MuJoCo steps per environment step", 1, 1000);
  s.add_double("timestep", 0.0, "MuJoCo timestep in seconds; 0 keeps the model's own", 0.0, 1.0);
  s.add_double("success_threshold", success_threshold,
               "an episode succeeds when the final distance is below this (m)", 0.0, 10.0, true);
  s.add_double("ctrl_cost", ctrl_cost, ctrl_cost_doc, 0.0);
  return s;
}

MujocoEnv::MujocoEnv(const std::string& name, const Config& options, const std::string& builtin_file) {
  const std::string& path = options.get_string("model");
  spec_.name = name;
  spec_.model_file = path.empty() ? embedded_asset_source(builtin_file) + " (built in)" : path;
  m_ = load_model(path, builtin_file);
  const double timestep = options.get_double("timestep");
  if (timestep > 0) m_->opt.timestep = timestep;
  try {
    mujoco_call(spec_.model_file, [this] { d_ = mj_makeData(m_); });
  } catch (...) {
    mj_deleteModel(m_);  // the destructor does not run for a throwing constructor
    throw;
  }
  spec_.episode_steps = static_cast<int>(options.get_int("episode_steps"));
  spec_.frame_skip = static_cast<int>(options.get_int("frame_skip"));
  spec_.timestep = m_->opt.timestep;
  spec_.success_threshold = options.get_double("success_threshold");
  ctrl_cost_ = options.get_double("ctrl_cost");
  jac_.resize(3 * m_->nv);
  jacr_.resize(3 * m_->nv);
}

MujocoEnv::~MujocoEnv() {
  if (d_) mj_deleteData(d_);
  if (m_) mj_deleteModel(m_);
}

int MujocoEnv::require_id(mjtObj type, const char* name, const char* what) const {
  const int id = mj_name2id(m_, type, name);
  if (id < 0)
    throw Error(fmt::format("{}: the {} environment needs a {} named '{}', and the model has none", spec_.model_file,
                            spec_.name, what, name));
  return id;
}

MujocoEnv::Point MujocoEnv::require_point(const char* name) const {
  if (const int site = mj_name2id(m_, mjOBJ_SITE, name); site >= 0) return {mjOBJ_SITE, site};
  if (const int body = mj_name2id(m_, mjOBJ_BODY, name); body >= 0) return {mjOBJ_BODY, body};
  throw Error(fmt::format("{}: the {} environment needs a site or a body named '{}', and the model has neither",
                          spec_.model_file, spec_.name, name));
}

void MujocoEnv::finish_spec(std::vector<std::string> obs_names) {
  spec_.obs_dim = static_cast<int>(obs_names.size());
  spec_.obs_names = std::move(obs_names);
  spec_.act_dim = m_->nu;
  spec_.act_low.resize(m_->nu);
  spec_.act_high.resize(m_->nu);
  for (int i = 0; i < m_->nu; ++i) {
    const bool limited = m_->actuator_ctrllimited[i];
    spec_.act_low[i] = limited ? m_->actuator_ctrlrange[2 * i] : -1.0;
    spec_.act_high[i] = limited ? m_->actuator_ctrlrange[2 * i + 1] : 1.0;
  }
  find_goal_marker();
  goal_.assign(spec_.goal_dim, 0.0);
}

void MujocoEnv::find_goal_marker() {
  const int target = require_id(mjOBJ_BODY, goal_marker_.c_str(), "body");
  goal_mocap_ = m_->body_mocapid[target];
  if (goal_mocap_ >= 0) return;
  // A body on two slide joints: find the joints moving it along world x and y.
  const std::string expected =
      spec_.goal_dim == 3
          ? fmt::format("{}: body '{}' must be a mocap body (mocap=\"true\"): the {} environment's goals are 3-D",
                        spec_.model_file, goal_marker_, spec_.name)
          : fmt::format(
                "{}: body '{}' must be a mocap body (mocap=\"true\") or carry two slide joints along x and y "
                "(as Gymnasium's reacher.xml)",
                spec_.model_file, goal_marker_);
  if (spec_.goal_dim == 3) throw Error(expected);
  if (m_->body_jntnum[target] != 2) throw Error(expected);
  simulate([this] { mj_kinematics(m_, d_); });  // world axes and rest position at qpos0
  for (int k = 0; k < 2; ++k) {
    const int j = m_->body_jntadr[target] + k;
    if (m_->jnt_type[j] != mjJNT_SLIDE) throw Error(expected);
    const double* axis = d_->xaxis + 3 * j;
    for (int c = 0; c < 2; ++c) {
      if (std::abs(axis[c] - 1.0) > 1e-9 || std::abs(axis[1 - c]) > 1e-9 || std::abs(axis[2]) > 1e-9) continue;
      if (goal_qpos_[c] >= 0) throw Error(expected);
      goal_qpos_[c] = m_->jnt_qposadr[j];
      goal_dof_[c] = m_->jnt_dofadr[j];
      goal_qpos_offset_[c] = m_->qpos0[goal_qpos_[c]] - d_->xpos[3 * target + c];
    }
  }
  if (goal_qpos_[0] < 0 || goal_qpos_[1] < 0) throw Error(expected);
}

void MujocoEnv::place_goal_marker() {
  if (goal_mocap_ >= 0) {
    for (int c = 0; c < spec_.goal_dim; ++c) d_->mocap_pos[3 * goal_mocap_ + c] = goal_[c];
    return;
  }
  for (int c = 0; c < 2; ++c) d_->qpos[goal_qpos_[c]] = goal_[c] + goal_qpos_offset_[c];
  hold_goal_joints();
}

void MujocoEnv::hold_goal_joints() {
  if (goal_mocap_ < 0)
    for (int c = 0; c < 2; ++c) d_->qvel[goal_dof_[c]] = 0.0;
}

void MujocoEnv::check_task(const Task& task) const {
  if (static_cast<int>(task.goal.size()) != spec_.goal_dim)
    throw Error(fmt::format("{}: a goal has {} coordinates, got {}", spec_.name, spec_.goal_dim, task.goal.size()));
  for (double g : task.goal)
    if (!std::isfinite(g)) throw Error(spec_.name + ": goal coordinates must be finite");
  const std::string problem = goal_problem(task.goal.data());
  if (!problem.empty()) throw Error(fmt::format("{}: goal outside the workspace: {}", spec_.name, problem));
}

void MujocoEnv::reset(uint64_t seed, const Task& task, double* obs) {
  check_task(task);
  mj_resetData(m_, d_);
  goal_ = task.goal;
  place_goal_marker();
  Rng rng(seed);
  init_state(rng);
  simulate([this] { mj_forward(m_, d_); });
  steps_ = 0;
  needs_reset_ = false;
  observe(obs);
}

void MujocoEnv::step(const double* action, double* obs, double* reward, bool* terminated,
                     bool* truncated, StepInfo* info) {
  if (needs_reset_)
    throw Error(spec_.name + ": step() called after a MuJoCo error ended the episode; call reset() first");
  if (steps_ >= spec_.episode_steps)
    throw Error(spec_.name + ": step() called after the episode was truncated; call reset() first");
  const int nu = m_->nu;
  double clipped[16];
  double* a = nu <= 16 ? clipped : d_->ctrl;
  for (int i = 0; i < nu; ++i) {
    if (!std::isfinite(action[i])) throw Error(fmt::format("{}: action[{}] is not finite", spec_.name, i));
    a[i] = std::min(spec_.act_high[i], std::max(spec_.act_low[i], action[i]));
  }
  if (a != d_->ctrl) std::memcpy(d_->ctrl, a, sizeof(double) * nu);
  const int bad_before = d_->warning[mjWARN_BADQACC].number;
  simulate([this] {
    for (int k = 0; k < spec_.frame_skip; ++k) {
      mj_step(m_, d_);
      hold_goal_joints();
    }
  });
  if (d_->warning[mjWARN_BADQACC].number != bad_before) {
    needs_reset_ = true;
    throw Error(fmt::format(
        "{}: the simulation became unstable (MuJoCo reported a bad acceleration) at t={:.6f}; check the "
        "timestep and masses of {}",
        spec_.name, d_->time, spec_.model_file));
  }
  simulate([this] { mj_kinematics(m_, d_); });  // positions after the last integration, for obs/reward
  ++steps_;
  *reward = compute_reward(d_->ctrl);
  *terminated = false;
  *truncated = steps_ >= spec_.episode_steps;
  info->distance = distance();
  info->success = info->distance < spec_.success_threshold;
  observe(obs);
}

EnvState MujocoEnv::get_state() const {
  EnvState s;
  s.qpos.assign(d_->qpos, d_->qpos + m_->nq);
  s.qvel.assign(d_->qvel, d_->qvel + m_->nv);
  s.act.assign(d_->act, d_->act + m_->na);
  s.qacc_warmstart.assign(d_->qacc_warmstart, d_->qacc_warmstart + m_->nv);
  s.goal = goal_;
  s.time = d_->time;
  s.step = steps_;
  return s;
}

void MujocoEnv::set_state(const EnvState& s) {
  if (static_cast<int>(s.qpos.size()) != m_->nq || static_cast<int>(s.qvel.size()) != m_->nv ||
      static_cast<int>(s.act.size()) != m_->na || static_cast<int>(s.qacc_warmstart.size()) != m_->nv ||
      static_cast<int>(s.goal.size()) != spec_.goal_dim)
    throw Error(fmt::format("{}: set_state() got a state of the wrong size (nq {}, nv {})", spec_.name, m_->nq,
                            m_->nv));
  if (s.step < 0 || s.step > spec_.episode_steps) throw Error(spec_.name + ": set_state(): step out of range");
  std::copy(s.qpos.begin(), s.qpos.end(), d_->qpos);
  std::copy(s.qvel.begin(), s.qvel.end(), d_->qvel);
  std::copy(s.act.begin(), s.act.end(), d_->act);
  std::copy(s.qacc_warmstart.begin(), s.qacc_warmstart.end(), d_->qacc_warmstart);
  goal_ = s.goal;
  place_goal_marker();
  d_->time = s.time;
  steps_ = s.step;
  simulate([this] { mj_kinematics(m_, d_); });
  needs_reset_ = false;
}

namespace {
// The Jacobian of a site or body restricted to the dofs of the joints that
// actuators [0, n) drive: position rows [0, pos_rows), then with `rot` the 3
// rotation rows. jacp and jacr are 3 x nv scratch.
Eigen::MatrixXd actuated_jacobian(const mjModel* m, const mjData* d, mjtObj type, int id, int pos_rows, bool rot,
                                  int n, mjtNum* jacp, mjtNum* jacr) {
  if (type == mjOBJ_SITE)
    mj_jacSite(m, d, jacp, jacr, id);
  else
    mj_jacBody(m, d, jacp, jacr, id);
  Eigen::MatrixXd J(pos_rows + (rot ? 3 : 0), n);
  for (int i = 0; i < n; ++i) {
    const int dof = m->jnt_dofadr[m->actuator_trnid[2 * i]];
    for (int k = 0; k < pos_rows; ++k) J(k, i) = jacp[k * m->nv + dof];
    if (rot)
      for (int k = 0; k < 3; ++k) J(pos_rows + k, i) = jacr[k * m->nv + dof];
  }
  return J;
}
}  // namespace

void MujocoEnv::reach_action(Point p, const double* target, double kp, double kd, double vmax, double damping,
                             double* action, const ReachOptions& options) const {
  const int dims = options.dims;
  const int nv = m_->nv;
  const double* x = pos(p);
  const int rows = dims + (options.align ? 3 : 0);
  Eigen::VectorXd v(rows);
  for (int c = 0; c < dims; ++c) v(c) = kp * (target[c] - x[c]);
  if (v.head(dims).norm() > vmax) v.head(dims) *= vmax / v.head(dims).norm();
  if (options.align) {
    // The frame's x axis is the first column of its rotation matrix.
    const double* R = rot(p);
    const double ax[3] = {R[0], R[3], R[6]};
    const double* u = options.align;
    v(dims + 0) = options.kr * (ax[1] * u[2] - ax[2] * u[1]);
    v(dims + 1) = options.kr * (ax[2] * u[0] - ax[0] * u[2]);
    v(dims + 2) = options.kr * (ax[0] * u[1] - ax[1] * u[0]);
  }
  // Only the arm's own dofs are actuated: take the Jacobian columns of the
  // joints the actuators drive.
  const int nu = m_->nu;
  const Eigen::MatrixXd J =
      actuated_jacobian(m_, d_, p.type, p.id, dims, options.align != nullptr, nu, jac_.data(), jacr_.data());
  Eigen::VectorXd qdot(nu);
  for (int i = 0; i < nu; ++i) qdot(i) = d_->qvel[m_->jnt_dofadr[m_->actuator_trnid[2 * i]]];
  const Eigen::MatrixXd JJt = J * J.transpose() + damping * damping * Eigen::MatrixXd::Identity(rows, rows);
  const Eigen::VectorXd dq = J.transpose() * JJt.ldlt().solve(v);
  std::vector<mjtNum>& torque = torque_;
  torque.assign(nv, 0.0);
  for (int i = 0; i < nu; ++i) torque[m_->jnt_dofadr[m_->actuator_trnid[2 * i]]] = kd * (dq(i) - qdot(i));
  if (options.inertia) {
    // M(q) from the current positions (a pure function of the state: nothing
    // left over from an earlier step is used).
    mj_comPos(m_, d_);
    mj_crb(m_, d_);
    std::vector<mjtNum> accel = torque;
    mj_mulM(m_, d_, torque.data(), accel.data());
  }
  for (int i = 0; i < nu; ++i) {
    const double a = torque[m_->jnt_dofadr[m_->actuator_trnid[2 * i]]] / m_->actuator_gear[6 * i];
    action[i] = std::min(spec_.act_high[i], std::max(spec_.act_low[i], a));
  }
}

void MujocoEnv::servo_reach_action(Point p, const double* target, const double* xmat, const ServoReach& c, int n,
                                   double* action) const {
  mj_comPos(m_, d_);  // cdof, subtree_com: what the Jacobian and the gravity offsets use
  const int rows = xmat ? 6 : 3;
  Eigen::VectorXd err(rows);
  const double* x = pos(p);
  Eigen::Vector3d ep(target[0] - x[0], target[1] - x[1], target[2] - x[2]);
  ep *= c.gain;
  if (ep.norm() > c.max_step) ep *= c.max_step / ep.norm();
  err.head<3>() = ep;
  if (xmat) {
    // Rotation error: 1/2 sum_i current axis i x desired axis i (world frame).
    const double* r = rot(p);
    Eigen::Vector3d er = Eigen::Vector3d::Zero();
    for (int i = 0; i < 3; ++i) {
      const Eigen::Vector3d cur(r[i], r[3 + i], r[6 + i]), des(xmat[i], xmat[3 + i], xmat[6 + i]);
      er += 0.5 * cur.cross(des);
    }
    er *= c.rot_gain;
    if (er.norm() > c.max_rot) er *= c.max_rot / er.norm();
    err.tail<3>() = er;
  }
  const Eigen::MatrixXd J = actuated_jacobian(m_, d_, p.type, p.id, 3, xmat != nullptr, n, jac_.data(), jacr_.data());
  const Eigen::MatrixXd JJt = J * J.transpose() + c.damping * c.damping * Eigen::MatrixXd::Identity(rows, rows);
  const Eigen::MatrixXd pinv = J.transpose() * JJt.ldlt().solve(Eigen::MatrixXd::Identity(rows, rows));
  Eigen::VectorXd dq = pinv * err;
  if (c.posture) {
    Eigen::VectorXd pull(n);
    for (int i = 0; i < n; ++i)
      pull(i) = c.posture_gain * (c.posture[i] - d_->qpos[m_->jnt_qposadr[m_->actuator_trnid[2 * i]]]);
    dq += pull - pinv * (J * pull);
  }
  for (int i = 0; i < n; ++i) {
    const int j = m_->actuator_trnid[2 * i];
    const double q = d_->qpos[m_->jnt_qposadr[j]];
    // Gravity's generalized force on this joint: the weight of the subtree
    // below the joint's body, at the subtree's centre of mass.
    const int b = m_->jnt_bodyid[j];
    const double* axis = d_->xaxis + 3 * j;
    const double* g = m_->opt.gravity;
    const double mass = m_->body_subtreemass[b];
    double grav;
    if (m_->jnt_type[j] == mjJNT_HINGE) {
      const double* com = d_->subtree_com + 3 * b;
      const double* anchor = d_->xanchor + 3 * j;
      const Eigen::Vector3d arm(com[0] - anchor[0], com[1] - anchor[1], com[2] - anchor[2]);
      grav = Eigen::Vector3d(axis[0], axis[1], axis[2]).dot(arm.cross(mass * Eigen::Vector3d(g[0], g[1], g[2])));
    } else {
      grav = mass * (axis[0] * g[0] + axis[1] * g[1] + axis[2] * g[2]);
    }
    // Position servo: force = kp (ctrl - gear q), joint force = gear force.
    const double gear = m_->actuator_gear[6 * i], kp = m_->actuator_gainprm[mjNGAIN * i];
    const double a = gear * (q + dq(i)) - grav / (gear * kp);
    action[i] = std::min(spec_.act_high[i], std::max(spec_.act_low[i], a));
  }
}

// ---- Env helpers ------------------------------------------------------------
std::vector<double> Env::reset(uint64_t seed, const Task& task) {
  std::vector<double> obs(spec().obs_dim);
  reset(seed, task, obs.data());
  return obs;
}

StepResult Env::step(const std::vector<double>& action) {
  if (static_cast<int>(action.size()) != spec().act_dim)
    throw Error(fmt::format("{}: action has {} values, expected {}", spec().name, action.size(), spec().act_dim));
  StepResult r;
  r.obs.resize(spec().obs_dim);
  step(action.data(), r.obs.data(), &r.reward, &r.terminated, &r.truncated, &r.info);
  return r;
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "test") return Split::Test;
  if (name == "ood") return Split::Ood;
  throw Error("unknown split '" + name + "' (expected train, test or ood)");
}

const char* split_name(Split split) {
  switch (split) {
    case Split::Train: return "train";
    case Split::Test: return "test";
    case Split::Ood: return "ood";
  }
  return "?";
}

std::vector<Task> sample_tasks(const Env& env, Split split, uint64_t seed, int n) {
  const GoalRegion r = env.goal_region(split);
  const uint64_t stream = mix_seed(seed, 1000 + static_cast<uint64_t>(split));
  std::vector<Task> tasks(n);
  for (int i = 0; i < n; ++i) {
    Rng rng(mix_seed(stream, static_cast<uint64_t>(i)));
    // Uniform over the area of the annulus sector.
    const double rad = std::sqrt(rng.uniform(r.r_min * r.r_min, r.r_max * r.r_max));
    const double th = rng.uniform(r.theta_min, r.theta_max);
    tasks[i].goal = {r.center[0] + rad * std::cos(th), r.center[1] + rad * std::sin(th)};
    if (env.spec().goal_dim == 3) tasks[i].goal.push_back(rng.uniform(r.z_min, r.z_max));
  }
  return tasks;
}

}  // namespace ml3
