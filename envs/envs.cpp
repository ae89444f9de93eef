// The environment suite (pointmass, reacher, pusher) and the registry.
// One file keeps each environment's observation, reward, reset distribution,
// goal regions and scripted expert side by side.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "envs/mujoco_env.h"

namespace ml3 {
namespace {

constexpr double kPi = 3.14159265358979323846;

double dist2d(const double* a, const double* b) { return std::hypot(a[0] - b[0], a[1] - b[1]); }

double sq_norm(const double* a, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += a[i] * a[i];
  return s;
}

// In-distribution goals (train and test splits) come from a sector; the ood
// split holds the complementary wedge, never seen in training.
GoalRegion sector(double cx, double cy, double r_min, double r_max, bool ood) {
  GoalRegion g;
  g.center[0] = cx, g.center[1] = cy;
  g.r_min = r_min, g.r_max = r_max;
  g.theta_min = ood ? 0.75 * kPi : -0.75 * kPi;
  g.theta_max = ood ? 1.25 * kPi : 0.75 * kPi;
  return g;
}

// ---- pointmass ---------------------------------------------------------------
// obs = [pos(2), vel(2), goal(2), goal - pos(2)]; reward = -|pos - goal| - c|a|^2.
class PointMass : public MujocoEnv {
 public:
  static Schema schema() { return common_env_schema("pointmass.xml", 50, 2, 0.1, 0.01); }
  explicit PointMass(const Config& o) : MujocoEnv("pointmass", o, "pointmass.xml") {
    tip_ = require_id(mjOBJ_SITE, "tip", "site");
    jx_ = m_->jnt_qposadr[require_id(mjOBJ_JOINT, "slide_x", "slide joint")];
    jy_ = m_->jnt_qposadr[require_id(mjOBJ_JOINT, "slide_y", "slide joint")];
    if (m_->nu != 2) throw Error(spec_.model_file + ": pointmass needs 2 actuators, the model has " + std::to_string(m_->nu));
    spec_.distance_meaning = "point mass to goal";
    finish_spec(8);
    const int jx = require_id(mjOBJ_JOINT, "slide_x", "slide joint");
    const int jy = require_id(mjOBJ_JOINT, "slide_y", "slide joint");
    limit_ = std::min(m_->jnt_range[2 * jx + 1], m_->jnt_range[2 * jy + 1]);
  }
  void observe(double* o) const override {
    const double* p = site_pos(tip_);
    o[0] = p[0], o[1] = p[1];
    o[2] = d_->qvel[jx_], o[3] = d_->qvel[jy_];
    o[4] = goal_[0], o[5] = goal_[1];
    o[6] = goal_[0] - p[0], o[7] = goal_[1] - p[1];
  }
  double distance() const override { return dist2d(site_pos(tip_), goal_.data()); }
  void expert_action(double* a) const override {
    const double* p = site_pos(tip_);
    const double gear = m_->actuator_gear[0];
    for (int i = 0; i < 2; ++i) {
      const double force = 30.0 * (goal_[i] - p[i]) - 8.0 * d_->qvel[i == 0 ? jx_ : jy_];
      a[i] = std::clamp(force / gear, spec_.act_low[i], spec_.act_high[i]);
    }
  }
  GoalRegion goal_region(Split s) const override {
    return s == Split::Ood ? sector(0, 0, 0.3, 1.0, true) : sector(0, 0, 0.1, 1.0, false);
  }

 protected:
  void init_state(Rng& rng) override {
    d_->qpos[jx_] = rng.uniform(-0.05, 0.05);
    d_->qpos[jy_] = rng.uniform(-0.05, 0.05);
  }
  double compute_reward(const double* a) const override { return -distance() - ctrl_cost_ * sq_norm(a, 2); }
  std::string goal_problem(const double* g) const override {
    if (std::abs(g[0]) > limit_ || std::abs(g[1]) > limit_)
      return "pointmass goals must lie within the slide range |x|, |y| <= " + std::to_string(limit_);
    return "";
  }

