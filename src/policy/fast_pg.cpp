#include "src/policy/fast_pg.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "src/policy/blas.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace ml3 {

// ---- small_gemm: AVX-512 products for the fast path --------------------------
// C[m x n] = op(A)[m x k] op(B)[k x n], all row-major. The register tile is 4
// rows x 64 columns of C (16 accumulators of 16 floats): each step over k
// loads 4 vectors of op(B)'s row and broadcasts 4 entries of op(A), so op(A)
// is read with any strides (transposed for free) and op(B) must have
// contiguous rows (a transposed B is copied first into a per-thread buffer).
// The sum over k runs in index order with one fused multiply-add per term, so
// the result depends only on the operands, not on the tile a row falls into.
namespace {

#if defined(__x86_64__) && defined(__GNUC__)
#define ML3_SMALL_GEMM_AVX512 1
[[gnu::target("avx512f"), gnu::always_inline]] inline void store512(float* row, const __mmask16* mk, __m512 v0,
                                                                      __m512 v1, __m512 v2, __m512 v3) {
  _mm512_mask_storeu_ps(row, mk[0], v0);
  _mm512_mask_storeu_ps(row + 16, mk[1], v1);
  _mm512_mask_storeu_ps(row + 32, mk[2], v2);
  _mm512_mask_storeu_ps(row + 48, mk[3], v3);
}

// Rows i .. i+R-1 (R = 4 or 1) of C's 64 columns from j: the accumulators are
// named variables (GCC spills an array of them to memory on every step), and
// the columns past n are masked (mask 0: loaded as zero, never stored).
template <int R>
[[gnu::target("avx512f")]] void tile512(int k, const float* a, ptrdiff_t sa_i, ptrdiff_t sa_p, const float* b,
                                        int ldb, const __mmask16* mk, float* c, int ldc) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
  __m512 c10 = c00, c11 = c00, c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
  __m512 c30 = c00, c31 = c00, c32 = c00, c33 = c00;
  for (int p = 0; p < k; ++p) {
    const float* bp = b + static_cast<ptrdiff_t>(p) * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(mk[0], bp), b1 = _mm512_maskz_loadu_ps(mk[1], bp + 16);
    const __m512 b2 = _mm512_maskz_loadu_ps(mk[2], bp + 32), b3 = _mm512_maskz_loadu_ps(mk[3], bp + 48);
    const float* ap = a + p * sa_p;
    __m512 x = _mm512_set1_ps(ap[0]);
    c00 = _mm512_fmadd_ps(x, b0, c00), c01 = _mm512_fmadd_ps(x, b1, c01);
    c02 = _mm512_fmadd_ps(x, b2, c02), c03 = _mm512_fmadd_ps(x, b3, c03);
    if (R == 4) {
      x = _mm512_set1_ps(ap[sa_i]);
      c10 = _mm512_fmadd_ps(x, b0, c10), c11 = _mm512_fmadd_ps(x, b1, c11);
      c12 = _mm512_fmadd_ps(x, b2, c12), c13 = _mm512_fmadd_ps(x, b3, c13);
      x = _mm512_set1_ps(ap[2 * sa_i]);
      c20 = _mm512_fmadd_ps(x, b0, c20), c21 = _mm512_fmadd_ps(x, b1, c21);
      c22 = _mm512_fmadd_ps(x, b2, c22), c23 = _mm512_fmadd_ps(x, b3, c23);
      x = _mm512_set1_ps(ap[3 * sa_i]);
      c30 = _mm512_fmadd_ps(x, b0, c30), c31 = _mm512_fmadd_ps(x, b1, c31);
      c32 = _mm512_fmadd_ps(x, b2, c32), c33 = _mm512_fmadd_ps(x, b3, c33);
    }
  }
  store512(c, mk, c00, c01, c02, c03);
  if (R == 4) {
    store512(c + ldc, mk, c10, c11, c12, c13);
    store512(c + 2 * static_cast<ptrdiff_t>(ldc), mk, c20, c21, c22, c23);
    store512(c + 3 * static_cast<ptrdiff_t>(ldc), mk, c30, c31, c32, c33);
  }
}

[[gnu::target("avx512f")]] void gemm512(bool ta, int m, int n, int k, const float* a, int lda, const float* b,
                                        int ldb, float* c) {
  const ptrdiff_t sa_i = ta ? 1 : lda, sa_p = ta ? lda : 1;  // op(A)(i, p) = a[i sa_i + p sa_p]
  for (int j = 0; j < n; j += 64) {
    __mmask16 mk[4];
    for (int v = 0; v < 4; ++v) {
      const int cols = std::max(0, std::min(16, n - j - 16 * v));
      mk[v] = static_cast<__mmask16>((1u << cols) - 1u);
    }
    int i = 0;
    for (; i + 4 <= m; i += 4) tile512<4>(k, a + i * sa_i, sa_i, sa_p, b + j, ldb, mk, c + i * n + j, n);
    for (; i < m; ++i) tile512<1>(k, a + i * sa_i, sa_i, sa_p, b + j, ldb, mk, c + i * n + j, n);
  }
}

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
#endif

}  // namespace

const char* small_gemm_kernel() {
#ifdef ML3_SMALL_GEMM_AVX512
  if (cpu_has_avx512()) return "own AVX-512 kernel";
#endif
  return "BLAS";
}

