// The learned-loss file: an Archive of kind "sine_loss" (see sine.h).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/archive.h"
#include "core/error.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

namespace ml3 {

using sine_detail::Layout;

namespace {
// The loss network's inputs, activation, biases and output follow the model.
bool freq_loss(SineModel m) { return m == SineModel::Frequency; }
int loss_inputs(SineModel m) { return freq_loss(m) ? 3 : 2; }
}  // namespace

void save_sine_loss(const std::string& path, const SineLoss& loss, const nlohmann::json& extra_meta) {
  const bool freq = freq_loss(loss.model);
  const MlpShape shape{loss.sizes, freq};
  if (loss.sizes.size() < 2 || loss.sizes.front() != loss_inputs(loss.model) || loss.sizes.back() != 1)
    throw Error("internal: a sine loss must be " + std::to_string(loss_inputs(loss.model)) + "-...-1");
  if (loss.phi.size() != shape.num_params()) throw Error("internal: sine loss parameters do not match its sizes");
  Archive a("sine_loss");
  a.meta() = extra_meta.is_object() ? extra_meta : nlohmann::json::object();
  a.meta()["format"] = 1;
  a.meta()["sizes"] = loss.sizes;
  a.meta()["model"] = sine_model_name(loss.model);
  a.meta()["input"] = freq ? nlohmann::json{"x", "prediction", "target"} : nlohmann::json{"prediction", "target"};
  a.meta()["activation"] = freq ? "elu" : "relu";
  a.meta()["bias"] = freq;
  a.meta()["output"] = freq ? "linear" : "softplus";
  a.meta()["float64"] = loss.float64;
  const Layout L(shape);
  for (size_t l = 0; l < L.layers(); ++l) {
    const size_t count = static_cast<size_t>(L.sizes[l]) * L.sizes[l + 1];
    const std::vector<int64_t> blob_shape{L.sizes[l], L.sizes[l + 1]};
    const double* src = loss.phi.data() + L.w_off[l];
    const std::string name = "phi." + std::to_string(l);
    auto put = [&](const std::string& n, const std::vector<int64_t>& shp, const double* p, size_t k) {
      if (loss.float64) {
        a.put(n, "f64", shp, p, k * sizeof(double));
      } else {
        std::vector<float> f(p, p + k);
        a.put(n, "f32", shp, f.data(), k * sizeof(float));
      }
    };
    put(name, blob_shape, src, count);
    if (freq) put(name + ".bias", {L.sizes[l + 1]}, loss.phi.data() + L.b_off[l], static_cast<size_t>(L.sizes[l + 1]));
  }
  a.save(path);
}

SineLoss load_sine_loss(const std::string& path) {
  const Archive a = Archive::load(path, "sine_loss");
  SineLoss loss;
  try {
    loss.sizes = a.meta().at("sizes").get<std::vector<int>>();
    loss.float64 = a.meta().at("float64").get<bool>();
    loss.model = parse_sine_model(a.meta().value("model", std::string("mlp")));  // files before the frequency model: mlp
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": sine loss metadata lacks 'sizes' or 'float64'");
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  const bool freq = freq_loss(loss.model);
  const auto& s = loss.sizes;
  if (s.size() < 2 || s.front() != loss_inputs(loss.model) || s.back() != 1 ||
      std::any_of(s.begin(), s.end(), [](int v) { return v < 1; }))
    throw Error(path + ": sine loss sizes must be " + std::to_string(loss_inputs(loss.model)) +
                "-...-1 with positive hidden sizes");
  const Layout L(MlpShape{s, freq});
  loss.phi.resize(L.total);
  const std::string dtype = loss.float64 ? "f64" : "f32";
  for (size_t l = 0; l < L.layers(); ++l) {
    const std::string name = "phi." + std::to_string(l);
    const Blob& b = a.get(name);
    const std::vector<int64_t> want{L.sizes[l], L.sizes[l + 1]};
    if (b.dtype != dtype || b.shape != want)
      throw Error(path + ": entry '" + name + "' is " + b.dtype + " of the wrong shape; the sizes in the file's " +
                  "metadata need " + dtype + " [" + std::to_string(want[0]) + ", " + std::to_string(want[1]) + "]");
    auto copy = [&](const Blob& blob, double* dst, size_t count) {
      if (loss.float64) {
        std::memcpy(dst, blob.bytes.data(), count * sizeof(double));
      } else {
        std::vector<float> f(count);
        std::memcpy(f.data(), blob.bytes.data(), count * sizeof(float));
        std::copy(f.begin(), f.end(), dst);
      }
    };
    copy(b, loss.phi.data() + L.w_off[l], static_cast<size_t>(want[0] * want[1]));
    if (freq) {
      const Blob& bb = a.get(name + ".bias");
      if (bb.dtype != dtype || bb.shape != std::vector<int64_t>{want[1]})
        throw Error(path + ": entry '" + name + ".bias' is " + bb.dtype + " of the wrong shape; the sizes need " + dtype +
                    " [" + std::to_string(want[1]) + "]");
      copy(bb, loss.phi.data() + L.b_off[l], static_cast<size_t>(want[1]));
    }
  }
  if (a.has("phi." + std::to_string(L.layers())))
    throw Error(path + ": has more layers than its metadata's sizes");
  return loss;
}

}  // namespace ml3
