#pragma once
// Offscreen rendering of a MuJoCo simulation (EGL, no window, no display
// server; Mesa's software renderer works) into an animated GIF with a caption
// per frame, and a PNG strip of chosen frames: ml3-deploy --video, ml3 render.
// Optional at build time: without EGL, GifRecorder throws.
#include <memory>
#include <string>
#include <vector>

struct mjModel_;
struct mjData_;

namespace ml3 {

// True when this build can render (EGL was found at configure time).
bool rendering_built();

class GifRecorder {
 public:
  // Frames of width x height pixels (at most the model's offscreen buffer,
  // 640 x 480 by default), played back at `fps` frames per second. The view
  // is the model's camera named "watch" when it has one (the built-in
  // environments frame their task with it), else a free camera from above.
  GifRecorder(const mjModel_* m, int width, int height, double fps);
  ~GifRecorder();
  GifRecorder(const GifRecorder&) = delete;
  GifRecorder& operator=(const GifRecorder&) = delete;
  // Renders the current state of `d` (of the model given above) as one frame,
  // `caption` (lines separated by '\n') drawn in its top-left corner.
  void frame(const mjData_* d, const std::string& caption = "");
  int frames() const;
  int width() const;
  int height() const;
  // The last frame's pixels: width * height RGB triples, top row first.
  const unsigned char* last_frame() const;
  // Wall time spent rendering and reading back frames so far.
  double render_seconds() const;
  // Writes the GIF atomically; returns its size in bytes.
  size_t save(const std::string& path) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// An animated GIF (GIF89a, looping) of RGB frames, colours quantised to a
// fixed 6x6x6 palette. Exposed for tests.
class GifWriter {
 public:
  GifWriter(int width, int height, double fps);
  void add(const unsigned char* rgb);  // width * height * 3 bytes, top row first
  std::string bytes() const;           // the whole file
  int frames() const { return frames_; }

 private:
  int w_, h_, delay_cs_, frames_ = 0;
  std::string data_;  // the frames' encoded blocks
};

// A PNG image of frames of equal size laid side by side (left to right):
// ml3 render's and ml3-deploy's strip of first and last frames.
class FrameStrip {
 public:
  FrameStrip(int width, int height) : w_(width), h_(height) {}
  void add(const unsigned char* rgb);  // width * height * 3 bytes, top row first
  int frames() const { return n_; }
  // Writes the PNG atomically; returns its size in bytes (throws when empty).
  size_t save(const std::string& path) const;

 private:
  int w_, h_, n_ = 0;
  std::vector<unsigned char> frames_;  // frame after frame
};

// A PNG file (8-bit RGB, no interlace, zlib-compressed) of width x height
// RGB pixels, top row first. Exposed for tests.
std::string png_bytes(const unsigned char* rgb, int width, int height);

}  // namespace ml3
