// The .ml3p format (docs/deploy.md: the byte layout is documented there and
// nowhere else) and the deterministic forward pass. No LibTorch, no MuJoCo.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/fnv1a.h"
#include "core/small_mlp.h"
#include "ml3/runtime.hpp"

namespace ml3::runtime {
// The format's activation codes are the project's one activation enum.
static_assert(static_cast<int>(Activation::Tanh) == static_cast<int>(ml3::Activation::Tanh) &&
                  static_cast<int>(Activation::Relu) == static_cast<int>(ml3::Activation::Relu) &&
                  static_cast<int>(Activation::Elu) == static_cast<int>(ml3::Activation::Elu),
              "runtime::Activation codes must match core/small_mlp.h's Activation");

namespace {

constexpr char kMagic[8] = {'M', 'L', '3', 'P', 'O', 'L', 'C', 'Y'};
constexpr size_t kHeaderBytes = 8 + 4 + 8;  // magic, version, file size
constexpr size_t kMinBytes = kHeaderBytes + 8;  // + checksum
// Limits that keep a hostile file from asking for absurd allocations (a valid
// file is also bounded by its own size: every count is checked against the
// bytes left before anything is allocated).
constexpr uint32_t kMaxName = 64, kMaxDim = 65536, kMaxLayers = 64;
constexpr uint32_t kMaxText = 1u << 20;

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

class Writer {
 public:
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void f64(double v) { raw(&v, 8); }
  void f64s(const std::vector<double>& v) { raw(v.data(), 8 * v.size()); }
  void f32s(const std::vector<float>& v) { raw(v.data(), 4 * v.size()); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    out += s;
  }
  void raw(const void* p, size_t n) { out.append(static_cast<const char*>(p), n); }
  std::string out;
};

class Reader {
 public:
  Reader(const unsigned char* p, size_t n, const std::string& name) : p_(p), n_(n), name_(name) {}
  uint32_t u32(const char* what) {
    uint32_t v;
    copy(&v, 4, what);
    return v;
  }
  uint32_t u32_in(const char* what, uint32_t lo, uint32_t hi) {
    const uint32_t v = u32(what);
    if (v < lo || v > hi)
      fail(std::string(what) + " is " + std::to_string(v) + ", expected " + std::to_string(lo) + ".." +
           std::to_string(hi));
    return v;
  }
  double f64(const char* what) {
    double v;
    copy(&v, 8, what);
    return v;
  }
  std::vector<double> f64s(size_t n, const char* what) {
    need(8 * n, what);
    std::vector<double> v(n);
    copy(v.data(), 8 * n, what);
    return v;
  }
  std::vector<float> f32s(size_t n, const char* what) {
    need(4 * n, what);
    std::vector<float> v(n);
    copy(v.data(), 4 * n, what);
    return v;
  }
  std::string str(const char* what, uint32_t max_len) {
    const uint32_t len = u32_in(what, 0, max_len);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  size_t pos() const { return pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(name_ + ": invalid policy file at byte " + std::to_string(pos_) + ": " + what);
  }

 private:
  void need(size_t n, const char* what) const {
    if (n > n_ - pos_)
      fail(std::string("the data ends inside ") + what + " (" + std::to_string(n) + " bytes needed, " +
           std::to_string(n_ - pos_) + " left)");
  }
  void copy(void* dst, size_t n, const char* what) {
    need(n, what);
    std::memcpy(dst, p_ + pos_, n);
    pos_ += n;
  }
  const unsigned char* p_;
  size_t n_, pos_ = 0;
  const std::string& name_;
};

[[noreturn]] void invalid(const std::string& name, const std::string& what) {
  throw Error(name + ": invalid policy: " + what);
}

void check_finite(const std::string& name, const std::vector<double>& v, const char* what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i])) invalid(name, std::string(what) + "[" + std::to_string(i) + "] is not finite");
}

}  // namespace

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::Tanh: return "tanh";
    case Activation::Relu: return "relu";
    case Activation::Elu: return "elu";
  }
  return "?";
}

