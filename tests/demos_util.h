#pragma once
// Comparing demonstrations field by field (tests of envs/demos.h and envs/minari.h).
#include <gtest/gtest.h>

#include "envs/demos.h"

namespace ml3::test {

inline void expect_same(const Demonstrations& a, const Demonstrations& b) {
  EXPECT_EQ(a.env, b.env);
  EXPECT_EQ(a.obs_dim, b.obs_dim);
  EXPECT_EQ(a.act_dim, b.act_dim);
  EXPECT_EQ(a.goal_dim, b.goal_dim);
  EXPECT_EQ(a.episode_steps, b.episode_steps);
  EXPECT_EQ(a.act_low, b.act_low);
  EXPECT_EQ(a.act_high, b.act_high);
  EXPECT_EQ(a.split, b.split);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.action_noise, b.action_noise);
  EXPECT_EQ(a.env_options, b.env_options);
  EXPECT_EQ(a.outcomes_known, b.outcomes_known);
  ASSERT_EQ(a.episodes.size(), b.episodes.size());
  for (size_t i = 0; i < a.episodes.size(); ++i) {
    const DemoEpisode &x = a.episodes[i], &y = b.episodes[i];
    EXPECT_EQ(x.goal, y.goal) << i;  // float ==: exact (no NaN in valid files)
    EXPECT_EQ(x.observations, y.observations) << i;
    EXPECT_EQ(x.final_observation, y.final_observation) << i;
    EXPECT_EQ(x.actions, y.actions) << i;
    EXPECT_EQ(x.executed_actions, y.executed_actions) << i;
    EXPECT_EQ(x.rewards, y.rewards) << i;
    EXPECT_EQ(x.final_distance, y.final_distance) << i;
    EXPECT_EQ(x.success, y.success) << i;
  }
}

}  // namespace ml3::test
