// The dynamics ensemble (models/dynamics.h) and batched MLPs.
#include "models/dynamics.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/rng.h"

namespace ml3 {

Tensor batched_mlp_forward(const FunctionalMlp& net, const Tensor& x, const Params& params) {
  const auto& sizes = net.sizes();
  const size_t layers = sizes.size() - 1;
  if (params.size() != net.num_tensors() || !net.bias())
    throw Error("internal: batched MLP needs biases and one tensor per weight and bias");
  Tensor h = x;
  for (size_t l = 0; l < layers; ++l) {
    h = torch::baddbmm(params[2 * l + 1], h, params[2 * l]);
    if (l + 1 < layers) {
      switch (net.activation()) {
        case Activation::Tanh: h = torch::tanh(h); break;
        case Activation::Relu: h = torch::relu(h); break;
        case Activation::Elu: h = torch::elu(h); break;
        case Activation::None: break;
      }
    }
  }
  return h;
}

Params batched_mlp_init(const FunctionalMlp& net, const std::vector<uint64_t>& seeds, double out_scale) {
  std::vector<Params> each;
  for (uint64_t s : seeds) each.push_back(net.init(s, out_scale));
  Params out;
  for (size_t i = 0; i < net.num_tensors(); ++i) {
    std::vector<Tensor> parts;
    for (const auto& p : each) parts.push_back(i % 2 ? p[i].detach().unsqueeze(0) : p[i].detach());
    Tensor t = torch::stack(parts, 0);
    t.set_requires_grad(true);
    out.push_back(t);
  }
  return out;
}

Params batched_member(const Params& params, int64_t b) {
  Params out;
  for (const auto& p : params) out.push_back(p.detach()[b]);
  return out;
}

Params get_mlp_params(const Archive& a, const std::string& prefix, const FunctionalMlp& net) {
  const auto& sizes = net.sizes();
  Params p = get_params(a, prefix, net.num_tensors());
  for (size_t i = 0; i < p.size(); ++i) {
    const int64_t in = sizes[i / 2], out = sizes[i / 2 + 1];
    const std::vector<int64_t> want = i % 2 ? std::vector<int64_t>{out} : std::vector<int64_t>{in, out};
    if (p[i].sizes().vec() != want) throw Error(a.path() + ": a layer's shape does not match the file's sizes");
  }
  return p;
}

void write_mlp_loss_file(const std::string& path, const std::string& kind, const FunctionalMlp& net,
                         const Params& phi, nlohmann::json meta) {
  Archive a(kind);
  a.meta() = std::move(meta);
  a.meta()["format"] = 1;
  a.meta()["sizes"] = net.sizes();
  put_params(a, "phi/", phi);
  a.save(path);
}

MlpLossFile load_mlp_loss_file(const std::string& path, const std::string& kind, int inputs, const std::string& what) {
  const Archive a = Archive::load(path, kind);
  std::vector<int> sizes;
  try {
    sizes = a.meta().at("sizes").get<std::vector<int>>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": " + what + " loss metadata lacks 'sizes'");
  }
  if (sizes.size() < 2 || sizes.front() != inputs || sizes.back() != 1)
    throw Error(path + ": a " + what + " loss must be " + std::to_string(inputs) + "-...-1");
  MlpLossFile f{FunctionalMlp(sizes, Activation::Elu, true), {}, a.meta()};
  f.phi = get_mlp_params(a, "phi/", f.net);
  if (!all_finite(f.phi)) throw Error(path + ": the loss holds non-finite values");
  return f;
}

DynamicsEnsemble::DynamicsEnsemble(const DynamicsSpec& spec, uint64_t seed) : spec_(spec) {
  if (spec.in_dim < 1 || spec.out_dim < 1 || spec.members < 1) throw Error("internal: empty dynamics model");
  std::vector<int> sizes{spec.in_dim};
  sizes.insert(sizes.end(), spec.hidden.begin(), spec.hidden.end());
  sizes.push_back(2 * spec.out_dim);
  net_ = FunctionalMlp(sizes, Activation::Elu, true);
  std::vector<uint64_t> seeds;
  for (int e = 0; e < spec.members; ++e) seeds.push_back(mix_seed(seed, static_cast<uint64_t>(e)));
  params_ = batched_mlp_init(net_, seeds);
}

void DynamicsEnsemble::set_normalisation(const Tensor& x, const Tensor& y) {
  torch::NoGradGuard ng;
  in_mean_ = x.mean(0).to(torch::kFloat32);
  in_std_ = x.std(0).clamp_min(1e-6).to(torch::kFloat32);
  out_mean_ = y.mean(0).to(torch::kFloat32);
  out_std_ = y.std(0).clamp_min(1e-6).to(torch::kFloat32);
}

