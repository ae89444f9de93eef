#pragma once
// Offscreen rendering of a MuJoCo simulation (EGL, no window, no display
// server; Mesa's software renderer works) into an animated GIF: ml3-deploy
// --video. Optional at build time: without EGL, GifRecorder throws.
#include <memory>
#include <string>

struct mjModel_;
struct mjData_;

namespace ml3 {

// True when this build can render (EGL was found at configure time).
bool rendering_built();

class GifRecorder {
 public:
  // Frames of width x height pixels (at most the model's offscreen buffer,
  // 640 x 480 by default), played back at `fps` frames per second.
  GifRecorder(const mjModel_* m, int width, int height, double fps);
  ~GifRecorder();
  GifRecorder(const GifRecorder&) = delete;
  GifRecorder& operator=(const GifRecorder&) = delete;
  // Renders the current state of `d` (of the model given above) as one frame.
  void frame(const mjData_* d);
  int frames() const;
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

}  // namespace ml3
