#include "models/nets.h"

#include <torch/torch.h>

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "core/error.h"
#include "core/rng.h"

namespace ml3 {

Tensor squared_action_error(const Tensor& a, const Tensor& b) { return (a - b).pow(2).sum(-1).mean(); }

Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "relu") return Activation::Relu;
  if (name == "elu") return Activation::Elu;
  throw Error("unknown activation '" + name + "' (expected tanh, relu or elu)");
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Tanh: return "tanh";
    case Activation::Relu: return "relu";
    case Activation::Elu: return "elu";
    case Activation::None: return "none";
  }
  return "?";
}

FunctionalMlp::FunctionalMlp(std::vector<int> sizes, Activation act, bool bias)
    : sizes_(std::move(sizes)), act_(act), bias_(bias) {
  if (sizes_.size() < 2) throw Error("internal: an MLP needs at least input and output sizes");
  for (int s : sizes_)
    if (s < 1) throw Error("MLP layer sizes must be >= 1");
}

Params FunctionalMlp::init(uint64_t seed, double out_scale, bool float64) const {
  Params p;
  Rng rng(seed);
  const size_t layers = sizes_.size() - 1;
  for (size_t l = 0; l < layers; ++l) {
    const int in = sizes_[l], out = sizes_[l + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    const double scale = (l + 1 == layers) ? out_scale : 1.0;
    auto w = torch::empty({in, out}, torch::kFloat64);
    auto* wd = w.data_ptr<double>();
    for (int64_t i = 0; i < static_cast<int64_t>(in) * out; ++i) wd[i] = scale * rng.uniform(-bound, bound);
    p.push_back(float64 ? w : w.to(torch::kFloat32));
    if (bias_) {
      auto b = torch::empty({out}, torch::kFloat64);
      auto* bd = b.data_ptr<double>();
      for (int i = 0; i < out; ++i) bd[i] = scale * rng.uniform(-bound, bound);
      p.push_back(float64 ? b : b.to(torch::kFloat32));
    }
  }
  for (auto& t : p) t.set_requires_grad(true);
  return p;
}

Tensor FunctionalMlp::forward(const Tensor& x, const Params& params, size_t offset) const {
  const size_t layers = sizes_.size() - 1;
  if (params.size() < offset + num_tensors()) throw Error("internal: MLP got too few parameter tensors");
  // Flatten leading dims so every layer is one addmm/mm.
  auto lead = x.sizes().vec();
  lead.pop_back();
  Tensor h = x.reshape({-1, sizes_[0]});
  size_t k = offset;
  for (size_t l = 0; l < layers; ++l) {
    const Tensor& w = params[k++];
    h = bias_ ? at::addmm(params[k++], h, w) : at::mm(h, w);
    if (l + 1 < layers) {
      switch (act_) {
        case Activation::Tanh: h = at::tanh(h); break;
        case Activation::Relu: h = at::relu(h); break;
        case Activation::Elu: h = at::elu(h); break;
        case Activation::None: break;
      }
    }
  }
  lead.push_back(sizes_.back());
  return h.reshape(lead);
}

GaussianPolicy::GaussianPolicy(int obs_dim, int act_dim, const PolicyConfig& cfg)
    : obs_dim_(obs_dim), act_dim_(act_dim), cfg_(cfg) {
  std::vector<int> sizes{obs_dim};
  sizes.insert(sizes.end(), cfg.hidden.begin(), cfg.hidden.end());
  sizes.push_back(act_dim);
  mlp_ = FunctionalMlp(sizes, cfg.activation);
}

Params GaussianPolicy::init(uint64_t seed, bool float64) const {
  Params p = mlp_.init(seed, 0.01, float64);
  auto ls = torch::full({act_dim_}, cfg_.init_log_std, float64 ? torch::kFloat64 : torch::kFloat32);
  ls.set_requires_grad(true);
  p.push_back(ls);
  return p;
}

Tensor GaussianPolicy::log_std(const Params& p) const {
  return at::clamp(p[mlp_.num_tensors()], cfg_.log_std_min, cfg_.log_std_max);
}

Tensor GaussianPolicy::log_prob(const Tensor& mean, const Tensor& log_std, const Tensor& actions) const {
  const double log_sqrt_2pi = 0.5 * std::log(2.0 * M_PI);
  const Tensor z = (actions - mean) * at::exp(-log_std);
  return (-0.5 * z * z - log_std - log_sqrt_2pi).sum(-1);
}

Tensor GaussianPolicy::entropy(const Tensor& log_std) const {
  return (log_std + 0.5 * (1.0 + std::log(2.0 * M_PI))).sum();
}

void set_compute_threads(int threads) {
  torch::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

std::string blas_kernels() {
  using CoreName = char* (*)();
  if (auto fn = reinterpret_cast<CoreName>(dlsym(RTLD_DEFAULT, "openblas_get_corename"))) return std::string("OpenBLAS ") + fn();
  return "not OpenBLAS";
}

void put_params(Archive& a, const std::string& prefix, const Params& params) {
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor t = params[i].detach().contiguous();
    const bool f64 = t.scalar_type() == torch::kFloat64;
    a.put(prefix + std::to_string(i), f64 ? "f64" : "f32", t.sizes().vec(), t.data_ptr(),
          t.numel() * (f64 ? 8 : 4));
  }
}

Params get_params(const Archive& a, const std::string& prefix, size_t count) {
  Params p;
  for (size_t i = 0; i < count; ++i) {
    const Blob& b = a.get(prefix + std::to_string(i));
    const auto dtype = b.dtype == "f64" ? torch::kFloat64 : torch::kFloat32;
    if (b.dtype != "f64" && b.dtype != "f32") throw Error(a.path() + ": entry " + prefix + " has a non-float type");
    auto t = torch::empty(b.shape, dtype);
    std::memcpy(t.data_ptr(), b.bytes.data(), b.bytes.size());
    t.set_requires_grad(true);
    p.push_back(t);
  }
  if (a.has(prefix + std::to_string(count)))
    throw Error(a.path() + ": entry group '" + prefix + "' has more tensors than the network expects");
  return p;
}

Params checked_params(const Archive& a, const std::string& prefix, const Params& expected, const std::string& what) {
  Params loaded = get_params(a, prefix, expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    if (loaded[i].sizes() != expected[i].sizes())
      throw Error(fmt::format("{}: {} tensor {} has shape {}, the config's network expects {}", a.path(), what, i,
                              c10::str(loaded[i].sizes()), c10::str(expected[i].sizes())));
  return loaded;
}

bool all_finite(const Params& params) {
  for (const auto& t : params)
    if (!torch::isfinite(t).all().item<bool>()) return false;
  return true;
}

Params clone_params(const Params& params, bool requires_grad) {
  Params out;
  for (const auto& t : params) out.push_back(t.detach().clone().set_requires_grad(requires_grad));
  return out;
}

template <typename T>
std::vector<T> flat_params(const Params& params) {
  std::vector<T> out;
  for (const Tensor& t : params) {
    const Tensor c = t.detach().to(torch::CppTypeToScalarType<T>()).contiguous();
    out.insert(out.end(), c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
  }
  return out;
}

template <typename T>
void set_from_flat(const std::vector<T>& flat, Params& params) {
  torch::NoGradGuard no_grad;
  size_t off = 0;
  for (Tensor& t : params) {
    if (off + static_cast<size_t>(t.numel()) > flat.size()) throw Error("internal: flat parameter count mismatch");
    t.detach().copy_(torch::from_blob(const_cast<T*>(flat.data()) + off, t.sizes(),
                                      torch::TensorOptions().dtype(torch::CppTypeToScalarType<T>())));
    off += static_cast<size_t>(t.numel());
  }
  if (off != flat.size()) throw Error("internal: flat parameter count mismatch");
}

template std::vector<float> flat_params<float>(const Params&);
template std::vector<double> flat_params<double>(const Params&);
template void set_from_flat<float>(const std::vector<float>&, Params&);
template void set_from_flat<double>(const std::vector<double>&, Params&);

}  // namespace ml3