 private:
  int tip_, jx_, jy_;
  double limit_;
};

// ---- reacher -----------------------------------------------------------------
// As Gymnasium Reacher-v5, except: obs drops the always-zero z of
// (fingertip - target) -> 10 values [cos q(2), sin q(2), goal(2), qvel(2),
// fingertip - goal (2)]; the goal is a mocap body; goals come from split
// regions (train/test: the annulus 0.02 < r < 0.2 minus a 90-degree wedge
// around -x, ood: that wedge). Gymnasium's disc includes goals closer than
// 0.01 m to the base, which the arm cannot reach.
class Reacher : public MujocoEnv {
 public:
  static Schema schema() { return common_env_schema("reacher.xml", 50, 2, 0.02, 1.0); }
  explicit Reacher(const Config& o) : MujocoEnv("reacher", o, "reacher.xml") {
    tip_ = require_id(mjOBJ_SITE, "fingertip", "site");
    j0_ = require_id(mjOBJ_JOINT, "joint0", "hinge joint");
    j1_ = require_id(mjOBJ_JOINT, "joint1", "hinge joint");
    if (m_->nu != 2) throw Error(spec_.model_file + ": reacher needs 2 actuators, the model has " + std::to_string(m_->nu));
    spec_.distance_meaning = "fingertip to goal";
    finish_spec(10);
    // Reach of the arm from the model itself (so modified link lengths work).
    const int b1 = require_id(mjOBJ_BODY, "body1", "body");
    mj_forward(m_, d_);
    const double* base = d_->xpos + 3 * require_id(mjOBJ_BODY, "body0", "body");
    l1_ = std::hypot(d_->xpos[3 * b1] - base[0], d_->xpos[3 * b1 + 1] - base[1]);
    l2_ = dist2d(d_->xpos + 3 * b1, site_pos(tip_));
  }
  void observe(double* o) const override {
    const double q0 = d_->qpos[m_->jnt_qposadr[j0_]], q1 = d_->qpos[m_->jnt_qposadr[j1_]];
    o[0] = std::cos(q0), o[1] = std::cos(q1), o[2] = std::sin(q0), o[3] = std::sin(q1);
    o[4] = goal_[0], o[5] = goal_[1];
    o[6] = d_->qvel[m_->jnt_dofadr[j0_]], o[7] = d_->qvel[m_->jnt_dofadr[j1_]];
    const double* p = site_pos(tip_);
    o[8] = p[0] - goal_[0], o[9] = p[1] - goal_[1];
  }
  double distance() const override { return dist2d(site_pos(tip_), goal_.data()); }
  void expert_action(double* a) const override { reach_action(tip_, goal_.data(), 12.0, 60.0, 1.5, 0.02, a); }
  GoalRegion goal_region(Split s) const override {
    return s == Split::Ood ? sector(0, 0, 0.05, 0.2, true) : sector(0, 0, 0.02, 0.2, false);
  }

 protected:
  void init_state(Rng& rng) override {
    for (int i = 0; i < m_->nq; ++i) d_->qpos[i] = rng.uniform(-0.1, 0.1);
    for (int i = 0; i < m_->nv; ++i) d_->qvel[i] = rng.uniform(-0.005, 0.005);
  }
  double compute_reward(const double* a) const override { return -distance() - ctrl_cost_ * sq_norm(a, 2); }
  std::string goal_problem(const double* g) const override {
    const double r = std::hypot(g[0], g[1]);
    if (r > l1_ + l2_ || r < std::abs(l1_ - l2_))
      return "the arm reaches distances in [" + std::to_string(std::abs(l1_ - l2_)) + ", " +
             std::to_string(l1_ + l2_) + "] from its base, the goal is at " + std::to_string(r);
    return "";
  }

