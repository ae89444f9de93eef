#include "envs/mujoco_log.h"

#include <mujoco/mujoco.h>

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <fmt/format.h>

#include "core/error.h"

namespace ml3 {
namespace {

// Per thread: the innermost mujoco_call() (where to jump on an error), the
// model it runs, and the message of the error that ended it.
struct Guard {
  sigjmp_buf* jump = nullptr;
  const std::string* model_file = nullptr;
  char message[1024] = "";
};
thread_local Guard t_guard;

std::mutex g_sink_mutex;
MujocoWarningSink g_sink;

void on_warning(const char* message) {
  std::string text = mujoco_one_line(message);
  if (t_guard.model_file) text += fmt::format(" (model {})", *t_guard.model_file);
  std::lock_guard<std::mutex> lock(g_sink_mutex);
  if (g_sink) {
    g_sink(text);
  } else {
    std::fputs(fmt::format("warning: mujoco: {}\n", text).c_str(), stderr);
  }
}

[[noreturn]] void on_error(const char* message) {
  if (t_guard.jump) {
    std::snprintf(t_guard.message, sizeof(t_guard.message), "%s", message);
    siglongjmp(*t_guard.jump, 1);
  }
  std::fflush(stdout);
  std::fputs(fmt::format("error: mujoco: {}\n", mujoco_one_line(message)).c_str(), stderr);
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

std::string mujoco_one_line(const char* message) {
  std::string s;
  for (const char* c = message; *c; ++c) s += (*c == '\n') ? ' ' : *c;
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

void install_mujoco_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    mju_user_warning = on_warning;
    mju_user_error = on_error;
  });
}

MujocoWarningSink set_mujoco_warning_sink(MujocoWarningSink sink) {
  std::lock_guard<std::mutex> lock(g_sink_mutex);
  std::swap(sink, g_sink);
  return sink;
}

namespace detail {

const char* guarded_mujoco_call(void (*fn)(void*), void* arg, const std::string* model_file) {
  // The locals read after a jump back are not modified after sigsetjmp.
  sigjmp_buf jump;
  sigjmp_buf* const outer_jump = t_guard.jump;
  const std::string* const outer_file = t_guard.model_file;
  if (sigsetjmp(jump, 0) != 0) {
    t_guard.jump = outer_jump, t_guard.model_file = outer_file;
    return t_guard.message;
  }
  t_guard.jump = &jump, t_guard.model_file = model_file;
  fn(arg);
  t_guard.jump = outer_jump, t_guard.model_file = outer_file;
  return nullptr;
}

void throw_mujoco_error(const std::string& model_file, const char* message) {
  throw Error(fmt::format("{}: MuJoCo error: {}", model_file, mujoco_one_line(message)));
}

}  // namespace detail
}  // namespace ml3
