/* ml3_runtime C API: run a policy exported by `ml3 export` (.ml3p, see
 * docs/deploy.md) from C or any language with a C FFI. No LibTorch, no MuJoCo.
 *
 *   char err[512];
 *   ml3_policy* p = ml3_policy_load("reacher.ml3p", err, sizeof err);
 *   if (!p) { fprintf(stderr, "%s\n", err); return 1; }
 *   double obs[10], action[2];
 *   ml3_policy_act(p, obs, action);   // 0: ok, 1: fault (safe action written)
 *   ml3_policy_free(p);
 *
 * Handles passed to the functions below must be non-NULL results of a load
 * (except ml3_policy_free, which accepts NULL). A handle must not be used by
 * two threads at once. */
#ifndef ML3_RUNTIME_H
#define ML3_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ml3_policy ml3_policy;

/* Loads and validates a .ml3p file. On failure returns NULL and writes the
 * message (naming the file and what was expected) into err (if err_size > 0;
 * always NUL-terminated, truncated to err_size - 1 bytes). */
ml3_policy* ml3_policy_load(const char* path, char* err, size_t err_size);
/* The same from a file image in memory (`name` appears in messages). */
ml3_policy* ml3_policy_load_memory(const void* data, size_t size, const char* name, char* err, size_t err_size);
void ml3_policy_free(ml3_policy* p);

/* obs: obs_dim values; action: act_dim values. Returns 0, or 1 when the
 * observation was not finite: the safe action (0 clipped to the bounds) was
 * written and counted as a fault. Allocation-free. */
int ml3_policy_act(ml3_policy* p, const double* obs, double* action);

int ml3_policy_obs_dim(const ml3_policy* p);
int ml3_policy_act_dim(const ml3_policy* p);
/* The environment name the policy was trained on (valid while p lives). */
const char* ml3_policy_env(const ml3_policy* p);
/* Name of observation value i (NULL when out of range). */
const char* ml3_policy_obs_name(const ml3_policy* p, int i);
/* Writes act_dim lower and upper action bounds. */
void ml3_policy_action_bounds(const ml3_policy* p, double* low, double* high);
/* Seconds between actions the policy was trained with. */
double ml3_policy_control_period(const ml3_policy* p);
uint64_t ml3_policy_faults(const ml3_policy* p);
/* Format version this library reads. */
uint32_t ml3_runtime_format_version(void);

#ifdef __cplusplus
}
#endif
#endif /* ML3_RUNTIME_H */
