// The learned-loss file: an Archive of kind "sine_loss" (see sine.h).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/archive.h"
#include "core/error.h"
#include "src/sine/internal.h"
#include "src/sine/sine.h"

namespace ml3 {

using sine_detail::Layout;

void save_sine_loss(const std::string& path, const SineLoss& loss, const nlohmann::json& extra_meta) {
  const MlpShape shape{loss.sizes, false};
  if (loss.sizes.size() < 2 || loss.sizes.front() != 2 || loss.sizes.back() != 1)
    throw Error("internal: a sine loss must be 2-...-1");
  if (loss.phi.size() != shape.num_params()) throw Error("internal: sine loss parameters do not match its sizes");
  Archive a("sine_loss");
  a.meta() = extra_meta.is_object() ? extra_meta : nlohmann::json::object();
  a.meta()["format"] = 1;
  a.meta()["sizes"] = loss.sizes;
  a.meta()["input"] = {"prediction", "target"};
  a.meta()["activation"] = "relu";
  a.meta()["bias"] = false;
  a.meta()["output"] = "softplus";
  a.meta()["float64"] = loss.float64;
  const Layout L(shape);
  for (size_t l = 0; l < L.layers(); ++l) {
    const size_t count = static_cast<size_t>(L.sizes[l]) * L.sizes[l + 1];
    const std::vector<int64_t> blob_shape{L.sizes[l], L.sizes[l + 1]};
    const double* src = loss.phi.data() + L.w_off[l];
    const std::string name = "phi." + std::to_string(l);
    if (loss.float64) {
      a.put(name, "f64", blob_shape, src, count * sizeof(double));
    } else {
      std::vector<float> f(src, src + count);
      a.put(name, "f32", blob_shape, f.data(), count * sizeof(float));
    }
  }
  a.save(path);
}

SineLoss load_sine_loss(const std::string& path) {
  const Archive a = Archive::load(path, "sine_loss");
  SineLoss loss;
  try {
    loss.sizes = a.meta().at("sizes").get<std::vector<int>>();
    loss.float64 = a.meta().at("float64").get<bool>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": sine loss metadata lacks 'sizes' or 'float64'");
  }
  const auto& s = loss.sizes;
  if (s.size() < 2 || s.front() != 2 || s.back() != 1 ||
      std::any_of(s.begin(), s.end(), [](int v) { return v < 1; }))
    throw Error(path + ": sine loss sizes must be 2-...-1 with positive hidden sizes");
  const Layout L(MlpShape{s, false});
  loss.phi.resize(L.total);
  const std::string dtype = loss.float64 ? "f64" : "f32";
  for (size_t l = 0; l < L.layers(); ++l) {
    const std::string name = "phi." + std::to_string(l);
    const Blob& b = a.get(name);
    const std::vector<int64_t> want{L.sizes[l], L.sizes[l + 1]};
    if (b.dtype != dtype || b.shape != want)
      throw Error(path + ": entry '" + name + "' is " + b.dtype + " of the wrong shape; the sizes in the file's " +
                  "metadata need " + dtype + " [" + std::to_string(want[0]) + ", " + std::to_string(want[1]) + "]");
    const size_t count = static_cast<size_t>(want[0] * want[1]);
    double* dst = loss.phi.data() + L.w_off[l];
    if (loss.float64) {
      std::memcpy(dst, b.bytes.data(), count * sizeof(double));
    } else {
      std::vector<float> f(count);
      std::memcpy(f.data(), b.bytes.data(), count * sizeof(float));
      std::copy(f.begin(), f.end(), dst);
    }
  }
  if (a.has("phi." + std::to_string(L.layers())))
    throw Error(path + ": has more layers than its metadata's sizes");
  return loss;
}

}  // namespace ml3
