#include "core/archive.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "core/error.h"

namespace ml3 {
namespace {

constexpr char kMagic[8] = {'M', 'L', '3', 'A', 'R', 'C', 'H', '1'};

size_t dtype_size(const std::string& dtype) {
  if (dtype == "f32") return 4;
  if (dtype == "f64" || dtype == "i64" || dtype == "u64") return 8;
  return 0;
}

void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void put_str(std::string& out, const std::string& s) {
  put_u64(out, s.size());
  out += s;
}

class Reader {
 public:
  Reader(const std::string& data, const std::string& path) : data_(data), path_(path) {}
  uint64_t u64() {
    need(8);
    uint64_t v;
    std::memcpy(&v, data_.data() + pos_, 8);
    pos_ += 8;
    return v;
  }
  std::string str() {
    const uint64_t n = u64();
    need(n);
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }

 private:
  void need(uint64_t n) {
    if (n > data_.size() - pos_) throw Error(path_ + ": file is truncated or corrupt (unexpected end of data)");
  }
  const std::string& data_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

int64_t Blob::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

void Archive::put(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                  const void* data, size_t bytes) {
  Blob b;
  b.dtype = dtype;
  b.shape = shape;
  if (dtype_size(dtype) == 0) throw Error("internal: unknown dtype '" + dtype + "'");
  if (static_cast<size_t>(b.numel()) * dtype_size(dtype) != bytes)
    throw Error("internal: blob '" + name + "' size does not match its shape");
  b.bytes.assign(static_cast<const char*>(data), bytes);
  blobs_[name] = std::move(b);
}

void Archive::put_f64(const std::string& name, const std::vector<double>& values) {
  put(name, "f64", {static_cast<int64_t>(values.size())}, values.data(), values.size() * sizeof(double));
}

const Blob& Archive::get(const std::string& name) const {
  auto it = blobs_.find(name);
  if (it == blobs_.end())
    throw Error((path_.empty() ? std::string("archive") : path_) + ": missing entry '" + name + "' (a " + kind_ +
                " file from another version?)");
  return it->second;
}

std::vector<double> Archive::get_f64(const std::string& name) const {
  const Blob& b = get(name);
  if (b.dtype != "f64") throw Error(path_ + ": entry '" + name + "' is not f64");
  std::vector<double> v(b.numel());
  std::memcpy(v.data(), b.bytes.data(), b.bytes.size());
  return v;
}

void Archive::save(const std::string& path) const {
  std::string out(kMagic, 8);
  put_str(out, kind_);
  put_str(out, meta_.dump());
  put_u64(out, blobs_.size());
  for (const auto& [name, b] : blobs_) {
    put_str(out, name);
    put_str(out, b.dtype);
    put_u64(out, b.shape.size());
    for (auto s : b.shape) put_u64(out, static_cast<uint64_t>(s));
    put_str(out, b.bytes);
  }
  put_u64(out, fnv1a64(out.data(), out.size()));
  write_file_atomic(path, out);
}

Archive Archive::load(const std::string& path, const std::string& expected_kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string data = ss.str();
  if (data.size() < 16 || std::memcmp(data.data(), kMagic, 8) != 0)
    throw Error(path + ": not an ml3 file (bad magic; expected a " +
                (expected_kind.empty() ? std::string("ml3") : expected_kind) + " file)");
  uint64_t stored;
  std::memcpy(&stored, data.data() + data.size() - 8, 8);
  if (fnv1a64(data.data(), data.size() - 8) != stored)
    throw Error(path + ": checksum mismatch: the file is truncated or corrupt; not loaded");
  const std::string body = data.substr(8, data.size() - 16);
  Reader r(body, path);
  Archive a;
  a.path_ = path;
  a.kind_ = r.str();
  if (!expected_kind.empty() && a.kind_ != expected_kind)
    throw Error(path + ": is a " + a.kind_ + " file, expected a " + expected_kind + " file");
  try {
    a.meta_ = nlohmann::json::parse(r.str());
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": corrupt metadata");
  }
  const uint64_t n = r.u64();
  for (uint64_t i = 0; i < n; ++i) {
    const std::string name = r.str();
    Blob b;
    b.dtype = r.str();
    const uint64_t rank = r.u64();
    if (rank > 16) throw Error(path + ": corrupt entry '" + name + "'");
    for (uint64_t k = 0; k < rank; ++k) b.shape.push_back(static_cast<int64_t>(r.u64()));
    b.bytes = r.str();
    if (dtype_size(b.dtype) == 0 || static_cast<size_t>(b.numel()) * dtype_size(b.dtype) != b.bytes.size())
      throw Error(path + ": corrupt entry '" + name + "'");
    a.blobs_[name] = std::move(b);
  }
  return a;
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw Error(tmp + ": cannot write file");
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 &&
                    ::fsync(fileno(f)) == 0;
    std::fclose(f);
    if (!ok) {
      std::remove(tmp.c_str());
      throw Error(tmp + ": write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename the temporary file into place");
  }
}

}  // namespace ml3
