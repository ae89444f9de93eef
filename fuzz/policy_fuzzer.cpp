// libFuzzer target of the .ml3p loader (-DML3_FUZZ=ON, clang; docs/deploy.md
// section 6). Each input is decoded as is and once more with its size field
// and checksum rewritten, so mutations get past the checksum into the
// structural checks; a policy that loads acts once. A crash, an ASan/UBSan
// report or a non-finite action is a bug.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/fnv1a.h"
#include "ml3/runtime.hpp"

namespace {

void load_and_act(const std::string& bytes) {
  try {
    ml3::runtime::Policy p(ml3::runtime::decode(bytes.data(), bytes.size(), "fuzz"));
    std::vector<double> obs(p.info().obs_dim, 0.25), action(p.info().act_dim);
    p.act(obs.data(), action.data());
    for (double v : action)
      if (!std::isfinite(v)) std::abort();
  } catch (const ml3::runtime::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  load_and_act(bytes);
  if (bytes.size() >= 28) {
    const uint64_t n = bytes.size();
    std::memcpy(&bytes[12], &n, 8);
    const uint64_t h = ml3::fnv1a64(bytes.data(), bytes.size() - 8);
    std::memcpy(&bytes[bytes.size() - 8], &h, 8);
    load_and_act(bytes);
  }
  return 0;
}
