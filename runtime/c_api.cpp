// The C API (ml3/runtime.h): an opaque handle around ml3::runtime::Policy;
// no exception crosses it.
#include <cstring>
#include <new>
#include <string>

#include "ml3/runtime.h"
#include "ml3/runtime.hpp"

struct ml3_policy {
  ml3::runtime::Policy policy;
};

namespace {

void set_error(char* err, size_t err_size, const char* msg) {
  if (!err || err_size == 0) return;
  const size_t n = std::min(std::strlen(msg), err_size - 1);
  std::memcpy(err, msg, n);
  err[n] = '\0';
}

template <class Make>
ml3_policy* guarded(Make make, char* err, size_t err_size) {
  try {
    ml3_policy* p = new ml3_policy{make()};
    set_error(err, err_size, "");
    return p;
  } catch (const std::bad_alloc&) {
    set_error(err, err_size, "out of memory while loading the policy");
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
  }
  return nullptr;
}

}  // namespace

extern "C" {

ml3_policy* ml3_policy_load(const char* path, char* err, size_t err_size) {
  if (!path) {
    set_error(err, err_size, "ml3_policy_load: path is NULL");
    return nullptr;
  }
  return guarded([&] { return ml3::runtime::Policy::load(path); }, err, err_size);
}

ml3_policy* ml3_policy_load_memory(const void* data, size_t size, const char* name, char* err, size_t err_size) {
  const std::string n = name ? name : "policy";
  if (!data && size > 0) {
    set_error(err, err_size, "ml3_policy_load_memory: data is NULL");
    return nullptr;
  }
  return guarded([&] { return ml3::runtime::Policy(ml3::runtime::decode(data, size, n), n); }, err, err_size);
}

void ml3_policy_free(ml3_policy* p) { delete p; }

int ml3_policy_act(ml3_policy* p, const double* obs, double* action) { return p->policy.act(obs, action) ? 0 : 1; }

int ml3_policy_obs_dim(const ml3_policy* p) { return static_cast<int>(p->policy.info().obs_dim); }
int ml3_policy_act_dim(const ml3_policy* p) { return static_cast<int>(p->policy.info().act_dim); }
const char* ml3_policy_env(const ml3_policy* p) { return p->policy.info().env.c_str(); }

const char* ml3_policy_obs_name(const ml3_policy* p, int i) {
  const auto& names = p->policy.info().obs_names;
  return i >= 0 && static_cast<size_t>(i) < names.size() ? names[i].c_str() : nullptr;
}

void ml3_policy_action_bounds(const ml3_policy* p, double* low, double* high) {
  const auto& d = p->policy.info();
  for (uint32_t j = 0; j < d.act_dim; ++j) {
    if (low) low[j] = d.act_low[j];
    if (high) high[j] = d.act_high[j];
  }
}

double ml3_policy_control_period(const ml3_policy* p) { return p->policy.info().control_period; }
uint64_t ml3_policy_faults(const ml3_policy* p) { return p->policy.faults(); }
uint32_t ml3_runtime_format_version(void) { return ml3::runtime::kFormatVersion; }

}  // extern "C"