void validate(const PolicyData& d, const std::string& name) {
  if (d.env.empty() || d.env.size() > kMaxName) invalid(name, "environment name must have 1.." + std::to_string(kMaxName) + " bytes");
  if (d.obs_dim < 1 || d.obs_dim > kMaxDim || d.act_dim < 1 || d.act_dim > kMaxDim)
    invalid(name, "obs_dim " + std::to_string(d.obs_dim) + " and act_dim " + std::to_string(d.act_dim) +
                      " must be in 1.." + std::to_string(kMaxDim));
  if (d.obs_names.size() != d.obs_dim)
    invalid(name, std::to_string(d.obs_names.size()) + " observation names, expected obs_dim = " + std::to_string(d.obs_dim));
  for (const auto& n : d.obs_names)
    if (n.size() > kMaxName) invalid(name, "observation name longer than " + std::to_string(kMaxName) + " bytes");
  if (d.act_low.size() != d.act_dim || d.act_high.size() != d.act_dim)
    invalid(name, "action bounds must have act_dim = " + std::to_string(d.act_dim) + " values each");
  check_finite(name, d.act_low, "act_low");
  check_finite(name, d.act_high, "act_high");
  for (uint32_t j = 0; j < d.act_dim; ++j)
    if (d.act_low[j] > d.act_high[j])
      invalid(name, "act_low[" + std::to_string(j) + "] = " + num(d.act_low[j]) + " is above act_high = " + num(d.act_high[j]));
  if (!(std::isfinite(d.control_period) && d.control_period > 0))
    invalid(name, "control period " + num(d.control_period) + " s, expected a finite number > 0");
  if (d.episode_steps < 1) invalid(name, "episode_steps must be >= 1");
  if (d.env_options.size() > kMaxText || d.source.size() > kMaxText) invalid(name, "text fields are limited to 1 MiB");
  if (d.normalize) {
    if (!(std::isfinite(d.obs_clip) && d.obs_clip > 0)) invalid(name, "observation clip " + num(d.obs_clip) + ", expected a finite number > 0");
    if (d.obs_center.size() != d.obs_dim || d.obs_scale.size() != d.obs_dim)
      invalid(name, "normalisation needs obs_dim = " + std::to_string(d.obs_dim) + " centers and scales");
    check_finite(name, d.obs_center, "obs_center");
    check_finite(name, d.obs_scale, "obs_scale");
    for (uint32_t j = 0; j < d.obs_dim; ++j)
      if (!(d.obs_scale[j] > 0)) invalid(name, "obs_scale[" + std::to_string(j) + "] = " + num(d.obs_scale[j]) + ", expected > 0");
  } else if (!d.obs_center.empty() || !d.obs_scale.empty()) {
    invalid(name, "normalisation values given but normalisation is off");
  }
  if (static_cast<uint32_t>(d.activation) > 2) invalid(name, "unknown activation code " + std::to_string(static_cast<uint32_t>(d.activation)));
  const size_t L = d.sizes.size() < 2 ? 0 : d.sizes.size() - 1;
  if (L < 1 || L > kMaxLayers) invalid(name, "the network needs 1.." + std::to_string(kMaxLayers) + " layers");
  if (d.sizes.front() != d.obs_dim || d.sizes.back() != d.act_dim)
    invalid(name, "the network maps " + std::to_string(d.sizes.front()) + " inputs to " + std::to_string(d.sizes.back()) +
                      " outputs, expected obs_dim = " + std::to_string(d.obs_dim) + " to act_dim = " + std::to_string(d.act_dim));
  for (uint32_t s : d.sizes)
    if (s < 1 || s > kMaxDim) invalid(name, "layer width " + std::to_string(s) + ", expected 1.." + std::to_string(kMaxDim));
  if (d.weights.size() != L || d.biases.size() != L) invalid(name, "weights and biases must be given for every layer");
  for (size_t l = 0; l < L; ++l) {
    const size_t in = d.sizes[l], out = d.sizes[l + 1];
    if (d.weights[l].size() != in * out || d.biases[l].size() != out)
      invalid(name, "layer " + std::to_string(l) + " must have " + std::to_string(in) + "x" + std::to_string(out) +
                        " weights and " + std::to_string(out) + " biases");
    for (float v : d.weights[l])
      if (!std::isfinite(v)) invalid(name, "layer " + std::to_string(l) + " has a non-finite weight");
    for (float v : d.biases[l])
      if (!std::isfinite(v)) invalid(name, "layer " + std::to_string(l) + " has a non-finite bias");
  }
}

std::string encode(const PolicyData& d) {
  validate(d, "encode");
  Writer w;
  w.raw(kMagic, 8);
  w.u32(kFormatVersion);
  w.u64(0);  // file size, patched below
  w.str(d.env);
  w.u32(d.obs_dim);
  w.u32(d.act_dim);
  for (const auto& n : d.obs_names) w.str(n);
  w.f64s(d.act_low);
  w.f64s(d.act_high);
  w.f64(d.control_period);
  w.u32(d.episode_steps);
  w.str(d.env_options);
  w.str(d.source);
  w.u32(d.normalize ? 1 : 0);
  if (d.normalize) {
    w.f64(d.obs_clip);
    w.f64s(d.obs_center);
    w.f64s(d.obs_scale);
  }
  w.u32(static_cast<uint32_t>(d.activation));
  w.u32(static_cast<uint32_t>(d.sizes.size() - 1));
  for (uint32_t s : d.sizes) w.u32(s);
  for (size_t l = 0; l + 1 < d.sizes.size(); ++l) {
    w.f32s(d.weights[l]);
    w.f32s(d.biases[l]);
  }
  const uint64_t total = w.out.size() + 8;
  std::memcpy(&w.out[12], &total, 8);
  w.u64(ml3::fnv1a64(w.out.data(), w.out.size()));
  return std::move(w.out);
}

