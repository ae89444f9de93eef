// The arm7 family (envs/arm7*): one 7-DoF arm with a gripper, five tasks with
// identical observation/action/goal sizes, scripted experts, user models.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "envs/expert_runs.h"
#include "envs/mujoco_env.h"
#include "envs/vec_env.h"
#include "test_util.h"

namespace ml3 {
namespace {

using test::error_of;

const char* kArm7[] = {"arm7_reach", "arm7_push", "arm7_pick", "arm7_button", "arm7_slide"};

int episodes_from_env(int fallback) {
  const char* s = std::getenv("ML3_ARM7_EPISODES");
  return s ? std::atoi(s) : fallback;
}

TEST(Arm7, ExpertsSolveTheirTasks) {
  const int n = episodes_from_env(20);
  // Lower bounds a little below the rates measured on 100 test goals.
  const double bound[] = {0.9, 0.8, 0.7, 0.75, 0.75};
  for (int i = 0; i < 5; ++i) {
    const ExpertResult r = run_expert(kArm7[i], env_options(kArm7[i], "", {}), Split::Test, n, 0, 2);
    std::printf("%-12s test %3d episodes: success %.2f, final distance %.4f, return %.2f\n", kArm7[i], n,
                r.success_rate, r.final_distance_mean, r.return_mean);
    EXPECT_GE(r.success_rate, bound[i]) << kArm7[i];
  }
}

}  // namespace
}  // namespace ml3
