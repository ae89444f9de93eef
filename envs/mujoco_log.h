#pragma once
// MuJoCo's warning and error callbacks, routed into ml3.
//
// Left alone, MuJoCo 2.2 appends every warning and error to MUJOCO_LOG.TXT in
// the working directory and prints it on stdout; on an error it then waits for
// Enter and calls exit(1). install_mujoco_handlers() (called by load_model)
// replaces both callbacks, once per process:
//  - a warning goes to the warning sink: by default one stderr line
//    `warning: mujoco: <message> (model <file>)`; set_mujoco_warning_sink()
//    collects them instead (tests, or a caller that reports them itself);
//  - an error raised inside mujoco_call() becomes an ml3::Error
//    `<file>: MuJoCo error: <message>` thrown from mujoco_call().
//
// Why not throw from the error callback: MuJoCo 2.2's mju_error() returns to
// its caller when the user callback returns (checked on 2.2.2: the caller then
// carries on, e.g. past an overflowed arena stack), so the callback must not
// return; and a C++ exception thrown through MuJoCo's C frames is undefined
// behaviour. The callback therefore copies the message and siglongjmp()s back
// to the sigsetjmp() in mujoco_call(). The jump skips only MuJoCo's C frames
// and the callable passed to mujoco_call(), which must own no object with a
// destructor (it just calls MuJoCo); the exception is then thrown from
// ordinary C++ code. The mjData of the interrupted call is left mid-step (its
// arena stack included): the caller must mj_resetData() it before using it
// again. An error outside any mujoco_call() prints `error: mujoco: <message>`
// and ends the process with exit code 1 (as MuJoCo's own handler does, minus
// the log file and the wait for Enter). mj_loadXML installs its own callbacks
// while it compiles and restores ours afterwards; its errors come back in its
// error buffer (see load_model).
#include <functional>
#include <string>

namespace ml3 {

void install_mujoco_handlers();

using MujocoWarningSink = std::function<void(const std::string& message)>;
// Replaces the warning sink (an empty function: back to printing on stderr)
// and returns the previous one. The sink may be called from any thread that
// steps a simulation, one call at a time; it runs inside MuJoCo and must not
// throw.
MujocoWarningSink set_mujoco_warning_sink(MujocoWarningSink sink);

// MuJoCo's messages span lines; ours are one line.
std::string mujoco_one_line(const char* message);

namespace detail {
// Runs fn(arg); returns nullptr, or MuJoCo's error message if one was raised.
const char* guarded_mujoco_call(void (*fn)(void*), void* arg, const std::string* model_file);
[[noreturn]] void throw_mujoco_error(const std::string& model_file, const char* message);
}  // namespace detail

// Runs `fn()` (MuJoCo calls only, see above); a MuJoCo error raised inside it
// throws ml3::Error naming `model_file`, and warnings raised inside it name
// `model_file` too.
template <class F>
void mujoco_call(const std::string& model_file, F fn) {
  auto trampoline = [](void* f) { (*static_cast<F*>(f))(); };
  if (const char* error = detail::guarded_mujoco_call(trampoline, &fn, &model_file))
    detail::throw_mujoco_error(model_file, error);
}

}  // namespace ml3
