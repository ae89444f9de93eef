#include "src/fast_pg.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "src/blas.h"

namespace ml3 {

SmallMlp::SmallMlp(std::vector<int> sizes, MlpAct act) : sizes_(std::move(sizes)), act_(act), h_(sizes_.size()) {
  for (size_t l = 0; l + 1 < sizes_.size(); ++l) n_params_ += static_cast<size_t>(sizes_[l] + 1) * sizes_[l + 1];
}

MlpLayer SmallMlp::layer(const float* flat, size_t l) const {
  size_t off = 0;
  for (size_t k = 0; k < l; ++k) off += static_cast<size_t>(sizes_[k] + 1) * sizes_[k + 1];
  return {flat + off, flat + off + static_cast<size_t>(sizes_[l]) * sizes_[l + 1], sizes_[l], sizes_[l + 1]};
}

const float* SmallMlp::forward(const float* flat, const float* x, int rows) {
  const size_t L = sizes_.size() - 1;
  rows_ = rows;
  for (size_t l = 0; l <= L; ++l)
    if (h_[l].size() < static_cast<size_t>(rows) * sizes_[l]) h_[l].resize(static_cast<size_t>(rows) * sizes_[l]);
  std::memcpy(h_[0].data(), x, sizeof(float) * rows * sizes_[0]);
  for (size_t l = 0; l < L; ++l) {
    const MlpLayer p = layer(flat, l);
    gemm(false, false, rows, p.out, p.in, h_[l].data(), p.in, p.w, p.out, h_[l + 1].data());
    mlp_bias_act(p, act_, l + 1 == L, rows, h_[l + 1].data());
  }
  return h_[L].data();
}

void SmallMlp::backward(const float* flat, const float* dy, float* grad) {
  const size_t L = sizes_.size() - 1;
  const int rows = rows_;
  int widest = 0;
  for (int s : sizes_) widest = std::max(widest, s);
  if (d_.size() < static_cast<size_t>(rows) * widest) d_.resize(static_cast<size_t>(rows) * widest);
  if (d_prev_.size() < d_.size()) d_prev_.resize(d_.size());
  std::memcpy(d_.data(), dy, sizeof(float) * rows * sizes_.back());
  for (size_t l = L; l-- > 0;) {
    const MlpLayer p = layer(flat, l), g = layer(grad, l);
    const Eigen::Map<const RowMatrixXf> D(d_.data(), rows, p.out);
    gemm(true, false, p.in, p.out, rows, h_[l].data(), p.in, d_.data(), p.out, const_cast<float*>(g.w));
    Eigen::Map<Eigen::RowVectorXf>(const_cast<float*>(g.b), p.out) = D.colwise().sum();
    if (l == 0) break;
    gemm(false, true, rows, p.in, p.out, d_.data(), p.out, p.w, p.out, d_prev_.data());
    // Derivative of the activation from its output h = act(u).
    Eigen::Map<RowMatrixXf> dm(d_prev_.data(), rows, p.in);
    const Eigen::Map<const RowMatrixXf> hm(h_[l].data(), rows, p.in);
    switch (act_) {
      case MlpAct::Tanh: dm.array() *= 1.f - hm.array().square(); break;
      case MlpAct::Relu: dm.array() *= (hm.array() > 0.f).cast<float>(); break;
      case MlpAct::Elu: dm.array() *= (hm.array() > 0.f).select(1.f, hm.array() + 1.f); break;
      case MlpAct::None: break;
    }
    d_.swap(d_prev_);
  }
}

FastPolicyGradient::FastPolicyGradient(std::vector<int> policy_sizes, MlpAct policy_act, double log_std_min,
                                       double log_std_max, std::vector<int> value_sizes, MlpAct value_act)
    : obs_dim_(policy_sizes.front()),
      act_dim_(policy_sizes.back()),
      log_std_min_(log_std_min),
      log_std_max_(log_std_max) {
  policy_ = SmallMlp(std::move(policy_sizes), policy_act);
  ls_.resize(act_dim_);
  inv_std_.resize(act_dim_);
  value_ = SmallMlp(std::move(value_sizes), value_act);
}

void FastPolicyGradient::gather(const FastRows& all, const int64_t* idx, int64_t n) {
  n_ = n;
  const size_t od = obs_dim_, ad = act_dim_;
  obs_.resize(std::max(obs_.size(), n * od));
  act_.resize(std::max(act_.size(), n * ad));
  for (auto* v : {&old_logp_, &adv_, &ret_, &dv_}) v->resize(std::max<size_t>(v->size(), n));
  dmean_.resize(std::max(dmean_.size(), n * ad));
  for (int64_t k = 0; k < n; ++k) {
    const int64_t r = idx ? idx[k] : k;
    std::memcpy(&obs_[k * od], all.obs + r * od, sizeof(float) * od);
    std::memcpy(&act_[k * ad], all.actions + r * ad, sizeof(float) * ad);
    old_logp_[k] = all.old_logp[r];
    adv_[k] = all.advantages[r];
    ret_[k] = all.returns[r];
  }
}

FastPolicyStats FastPolicyGradient::policy_loss_grad(const float* p, PgLoss kind, double clip, double entropy_coef,
                                                     float* grad) {
  const int n = static_cast<int>(n_), ad = act_dim_;
  const float* mean = policy_.forward(p, obs_.data(), n);
  const float* raw_ls = p + policy_.num_params();
  float* g_ls = grad + policy_.num_params();
  // GaussianPolicy::log_std / log_prob / entropy, in float like LibTorch.
  float* lsp = ls_.data();
  float* isp = inv_std_.data();
  const float lo = static_cast<float>(log_std_min_), hi = static_cast<float>(log_std_max_);
  const float log_sqrt_2pi = static_cast<float>(0.5 * std::log(2.0 * M_PI));
  FastPolicyStats st;
  for (int j = 0; j < ad; ++j) {
    lsp[j] = std::min(hi, std::max(lo, raw_ls[j]));
    isp[j] = std::exp(-lsp[j]);
    st.entropy += lsp[j] + 0.5 * (1.0 + std::log(2.0 * M_PI));
    g_ls[j] = 0.f;
  }
  const float lo_r = static_cast<float>(1.0 - clip), hi_r = static_cast<float>(1.0 + clip);
  double loss = 0, kl = 0, clipped = 0;
  for (int i = 0; i < n; ++i) {
    float logp = 0.f;
    for (int j = 0; j < ad; ++j) {
      const float z = (act_[i * ad + j] - mean[i * ad + j]) * isp[j];
      logp += -0.5f * z * z - lsp[j] - log_sqrt_2pi;
    }
    const float a = adv_[i];
    float g;  // d loss / d logp_i
    if (kind == PgLoss::Reinforce) {
      loss += -static_cast<double>(logp) * a;
      g = -a / n;
    } else {
      const float log_ratio = logp - old_logp_[i];
      const float ratio = std::exp(log_ratio);
      const float s1 = ratio * a, s2 = std::min(hi_r, std::max(lo_r, ratio)) * a;
      loss += -static_cast<double>(std::min(s1, s2));
      // min() passes the gradient to s1 when s1 <= s2; the clamped s2 then
      // has none (a tie inside the clip range gives the same value).
      g = s1 <= s2 ? -a * ratio / n : 0.f;
      kl += (static_cast<double>(ratio) - 1.0) - log_ratio;
      clipped += std::abs(ratio - 1.f) > clip ? 1.0 : 0.0;
    }
    for (int j = 0; j < ad; ++j) {
      const float z = (act_[i * ad + j] - mean[i * ad + j]) * isp[j];
      dmean_[i * ad + j] = g * z * isp[j];  // d logp / d mean = z / std
      g_ls[j] += g * (z * z - 1.f);         // d logp / d log_std = z^2 - 1
    }
  }
  for (int j = 0; j < ad; ++j) {
    g_ls[j] -= static_cast<float>(entropy_coef);
    if (raw_ls[j] < lo || raw_ls[j] > hi) g_ls[j] = 0.f;  // clamp passes no gradient outside
  }
  policy_.backward(p, dmean_.data(), grad);
  st.loss = loss / n;
  st.approx_kl = kl / n;
  st.clip_fraction = clipped / n;
  return st;
}

double FastPolicyGradient::value_loss_grad(const float* v, float* grad) {
  const int n = static_cast<int>(n_);
  const float* out = value_.forward(v, obs_.data(), n);
  double loss = 0;
  for (int i = 0; i < n; ++i) {
    const float d = out[i] - ret_[i];
    loss += 0.5 * static_cast<double>(d) * d;
    dv_[i] = d / n;
  }
  value_.backward(v, dv_.data(), grad);
  return loss / n;
}

double clip_grad_norm_flat(float* g, size_t n, double max_norm) {
  double sq = 0.0;
  for (size_t i = 0; i < n; ++i) sq += static_cast<double>(g[i]) * g[i];
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const float s = static_cast<float>(max_norm / (norm + 1e-6));
    for (size_t i = 0; i < n; ++i) g[i] *= s;
  }
  return norm;
}

}  // namespace ml3