 private:
  int tip_, j0_, j1_;
  double l1_ = 0, l2_ = 0;
};

// ---- pusher ------------------------------------------------------------------
// In the spirit of Gymnasium Pusher, reduced to a planar 3-link arm with a free
// puck (Gymnasium: 7-DoF arm in 3-D). reward = -|obj - goal| - c|a|^2
// - tip_cost |obj - tip|. obs = [cos q(3), sin q(3), qvel(3), tip(2), obj(2),
// obj vel(2), goal(2), obj - tip(2), goal - obj(2)] = 21 values.
class Pusher : public MujocoEnv {
 public:
  static Schema schema() {
    Schema s = common_env_schema("pusher.xml", 100, 10, 0.05, 0.1);
    s.add_double("tip_cost", 0.5, "weight of the fingertip-to-object distance in the reward", 0.0);
    return s;
  }
  explicit Pusher(const Config& o) : MujocoEnv("pusher", o, "pusher.xml") {
    tip_cost_ = o.get_double("tip_cost");
    tip_ = require_id(mjOBJ_SITE, "fingertip", "site");
    obj_site_ = require_id(mjOBJ_SITE, "object", "site");
    const int obj_joint = require_id(mjOBJ_JOINT, "object", "free joint");
    if (m_->jnt_type[obj_joint] != mjJNT_FREE)
      throw Error(spec_.model_file + ": joint 'object' must be a free joint");
    obj_q_ = m_->jnt_qposadr[obj_joint];
    obj_v_ = m_->jnt_dofadr[obj_joint];
    obj_geom_ = require_id(mjOBJ_GEOM, "object", "geom");
    tip_geom_ = require_id(mjOBJ_GEOM, "fingertip", "geom");
    const char* names[3] = {"shoulder", "elbow", "wrist"};
    for (int i = 0; i < 3; ++i) joints_[i] = require_id(mjOBJ_JOINT, names[i], "hinge joint");
    if (m_->nu != 3) throw Error(spec_.model_file + ": pusher needs 3 actuators, the model has " + std::to_string(m_->nu));
    spec_.distance_meaning = "object to goal";
    finish_spec(21);
    mj_forward(m_, d_);
    obj_home_[0] = d_->qpos[obj_q_], obj_home_[1] = d_->qpos[obj_q_ + 1];
    // Arm reach from the model itself (so modified link lengths work).
    const double* p0 = d_->xpos + 3 * require_id(mjOBJ_BODY, "link0", "body");
    const double* p1 = d_->xpos + 3 * require_id(mjOBJ_BODY, "link1", "body");
    const double* p2 = d_->xpos + 3 * require_id(mjOBJ_BODY, "link2", "body");
    reach_ = dist2d(p0, p1) + dist2d(p1, p2) + dist2d(p2, site_pos(tip_));
  }
  void observe(double* o) const override {
    for (int i = 0; i < 3; ++i) {
      const double q = d_->qpos[m_->jnt_qposadr[joints_[i]]];
      o[i] = std::cos(q), o[3 + i] = std::sin(q);
      o[6 + i] = d_->qvel[m_->jnt_dofadr[joints_[i]]];
    }
    const double* t = site_pos(tip_);
    const double* ob = site_pos(obj_site_);
    o[9] = t[0], o[10] = t[1];
    o[11] = ob[0], o[12] = ob[1];
    o[13] = d_->qvel[obj_v_], o[14] = d_->qvel[obj_v_ + 1];
    o[15] = goal_[0], o[16] = goal_[1];
    o[17] = ob[0] - t[0], o[18] = ob[1] - t[1];
    o[19] = goal_[0] - ob[0], o[20] = goal_[1] - ob[1];
  }
  double distance() const override { return dist2d(site_pos(obj_site_), goal_.data()); }
  void expert_action(double* a) const override;
  GoalRegion goal_region(Split s) const override {
    return s == Split::Ood ? sector(obj_home_[0], obj_home_[1], 0.08, 0.15, true)
                           : sector(obj_home_[0], obj_home_[1], 0.08, 0.15, false);
  }

 protected:
  void init_state(Rng& rng) override {
    const double home[3] = {-1.2, 1.9, 1.2};
    for (int i = 0; i < 3; ++i) d_->qpos[m_->jnt_qposadr[joints_[i]]] = home[i] + rng.uniform(-0.1, 0.1);
    d_->qpos[obj_q_] = obj_home_[0] + rng.uniform(-0.02, 0.02);
    d_->qpos[obj_q_ + 1] = obj_home_[1] + rng.uniform(-0.02, 0.02);
  }
  double compute_reward(const double* a) const override {
    return -distance() - ctrl_cost_ * sq_norm(a, 3) - tip_cost_ * dist2d(site_pos(obj_site_), site_pos(tip_));
  }
  std::string goal_problem(const double* g) const override {
    const double table = m_->geom_size[3 * 0];
    const double r = std::hypot(g[0], g[1]);
    if (std::abs(g[0]) > table || std::abs(g[1]) > table)
      return "pusher goals must lie on the table (|x|, |y| <= " + std::to_string(table) + ")";
    if (r > reach_ - 0.05)
      return "the puck can be pushed to at most " + std::to_string(reach_ - 0.05) +
             " m from the arm base, the goal is at " + std::to_string(r);
    return "";
  }

