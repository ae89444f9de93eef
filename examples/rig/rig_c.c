/* The C API: load a policy, print its spec, act on a zero observation and
 * time 10000 actions.   rig_c POLICY.ml3p */
#include <ml3/runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char** argv) {
  char err[512];
  if (argc < 2) {
    fprintf(stderr, "usage: rig_c POLICY.ml3p\n");
    return 2;
  }
  ml3_policy* p = ml3_policy_load(argv[1], err, sizeof err);
  if (!p) {
    fprintf(stderr, "error: %s\n", err);
    return 1;
  }
  const int od = ml3_policy_obs_dim(p), ad = ml3_policy_act_dim(p);
  printf("env %s, %d observations, %d actions, control period %g s\n", ml3_policy_env(p), od, ad,
         ml3_policy_control_period(p));
  double* obs = calloc((size_t)od, sizeof(double));
  double* action = calloc((size_t)ad, sizeof(double));
  if (ml3_policy_act(p, obs, action) != 0) fprintf(stderr, "fault on a zero observation\n");
  printf("action at zero observation:");
  for (int j = 0; j < ad; ++j) printf(" %.6g", action[j]);
  printf("\n");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int k = 0; k < 10000; ++k) {
    obs[k % od] = 0.001 * k;
    ml3_policy_act(p, obs, action);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("mean time per action: %.3f us\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e4 / 1e3);
  free(obs);
  free(action);
  ml3_policy_free(p);
  return 0;
}
