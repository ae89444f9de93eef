// Image encoders of the renderer. GifWriter: a small GIF89a encoder; pixels
// map to a 6x6x6 colour cube; the image data is LZW-compressed with growing
// code widths (9..12 bits, a clear code when the table is full), as every GIF
// decoder expects. png_bytes / FrameStrip: true-colour PNG through zlib.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/archive.h"
#include "core/error.h"
#include "deploy/render.h"

namespace ml3 {
namespace {

void put16(std::string& s, int v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}

// LSB-first bit packing into GIF sub-blocks (at most 255 bytes each).
class BitWriter {
 public:
  explicit BitWriter(std::string& out) : out_(out) {}
  void code(unsigned c, int bits) {
    acc_ |= c << nbits_;
    nbits_ += bits;
    while (nbits_ >= 8) {
      byte(acc_ & 0xff);
      acc_ >>= 8;
      nbits_ -= 8;
    }
  }
  void finish() {
    if (nbits_ > 0) byte(acc_ & 0xff);
    flush();
    out_ += '\0';  // block terminator
  }

 private:
  void byte(unsigned b) {
    block_ += static_cast<char>(b);
    if (block_.size() == 255) flush();
  }
  void flush() {
    if (block_.empty()) return;
    out_ += static_cast<char>(block_.size());
    out_ += block_;
    block_.clear();
  }
  std::string& out_;
  std::string block_;
  unsigned acc_ = 0;
  int nbits_ = 0;
};

void put32be(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s += static_cast<char>((v >> (8 * k)) & 0xff);
}

// A PNG chunk: length, type, data, CRC-32 of type and data.
void png_chunk(std::string& out, const char* type, const std::string& data) {
  put32be(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put32be(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

}  // namespace

std::string png_bytes(const unsigned char* rgb, int width, int height) {
  if (width <= 0 || height <= 0) throw Error("png: an image needs a positive width and height");
  // Scanlines, each behind filter type 0 (none).
  const size_t row = static_cast<size_t>(width) * 3;
  std::string raw;
  raw.reserve((row + 1) * height);
  for (int y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(rgb + y * row), row);
  }
  uLongf packed_size = compressBound(raw.size());
  std::string packed(packed_size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                raw.size(), 6) != Z_OK)
    throw Error("png: zlib could not compress the image");
  packed.resize(packed_size);
  std::string ihdr;
  put32be(ihdr, static_cast<uint32_t>(width));
  put32be(ihdr, static_cast<uint32_t>(height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, adaptive filters, no interlace
  std::string out = "\x89PNG\r\n\x1a\n";
  png_chunk(out, "IHDR", ihdr);
  png_chunk(out, "IDAT", packed);
  png_chunk(out, "IEND", "");
  return out;
}

void FrameStrip::add(const unsigned char* rgb) {
  frames_.insert(frames_.end(), rgb, rgb + static_cast<size_t>(w_) * h_ * 3);
  ++n_;
}

size_t FrameStrip::save(const std::string& path) const {
  if (n_ == 0) throw Error(path + ": no frames for the strip");
  // Frame f's row y becomes columns [f * w, (f + 1) * w) of the strip's row y.
  const size_t row = static_cast<size_t>(w_) * 3, frame = row * h_;
  std::vector<unsigned char> image(frame * n_);
  for (int y = 0; y < h_; ++y)
    for (int f = 0; f < n_; ++f)
      std::copy_n(&frames_[f * frame + y * row], row, &image[(static_cast<size_t>(y) * n_ + f) * row]);
  const std::string bytes = png_bytes(image.data(), w_ * n_, h_);
  write_file_atomic(path, bytes);
  return bytes.size();
}

GifWriter::GifWriter(int width, int height, double fps)
    : w_(width), h_(height), delay_cs_(std::max(2, static_cast<int>(std::lround(100.0 / fps)))) {}

void GifWriter::add(const unsigned char* rgb) {
  // Graphic control extension: the frame's delay.
  data_ += "\x21\xF9\x04";
  data_ += '\0';
  put16(data_, delay_cs_);
  data_ += '\0';
  data_ += '\0';
  // Image descriptor: the whole screen, global colour table.
  data_ += '\x2C';
  put16(data_, 0), put16(data_, 0), put16(data_, w_), put16(data_, h_);
  data_ += '\0';
  data_ += '\x08';  // LZW minimum code size
  BitWriter bw(data_);
  const unsigned clear = 256, end = 257;
  std::vector<uint16_t> table(4096 * 256, 0);  // (code, next pixel) -> code; 0 = none
  unsigned width = 9, max_code = end;
  bw.code(clear, width);
  int cur = -1;
  for (int i = 0; i < w_ * h_; ++i) {
    const unsigned char* p = rgb + 3 * i;
    auto level = [](unsigned char c) { return (c * 5 + 127) / 255; };
    const int v = level(p[0]) * 36 + level(p[1]) * 6 + level(p[2]);
    if (cur < 0) {
      cur = v;
      continue;
    }
    uint16_t& next = table[cur * 256 + v];
    if (next) {
      cur = next;
      continue;
    }
    bw.code(cur, width);
    next = static_cast<uint16_t>(++max_code);
    if (max_code >= (1u << width)) ++width;
    if (max_code == 4095) {
      bw.code(clear, width);
      std::fill(table.begin(), table.end(), 0);
      width = 9, max_code = end;
    }
    cur = v;
  }
  bw.code(cur, width);
  bw.code(end, width);
  bw.finish();
  ++frames_;
}

std::string GifWriter::bytes() const {
  std::string s = "GIF89a";
  put16(s, w_), put16(s, h_);
  s += '\xF7';  // global colour table of 256 entries
  s += '\0', s += '\0';
  for (int i = 0; i < 256; ++i) {
    const int r = i < 216 ? i / 36 : 0, g = i < 216 ? (i / 6) % 6 : 0, b = i < 216 ? i % 6 : 0;
    s += static_cast<char>(r * 51), s += static_cast<char>(g * 51), s += static_cast<char>(b * 51);
  }
  // NETSCAPE2.0: loop forever.
  s += "\x21\xFF\x0BNETSCAPE2.0\x03\x01";
  put16(s, 0);
  s += '\0';
  s += data_;
  s += '\x3B';
  return s;
}

}  // namespace ml3
