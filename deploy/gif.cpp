// GifWriter: a small GIF89a encoder. Pixels map to a 6x6x6 colour cube; the
// image data is LZW-compressed with growing code widths (9..12 bits, a clear
// code when the table is full), as every GIF decoder expects.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

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

}  // namespace

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