PolicyData decode(const void* data, size_t size, const std::string& name) {
  const auto* p = static_cast<const unsigned char*>(data);
  if (size < 8 || std::memcmp(p, kMagic, 8) != 0)
    throw Error(name + ": not an ml3 policy file (expected the bytes 'ML3POLCY' at offset 0; export one with ml3 export)");
  if (size < kMinBytes)
    throw Error(name + ": truncated policy file (" + std::to_string(size) + " bytes, a header alone has " +
                std::to_string(kMinBytes) + ")");
  uint32_t version;
  std::memcpy(&version, p + 8, 4);
  if (version != kFormatVersion)
    throw Error(name + ": policy format version " + std::to_string(version) + ", this runtime reads version " +
                std::to_string(kFormatVersion) + " (export again with the matching ml3, or use the matching runtime)");
  uint64_t declared;
  std::memcpy(&declared, p + 12, 8);
  if (declared != size)
    throw Error(name + ": " + (size < declared ? "truncated" : "has trailing data") + ": " + std::to_string(size) +
                " bytes, its header says " + std::to_string(declared));
  uint64_t stored;
  std::memcpy(&stored, p + size - 8, 8);
  if (ml3::fnv1a64(p, size - 8) != stored)
    throw Error(name + ": checksum mismatch: the policy file is corrupt; not loaded");

  Reader r(p + kHeaderBytes, size - kHeaderBytes - 8, name);
  PolicyData d;
  d.env = r.str("the environment name", kMaxName);
  d.obs_dim = r.u32_in("obs_dim", 1, kMaxDim);
  d.act_dim = r.u32_in("act_dim", 1, kMaxDim);
  for (uint32_t j = 0; j < d.obs_dim; ++j) d.obs_names.push_back(r.str("an observation name", kMaxName));
  d.act_low = r.f64s(d.act_dim, "act_low");
  d.act_high = r.f64s(d.act_dim, "act_high");
  d.control_period = r.f64("the control period");
  d.episode_steps = r.u32("episode_steps");
  d.env_options = r.str("the environment options", kMaxText);
  d.source = r.str("the source", kMaxText);
  const uint32_t norm = r.u32_in("the normalisation flag", 0, 1);
  d.normalize = norm == 1;
  if (d.normalize) {
    d.obs_clip = r.f64("the observation clip");
    d.obs_center = r.f64s(d.obs_dim, "obs_center");
    d.obs_scale = r.f64s(d.obs_dim, "obs_scale");
  }
  d.activation = static_cast<Activation>(r.u32_in("the activation code", 0, 2));
  const uint32_t layers = r.u32_in("the layer count", 1, kMaxLayers);
  for (uint32_t l = 0; l <= layers; ++l) d.sizes.push_back(r.u32_in("a layer width", 1, kMaxDim));
  for (uint32_t l = 0; l < layers; ++l) {
    d.weights.push_back(r.f32s(static_cast<size_t>(d.sizes[l]) * d.sizes[l + 1], "the weights"));
    d.biases.push_back(r.f32s(d.sizes[l + 1], "the biases"));
  }
  if (r.pos() != size - kHeaderBytes - 8)
    r.fail(std::to_string(size - kHeaderBytes - 8 - r.pos()) + " unexpected bytes before the checksum");
  validate(d, name);
  return d;
}

PolicyData read_policy_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the policy file");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": read error");
  return decode(bytes.data(), bytes.size(), path);
}

Policy::Policy(PolicyData data, const std::string& name) : d_(std::move(data)) {
  validate(d_, name);
  const uint32_t widest = *std::max_element(d_.sizes.begin(), d_.sizes.end());
  buf_a_.assign(widest, 0.f);
  buf_b_.assign(widest, 0.f);
}

void Policy::safe_action(double* action) const {
  for (uint32_t j = 0; j < d_.act_dim; ++j) action[j] = std::min(d_.act_high[j], std::max(d_.act_low[j], 0.0));
}

bool Policy::act(const double* obs, double* action) {
  ++calls_;
  const uint32_t od = d_.obs_dim;
  float* x = buf_a_.data();
  for (uint32_t j = 0; j < od; ++j) {
    double v = obs[j];
    if (!std::isfinite(v)) {
      ++faults_;
      safe_action(action);
      return false;
    }
    if (d_.normalize) {
      v = (v - d_.obs_center[j]) / d_.obs_scale[j];
      v = std::min(d_.obs_clip, std::max(-d_.obs_clip, v));
    }
    x[j] = static_cast<float>(v);
  }
  // The forward of training's rollouts too (core/small_mlp.h).
  MlpLayer layers[kMaxLayers];
  const size_t n_layers = d_.sizes.size() - 1;
  for (size_t l = 0; l < n_layers; ++l)
    layers[l] = {d_.weights[l].data(), d_.biases[l].data(), static_cast<int>(d_.sizes[l]),
                 static_cast<int>(d_.sizes[l + 1])};
  const float* y = mlp_forward(layers, n_layers, static_cast<ml3::Activation>(d_.activation), x, 1, buf_b_.data(),
                               buf_a_.data());
  for (uint32_t j = 0; j < d_.act_dim; ++j)
    if (!std::isfinite(y[j])) {
      ++faults_;
      safe_action(action);
      return false;
    }
  for (uint32_t j = 0; j < d_.act_dim; ++j)
    action[j] = std::min(d_.act_high[j], std::max(d_.act_low[j], static_cast<double>(y[j])));
  return true;
}

}  // namespace ml3::runtime
