#include "envs/arm7_pick/arm7_pick.h"

#include <fmt/format.h>

#include "envs/arm7/arm7.h"
#include "envs/env_util.h"

namespace ml3 {
namespace {

class Arm7Pick : public Arm7Env {
 public:
  static Schema schema() { return arm7_schema("arm7_pick.xml", 0.05); }

  explicit Arm7Pick(const Config& o) : Arm7Env("arm7_pick", o, "arm7_pick.xml") {
    find_block();
    spec_.distance_meaning = "block to goal";
    finish_arm7();
  }

  GoalRegion goal_region(Split s) const override {
    GoalRegion r = sector(home_[0], home_[1], 0.05, 0.16, s == Split::Ood);
    r.z_min = table_top_ + 0.08, r.z_max = table_top_ + 0.25;
    return r;
  }

 protected:
  Plan plan() const override { return grasp_and_carry(half_, block_yaw(), goal_.data(), true); }
  void object_velocity(double* v) const override { block_velocity(v); }
  void init_state(Rng& rng) override {
    init_arm(rng);
    init_block(rng);
  }
  std::string goal_problem(const double* g) const override {
    if (g[2] < rest_z_)
      return fmt::format("a pick goal must not be lower than the block resting on the table (z >= {:.4f}, got {:.4f})",
                         rest_z_, g[2]);
    return reach_problem(g, "the goal");
  }
};

}  // namespace

EnvEntry arm7_pick_env() {
  return env_entry<Arm7Pick>("arm7_pick", "7-DoF arm with a gripper: pick a block and place it at a 3-D goal");
}

}  // namespace ml3
