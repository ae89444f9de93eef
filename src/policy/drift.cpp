#include "src/policy/drift.h"

#include <cmath>
#include <cstring>

#include "core/archive.h"
#include "core/error.h"
#include "core/rng.h"

namespace ml3 {

Drift::Drift(std::vector<int> hidden, bool nonnegative) : nonnegative_(nonnegative) {
  if (hidden.empty()) throw Error("drift: at least one hidden layer is needed");
  sizes_.push_back(kFeatures);
  for (int h : hidden) {
    if (h < 1) throw Error("drift: hidden layer sizes must be positive");
    sizes_.push_back(h);
  }
  sizes_.push_back(1);
  size_t n = 0;
  for (size_t l = 0; l + 1 < sizes_.size(); ++l) n += static_cast<size_t>(sizes_[l] + 1) * sizes_[l + 1];
  params_.assign(n, 0.f);
  h_.resize(sizes_.size());
  h0_.resize(sizes_.size());
}

void Drift::set_params(const std::vector<double>& theta) {
  if (theta.size() != params_.size())
    throw Error("drift: " + std::to_string(theta.size()) + " parameters given, the network has " +
                std::to_string(params_.size()));
  for (size_t i = 0; i < theta.size(); ++i) params_[i] = static_cast<float>(theta[i]);
}

std::vector<double> Drift::init(uint64_t seed) const {
  std::vector<double> theta(params_.size(), 0.0);
  Rng rng(seed);
  size_t off = 0;
  for (size_t l = 0; l + 1 < sizes_.size(); ++l) {
    const int in = sizes_[l], out = sizes_[l + 1];
    const bool output = l + 2 == sizes_.size();
    const double a = std::sqrt(6.0 / (in + out));
    for (int k = 0; k < in * out; ++k) theta[off + k] = output ? 0.0 : rng.uniform(-a, a);
    off += static_cast<size_t>(in + 1) * out;  // biases stay zero
  }
  return theta;
}

MlpLayer Drift::layer(size_t l) const {
  size_t off = 0;
  for (size_t k = 0; k < l; ++k) off += static_cast<size_t>(sizes_[k] + 1) * sizes_[k + 1];
  const float* w = params_.data() + off;
  return {w, w + static_cast<size_t>(sizes_[l]) * sizes_[l + 1], sizes_[l], sizes_[l + 1]};
}

const float* Drift::forward(const float* x, int rows, std::vector<std::vector<float>>& h) const {
  const size_t L = sizes_.size() - 1;
  for (size_t l = 0; l <= L; ++l) h[l].resize(static_cast<size_t>(rows) * sizes_[l]);
  std::memcpy(h[0].data(), x, sizeof(float) * rows * kFeatures);
  for (size_t l = 0; l < L; ++l) mlp_layer(layer(l), Activation::Tanh, l + 1 == L, h[l].data(), rows, h[l + 1].data());
  return h[L].data();
}

void Drift::input_grad(const std::vector<std::vector<float>>& h, int rows, float* dx) {
  const size_t L = sizes_.size() - 1;
  d_.assign(static_cast<size_t>(rows), 1.f);  // d h / d output
  for (size_t l = L; l-- > 0;) {
    const MlpLayer p = layer(l);
    const Eigen::Map<const RowMatrixXf> D(d_.data(), rows, p.out), W(p.w, p.in, p.out);
    d_prev_.resize(static_cast<size_t>(rows) * p.in);
    Eigen::Map<RowMatrixXf> P(d_prev_.data(), rows, p.in);
    P.noalias() = D * W.transpose();
    if (l > 0) {  // through the tanh that produced h[l]
      const Eigen::Map<const RowMatrixXf> H(h[l].data(), rows, p.in);
      P.array() *= 1.f - H.array().square();
    }
    d_.swap(d_prev_);
  }
  std::memcpy(dx, d_.data(), sizeof(float) * rows * kFeatures);
}

void Drift::evaluate(int n, const float* ratio, const float* log_ratio, const float* adv, float progress, float* d,
                     float* dd_dlogp) {
  x_.resize(static_cast<size_t>(n) * kFeatures);
  x0_.assign(static_cast<size_t>(n) * kFeatures, 0.f);
  dx_.resize(x_.size());
  for (int i = 0; i < n; ++i) {
    const float r = ratio[i], lr = log_ratio[i], a = adv[i];
    float* x = &x_[static_cast<size_t>(i) * kFeatures];
    x[0] = r - 1.f, x[1] = lr, x[2] = a, x[3] = (r - 1.f) * a, x[4] = lr * a, x[5] = progress;
    float* x0 = &x0_[static_cast<size_t>(i) * kFeatures];
    x0[2] = a, x0[5] = progress;
  }
  const float* y = forward(x_.data(), n, h_);
  const float* y0 = forward(x0_.data(), n, h0_);
  input_grad(h_, n, dx_.data());
  for (int i = 0; i < n; ++i) {
    const float* g = &dx_[static_cast<size_t>(i) * kFeatures];
    const float r = ratio[i], a = adv[i];
    // dx/dlog pi = [r, 1, 0, r A, A, 0] (r = exp(log pi - log pi_old)).
    const float grad = g[0] * r + g[1] + g[3] * r * a + g[4] * a;
    const float diff = y[i] - y0[i];
    if (nonnegative_ && !(diff > 0.f)) {
      d[i] = 0.f, dd_dlogp[i] = 0.f;
    } else {
      d[i] = diff, dd_dlogp[i] = grad;
    }
  }
}

void Drift::save(const std::string& path, nlohmann::json meta) const {
  Archive a(kFileKind);
  a.meta() = std::move(meta);
  a.meta()["format"] = 1;
  a.meta()["sizes"] = sizes_;
  a.meta()["nonnegative"] = nonnegative_;
  a.meta()["features"] = {"r-1", "log r", "A", "(r-1)A", "(log r)A", "progress"};
  a.put_f64("theta", std::vector<double>(params_.begin(), params_.end()));
  a.save(path);
}

Drift Drift::load(const std::string& path, nlohmann::json* meta) {
  const Archive a = Archive::load(path, kFileKind);
  std::vector<int> sizes;
  bool nonneg = true;
  try {
    sizes = a.meta().at("sizes").get<std::vector<int>>();
    nonneg = a.meta().at("nonnegative").get<bool>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": drift metadata lacks 'sizes' or 'nonnegative'");
  }
  if (sizes.size() < 3 || sizes.front() != kFeatures || sizes.back() != 1)
    throw Error(path + ": a drift network must be " + std::to_string(kFeatures) + "-...-1");
  Drift d(std::vector<int>(sizes.begin() + 1, sizes.end() - 1), nonneg);
  const std::vector<double> theta = a.get_f64("theta");
  if (theta.size() != d.num_params())
    throw Error(path + ": 'theta' holds " + std::to_string(theta.size()) + " values, the network's sizes need " +
                std::to_string(d.num_params()));
  for (double v : theta)
    if (!std::isfinite(v)) throw Error(path + ": the drift holds non-finite values");
  d.set_params(theta);
  if (meta) *meta = a.meta();
  return d;
}

bool Drift::is_drift_file(const std::string& path) {
  try {
    return Archive::load(path).kind() == kFileKind;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace ml3
