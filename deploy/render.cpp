// GifRecorder: MuJoCo's renderer on an EGL context without a surface
// (offscreen framebuffer), frames read back and appended to a GifWriter.
// Compiled only when CMake found EGL (ML3_HAVE_EGL); otherwise the recorder
// reports that this build cannot render.
#include <mujoco/mujoco.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "core/archive.h"
#include "core/error.h"
#include "deploy/render.h"

#ifdef ML3_HAVE_EGL
#include <EGL/egl.h>
#include <EGL/eglext.h>
#endif

namespace ml3 {

#ifdef ML3_HAVE_EGL
namespace {
// An initialised EGL display without a window system: Mesa's surfaceless
// platform, else the first EGL device, else the default display.
EGLDisplay headless_display() {
  auto get_platform_display =
      reinterpret_cast<PFNEGLGETPLATFORMDISPLAYEXTPROC>(eglGetProcAddress("eglGetPlatformDisplayEXT"));
  auto query_devices = reinterpret_cast<PFNEGLQUERYDEVICESEXTPROC>(eglGetProcAddress("eglQueryDevicesEXT"));
  std::vector<EGLDisplay> candidates;
  if (get_platform_display) {
    candidates.push_back(get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, nullptr));
    EGLDeviceEXT device;
    EGLint n = 0;
    if (query_devices && query_devices(1, &device, &n) && n > 0)
      candidates.push_back(get_platform_display(EGL_PLATFORM_DEVICE_EXT, device, nullptr));
  }
  candidates.push_back(eglGetDisplay(EGL_DEFAULT_DISPLAY));
  for (EGLDisplay d : candidates) {
    EGLint major, minor;
    if (d != EGL_NO_DISPLAY && eglInitialize(d, &major, &minor)) return d;
  }
  return EGL_NO_DISPLAY;
}
}  // namespace
#endif

bool rendering_built() {
#ifdef ML3_HAVE_EGL
  return true;
#else
  return false;
#endif
}

struct GifRecorder::Impl {
  GifWriter gif;
  const mjModel* m = nullptr;
  mjData* d = nullptr;  // a copy of the state being rendered (rendering needs a mutable mjData)
  int w = 0, h = 0;
  double seconds = 0;  // rendering and read-back
  std::vector<unsigned char> rgb, flipped;
#ifdef ML3_HAVE_EGL
  EGLDisplay display = EGL_NO_DISPLAY;
  EGLContext context = EGL_NO_CONTEXT;
  mjvScene scene;
  mjvCamera camera;
  mjvOption option;
  mjrContext con;
#endif
  Impl(int width, int height, double fps) : gif(width, height, fps) {}
};

GifRecorder::GifRecorder(const mjModel* m, int width, int height, double fps)
    : impl_(std::make_unique<Impl>(width, height, fps)) {
#ifndef ML3_HAVE_EGL
  (void)m;
  throw Error("--video: this build cannot render (EGL was not found when it was configured)");
#else
  Impl& r = *impl_;
  r.m = m;
  r.w = std::min(width, m->vis.global.offwidth);
  r.h = std::min(height, m->vis.global.offheight);
  r.gif = GifWriter(r.w, r.h, fps);
  r.display = headless_display();
  if (r.display == EGL_NO_DISPLAY)
    throw Error("--video: cannot initialise EGL (no headless EGL display; Mesa's libEGL is needed)");
  const EGLint attribs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8,
                            EGL_DEPTH_SIZE, 24, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT, EGL_NONE};
  EGLConfig config;
  EGLint n = 0;
  if (!eglChooseConfig(r.display, attribs, &config, 1, &n) || n < 1 || !eglBindAPI(EGL_OPENGL_API) ||
      (r.context = eglCreateContext(r.display, config, EGL_NO_CONTEXT, nullptr)) == EGL_NO_CONTEXT ||
      !eglMakeCurrent(r.display, EGL_NO_SURFACE, EGL_NO_SURFACE, r.context)) {
    eglTerminate(r.display);
    throw Error(fmt::format("--video: cannot create an OpenGL context with EGL (EGL error 0x{:x})", eglGetError()));
  }
  r.d = mj_makeData(m);
  mjv_defaultScene(&r.scene);
  mjv_defaultOption(&r.option);
  mjv_defaultFreeCamera(m, &r.camera);
  const int watch = mj_name2id(m, mjOBJ_CAMERA, "watch");
  if (watch >= 0) {  // the model frames its task itself
    r.camera.type = mjCAMERA_FIXED;
    r.camera.fixedcamid = watch;
  } else {
    r.camera.elevation = -60;  // from above, at an angle: planar robots stay readable
    r.camera.distance = 0.6 * m->stat.extent;
  }
  mjr_defaultContext(&r.con);
  mjv_makeScene(m, &r.scene, 2000);
  mjr_makeContext(m, &r.con, mjFONTSCALE_100);
  mjr_setBuffer(mjFB_OFFSCREEN, &r.con);
  r.rgb.resize(static_cast<size_t>(r.w) * r.h * 3);
  r.flipped.resize(r.rgb.size());
#endif
}

GifRecorder::~GifRecorder() {
#ifdef ML3_HAVE_EGL
  Impl& r = *impl_;
  if (r.d) {
    mjr_freeContext(&r.con);
    mjv_freeScene(&r.scene);
    mj_deleteData(r.d);
  }
  if (r.display != EGL_NO_DISPLAY) {
    eglMakeCurrent(r.display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    if (r.context != EGL_NO_CONTEXT) eglDestroyContext(r.display, r.context);
    eglTerminate(r.display);
  }
#endif
}

void GifRecorder::frame(const mjData* d, const std::string& caption) {
#ifdef ML3_HAVE_EGL
  Impl& r = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  mj_copyData(r.d, r.m, d);
  mjv_updateScene(r.m, r.d, &r.option, nullptr, &r.camera, mjCAT_ALL, &r.scene);
  const mjrRect viewport = {0, 0, r.w, r.h};
  mjr_render(viewport, &r.scene, &r.con);
  if (!caption.empty()) mjr_overlay(mjFONT_NORMAL, mjGRID_TOPLEFT, viewport, caption.c_str(), nullptr, &r.con);
  mjr_readPixels(r.rgb.data(), nullptr, viewport, &r.con);
  r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const size_t row = static_cast<size_t>(r.w) * 3;
  for (int y = 0; y < r.h; ++y)  // OpenGL's first row is the bottom one
    std::copy_n(&r.rgb[(r.h - 1 - y) * row], row, &r.flipped[y * row]);
  r.gif.add(r.flipped.data());
#else
  (void)d;
  (void)caption;
#endif
}

int GifRecorder::frames() const { return impl_->gif.frames(); }
int GifRecorder::width() const { return impl_->w; }
int GifRecorder::height() const { return impl_->h; }
const unsigned char* GifRecorder::last_frame() const { return impl_->flipped.data(); }
double GifRecorder::render_seconds() const { return impl_->seconds; }

size_t GifRecorder::save(const std::string& path) const {
  const std::string bytes = impl_->gif.bytes();
  write_file_atomic(path, bytes);
  return bytes.size();
}

}  // namespace ml3
