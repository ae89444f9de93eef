#include "envs/arm7_push/arm7_push.h"

#include "envs/arm7/arm7.h"
#include "envs/env_util.h"

namespace ml3 {
namespace {

class Arm7Push : public Arm7Env {
 public:
  static Schema schema() { return arm7_schema("arm7_push.xml", 0.05); }

  explicit Arm7Push(const Config& o) : Arm7Env("arm7_push", o, "arm7_push.xml") {
    find_block();
    spec_.distance_meaning = "block to goal";
    finish_arm7();
  }

  GoalRegion goal_region(Split s) const override {
    GoalRegion r = sector(home_[0], home_[1], 0.08, 0.16, s == Split::Ood);
    r.z_min = r.z_max = rest_z_;
    return r;
  }

 protected:
  Plan plan() const override { return push(half_, goal_.data()); }
  void object_velocity(double* v) const override { block_velocity(v); }
  void init_state(Rng& rng) override {
    init_arm(rng);
    init_block(rng);
  }
  std::string goal_problem(const double* g) const override {
    std::string p = height_problem(g, rest_z_, "a push goal (the block resting on the table)");
    return p.empty() ? reach_problem(g, "the goal") : p;
  }
};

}  // namespace

EnvEntry arm7_push_env() {
  return env_entry<Arm7Push>("arm7_push", "7-DoF arm with a gripper: push a block to a goal on the table");
}

}  // namespace ml3