 private:
  double tip_cost_;
  int tip_, obj_site_, obj_q_, obj_v_, obj_geom_, tip_geom_, joints_[3];
  double obj_home_[2];
  double reach_ = 0;
};

// Approach-and-push, a pure function of the state: go to the point behind the
// puck on the goal line (around the puck if the fingertip is on the wrong
// side), then push along the line while correcting the lateral offset.
void Pusher::expert_action(double* a) const {
  const double* t = site_pos(tip_);
  const double* o = site_pos(obj_site_);
  double u[2] = {goal_[0] - o[0], goal_[1] - o[1]};
  const double gap = std::hypot(u[0], u[1]);
  double target[2];
  const double contact = m_->geom_size[3 * obj_geom_] + m_->geom_size[3 * tip_geom_];
  if (gap < 1e-6) {
    target[0] = t[0], target[1] = t[1];
  } else {
    u[0] /= gap, u[1] /= gap;
    const double n[2] = {-u[1], u[0]};
    const double rel[2] = {t[0] - o[0], t[1] - o[1]};
    const double along = rel[0] * u[0] + rel[1] * u[1];
    const double lateral = rel[0] * n[0] + rel[1] * n[1];
    const double stand = contact + 0.015;
    if (along < -0.6 * contact && std::abs(lateral) < 0.012) {
      // Behind the puck and aligned: push through, aiming a little past the goal.
      const double push = std::min(gap, 0.05) + contact;
      target[0] = o[0] + u[0] * (push - contact) - n[0] * lateral * 2.0;
      target[1] = o[1] + u[1] * (push - contact) - n[1] * lateral * 2.0;
    } else if (along > -contact * 0.9 && std::abs(lateral) < stand + 0.01) {
      // Beside or in front of the puck: go around on the near side.
      const double side = lateral >= 0 ? 1.0 : -1.0;
      target[0] = o[0] - u[0] * stand + n[0] * side * (stand + 0.02);
      target[1] = o[1] - u[1] * stand + n[1] * side * (stand + 0.02);
    } else {
      target[0] = o[0] - u[0] * stand;
      target[1] = o[1] - u[1] * stand;
    }
  }
  reach_action(tip_, target, 10.0, 1.0, 0.5, 0.05, a);
}

template <class E>
std::unique_ptr<Env> make(const Config& o) {
  return std::make_unique<E>(o);
}

}  // namespace

const std::vector<EnvEntry>& env_registry() {
  static const std::vector<EnvEntry> registry = {
      {"pointmass", "2-D point mass (slide joints, force actuators) moving to a goal", PointMass::schema(),
       &make<PointMass>},
      {"reacher", "2-link planar arm reaching a goal (Gymnasium Reacher-like)", Reacher::schema(),
       &make<Reacher>},
      {"pusher", "3-link planar arm pushing a free puck to a goal on a table", Pusher::schema(),
       &make<Pusher>},
  };
  return registry;
}

const EnvEntry& find_env(const std::string& name) {
  std::string names;
  for (const auto& e : env_registry()) {
    if (e.name == name) return e;
    names += (names.empty() ? "" : ", ") + e.name;
  }
  throw Error("unknown environment '" + name + "' (registered: " + names + ")");
}

std::unique_ptr<Env> make_env(const std::string& name, const Config& options) {
  return find_env(name).make(options);
}

std::unique_ptr<Env> make_env(const std::string& name, const std::vector<std::string>& overrides) {
  Config c(find_env(name).schema);
  c.apply_overrides(overrides);
  return make_env(name, c);
}

}  // namespace ml3
