#pragma once
// Self-describing, checksummed binary files (checkpoints, policies, learned
// losses). Layout: magic "ML3ARCH1", kind, JSON metadata, named blobs (dtype,
// shape, raw bytes), then an FNV-1a-64 checksum of everything before it.
// save() writes a temp file, flushes it and renames it over the target, so a
// crash never leaves a half-written file under the final name; load() rejects
// truncated or corrupted files with a message naming the file.
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/fnv1a.h"

namespace ml3 {

struct Blob {
  std::string dtype;  // "f32", "f64", "i64", "u64"
  std::vector<int64_t> shape;
  std::string bytes;
  int64_t numel() const;
};

class Archive {
 public:
  Archive() = default;
  explicit Archive(std::string kind) : kind_(std::move(kind)) {}

  const std::string& kind() const { return kind_; }
  nlohmann::json& meta() { return meta_; }
  const nlohmann::json& meta() const { return meta_; }

  void put(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
           const void* data, size_t bytes);
  void put_f64(const std::string& name, const std::vector<double>& values);
  bool has(const std::string& name) const { return blobs_.count(name) > 0; }
  // Throws ml3::Error naming the file and entry when absent.
  const Blob& get(const std::string& name) const;
  std::vector<double> get_f64(const std::string& name) const;
  const std::map<std::string, Blob>& blobs() const { return blobs_; }

  void save(const std::string& path) const;
  // `expected_kind` empty: any kind.
  static Archive load(const std::string& path, const std::string& expected_kind = "");
  const std::string& path() const { return path_; }

 private:
  std::string kind_;
  nlohmann::json meta_ = nlohmann::json::object();
  std::map<std::string, Blob> blobs_;
  std::string path_;
};

// Writes text to `path` atomically (temp file + rename).
void write_file_atomic(const std::string& path, const std::string& text);

}  // namespace ml3