std::pair<Tensor, Tensor> DynamicsEnsemble::member_outputs(const Tensor& x) const {
  if (!normalised()) throw Error("internal: dynamics model used before its normalisation was set");
  const Tensor h = batched_mlp_forward(net_, (x - in_mean_) / in_std_, params_);
  const Tensor mean = h.narrow(2, 0, spec_.out_dim);
  Tensor logvar = h.narrow(2, spec_.out_dim, spec_.out_dim);
  // Soft bounds (PETS): smooth, so the likelihood keeps a gradient at the edges.
  logvar = spec_.max_logvar - torch::softplus(spec_.max_logvar - logvar);
  logvar = spec_.min_logvar + torch::softplus(logvar - spec_.min_logvar);
  return {mean, logvar};
}

Tensor DynamicsEnsemble::nll(const Tensor& x, const Tensor& y) const {
  const auto [mean, logvar] = member_outputs(x);
  const Tensor z = (y - out_mean_) / out_std_;
  return 0.5 * ((mean - z).pow(2) * torch::exp(-logvar) + logvar).mean();
}

Tensor DynamicsEnsemble::predict(const Tensor& x) const {
  auto lead = x.sizes().vec();
  lead.back() = spec_.out_dim;
  const Tensor rows = x.reshape({1, -1, spec_.in_dim}).expand({spec_.members, -1, spec_.in_dim});
  const Tensor mean = member_outputs(rows).first.mean(0);
  return (mean * out_std_ + out_mean_).reshape(lead);
}

DynamicsEnsemble DynamicsEnsemble::to_float64() const {
  DynamicsEnsemble d = *this;
  for (auto& p : d.params_) p = p.detach().to(torch::kFloat64).requires_grad_(true);
  d.in_mean_ = in_mean_.to(torch::kFloat64), d.in_std_ = in_std_.to(torch::kFloat64);
  d.out_mean_ = out_mean_.to(torch::kFloat64), d.out_std_ = out_std_.to(torch::kFloat64);
  return d;
}

void DynamicsEnsemble::put(Archive& a, const std::string& prefix) const {
  if (!normalised()) throw Error("internal: saving a dynamics model that was never fitted");
  a.meta()[prefix + "spec"] = {{"in_dim", spec_.in_dim},       {"out_dim", spec_.out_dim},
                               {"members", spec_.members},     {"hidden", spec_.hidden},
                               {"min_logvar", spec_.min_logvar}, {"max_logvar", spec_.max_logvar}};
  put_params(a, prefix + "w/", params_);
  put_params(a, prefix + "norm/", {in_mean_, in_std_, out_mean_, out_std_});
}

DynamicsEnsemble DynamicsEnsemble::get(const Archive& a, const std::string& prefix) {
  DynamicsSpec s;
  try {
    const auto& j = a.meta().at(prefix + "spec");
    s.in_dim = j.at("in_dim").get<int>();
    s.out_dim = j.at("out_dim").get<int>();
    s.members = j.at("members").get<int>();
    s.hidden = j.at("hidden").get<std::vector<int>>();
    s.min_logvar = j.at("min_logvar").get<double>();
    s.max_logvar = j.at("max_logvar").get<double>();
  } catch (const nlohmann::json::exception&) {
    throw Error(a.path() + ": dynamics model metadata lacks its spec (in_dim, out_dim, members, hidden, logvar bounds)");
  }
  if (s.in_dim < 1 || s.out_dim < 1 || s.members < 1 || s.hidden.empty())
    throw Error(a.path() + ": dynamics model spec has empty sizes");
  DynamicsEnsemble d(s, 0);
  const Params w = get_params(a, prefix + "w/", d.params_.size());
  for (size_t i = 0; i < w.size(); ++i)
    if (w[i].sizes() != d.params_[i].sizes() || w[i].scalar_type() != torch::kFloat32)
      throw Error(fmt::format("{}: dynamics model tensor {} has shape {} (float32 {} expected)", a.path(), i,
                              fmt::join(w[i].sizes(), "x"), fmt::join(d.params_[i].sizes(), "x")));
  d.params_ = w;
  const Params n = get_params(a, prefix + "norm/", 4);
  for (int i = 0; i < 4; ++i)
    if (n[i].dim() != 1 || n[i].size(0) != (i < 2 ? s.in_dim : s.out_dim) || n[i].scalar_type() != torch::kFloat32)
      throw Error(a.path() + ": dynamics model normalisation statistics do not match its sizes");
  if (!all_finite(w) || !all_finite(n)) throw Error(a.path() + ": dynamics model holds non-finite values");
  d.in_mean_ = n[0].detach(), d.in_std_ = n[1].detach(), d.out_mean_ = n[2].detach(), d.out_std_ = n[3].detach();
  return d;
}

void DynamicsEnsemble::save(const std::string& path, const nlohmann::json& meta) const {
  Archive a("dynamics_model");
  a.meta()["format"] = 1;
  a.meta()["info"] = meta;
  put(a, "");
  a.save(path);
}

DynamicsEnsemble DynamicsEnsemble::load(const std::string& path, nlohmann::json* meta) {
  const Archive a = Archive::load(path, "dynamics_model");
  DynamicsEnsemble d = get(a, "");
  if (meta) *meta = a.meta().value("info", nlohmann::json::object());
  return d;
}

}  // namespace ml3
