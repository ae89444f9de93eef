#pragma once
// FNV-1a-64: the checksum of every ml3 file (archives, see core/archive.h;
// deployable policies, see runtime/). Header-only and dependency-free so the
// LibTorch-free deployment runtime shares it.
#include <cstddef>
#include <cstdint>

namespace ml3 {

inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = 0xcbf29ce484222325ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

}  // namespace ml3