void small_gemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float* c) {
#ifdef ML3_SMALL_GEMM_AVX512
  // Narrow outputs (the networks' output layers) fill a vector poorly: BLAS.
  if (n >= 16 && cpu_has_avx512()) {
    if (tb) {  // op(B) = B^T: copy it to contiguous rows
      thread_local std::vector<float> bt;
      bt.resize(static_cast<size_t>(k) * n);
      for (int j = 0; j < n; ++j)
        for (int p = 0; p < k; ++p) bt[static_cast<size_t>(p) * n + j] = b[static_cast<ptrdiff_t>(j) * ldb + p];
      gemm512(ta, m, n, k, a, lda, bt.data(), n, c);
    } else {
      gemm512(ta, m, n, k, a, lda, b, ldb, c);
    }
    return;
  }
#endif
  gemm(ta, tb, m, n, k, a, lda, b, ldb, c);
}

SmallMlp::SmallMlp(std::vector<int> sizes, Activation act) : sizes_(std::move(sizes)), act_(act), h_(sizes_.size()) {
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
    small_gemm(false, false, rows, p.out, p.in, h_[l].data(), p.in, p.w, p.out, h_[l + 1].data());
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
    small_gemm(true, false, p.in, p.out, rows, h_[l].data(), p.in, d_.data(), p.out, const_cast<float*>(g.w));
    Eigen::Map<Eigen::RowVectorXf>(const_cast<float*>(g.b), p.out) = D.colwise().sum();
    if (l == 0) break;
    small_gemm(false, true, rows, p.in, p.out, d_.data(), p.out, p.w, p.out, d_prev_.data());
    // Derivative of the activation from its output h = act(u).
    Eigen::Map<RowMatrixXf> dm(d_prev_.data(), rows, p.in);
    const Eigen::Map<const RowMatrixXf> hm(h_[l].data(), rows, p.in);
    switch (act_) {
      case Activation::Tanh: dm.array() *= 1.f - hm.array().square(); break;
      case Activation::Relu: dm.array() *= (hm.array() > 0.f).cast<float>(); break;
      case Activation::Elu: dm.array() *= (hm.array() > 0.f).select(1.f, hm.array() + 1.f); break;
      case Activation::None: break;
    }
    d_.swap(d_prev_);
  }
}

GemmTiming time_small_gemm(int m, int n, int k, double seconds) {
  std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(k) * n), c(static_cast<size_t>(m) * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 17) / 17.f - 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 13) / 13.f - 0.5f;
  using Clock = std::chrono::steady_clock;
  const auto best_us = [&](bool own, double budget, double best) {
    const auto t0 = Clock::now();
    int reps = 0;
    do {
      for (int r = 0; r < 16; ++r, ++reps) {
        if (own)
          small_gemm(false, false, m, n, k, a.data(), k, b.data(), n, c.data());
        else
          gemm(false, false, m, n, k, a.data(), k, b.data(), n, c.data());
      }
    } while (std::chrono::duration<double>(Clock::now() - t0).count() < budget);
    return std::min(best, std::chrono::duration<double>(Clock::now() - t0).count() / reps * 1e6);
  };
  GemmTiming t{1e30, 1e30};
  for (int round = 0; round < 5; ++round) {
    t.small_gemm_us = best_us(true, seconds / 10, t.small_gemm_us);
    t.blas_us = best_us(false, seconds / 10, t.blas_us);
  }
  return t;
}

FastPolicyGradient::FastPolicyGradient(std::vector<int> policy_sizes, Activation policy_act, double log_std_min,
                                       double log_std_max, std::vector<int> value_sizes, Activation value_act)
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
                                                     float* grad, Drift* drift, double progress) {
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
  for (auto* v : {&logp_, &ratio_, &log_ratio_, &drift_, &drift_grad_}) v->resize(std::max<size_t>(v->size(), n));
  for (int i = 0; i < n; ++i) {
    float logp = 0.f;
    for (int j = 0; j < ad; ++j) {
      const float z = (act_[i * ad + j] - mean[i * ad + j]) * isp[j];
      logp += -0.5f * z * z - lsp[j] - log_sqrt_2pi;
    }
    logp_[i] = logp;
    log_ratio_[i] = logp - old_logp_[i];
    ratio_[i] = std::exp(log_ratio_[i]);
  }
  const bool with_drift = kind == PgLoss::Ppo && drift != nullptr;
  if (with_drift)
    drift->evaluate(n, ratio_.data(), log_ratio_.data(), adv_.data(), static_cast<float>(progress), drift_.data(),
                    drift_grad_.data());
  double loss = 0, kl = 0, clipped = 0;
  for (int i = 0; i < n; ++i) {
    const float a = adv_[i];
    float g;  // d loss / d logp_i
    if (kind == PgLoss::Reinforce) {
      loss += -static_cast<double>(logp_[i]) * a;
      g = -a / n;
    } else {
      const float log_ratio = log_ratio_[i], ratio = ratio_[i];
      const float s1 = ratio * a, s2 = std::min(hi_r, std::max(lo_r, ratio)) * a;
      loss += -static_cast<double>(std::min(s1, s2));
      // min() passes the gradient to s1 when s1 <= s2; the clamped s2 then
      // has none (a tie inside the clip range gives the same value).
      g = s1 <= s2 ? -a * ratio / n : 0.f;
      if (with_drift) {
        loss += drift_[i];
        g += drift_grad_[i] / n;
      }
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
