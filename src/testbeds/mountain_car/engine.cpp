// The hand-derived mountain car meta-gradient (src/testbeds/mountain_car/engine.h).
//
// With tangents along the policy weights w = (w_0, w_1) carried through the
// rollout (forward mode: 2 directions per policy), the learned loss's inner
// gradient is g_k = mean_t dM(u_t)[udot_t^k], the directional derivatives of
// M at the rollout's inputs u_t = (p_t, v_t, a_t, d) along their tangents
// udot_t^k = (pdot, vdot, adot, 0) (d is detached). After w' = w - lr g, the
// task loss L(w') and v = dL/dw' come from a second rollout with tangents,
// and dL/dphi = sum_k v_k (-lr) dg_k/dphi: one backward pass through the
// stacked primal/tangent network with adjoint -lr v_k / T on every output
// row of tangent block k and 0 on the primal rows.
//
// The rollout follows src/testbeds/mountain_car/mountain_car.cpp's LibTorch one: the action clamp
// passes the tangent inside [-0.25, 0.25] (bounds included) and none outside;
// the state bounds and the stop at the left wall change values only (their
// tangents pass, as the reference's in-place clamps).
#include "src/testbeds/mountain_car/engine.h"

#include <algorithm>
#include <cmath>

#include "src/policy/elu_tangent.h"
#include "core/error.h"

namespace ml3 {

namespace {

// One policy's rollout with the tangents of its states and actions along w_0, w_1.
template <typename T>
struct TangentRollout {
  std::vector<T> p, v, a;             // p, v: T+1 states; a: T actions
  std::vector<T> dp[2], dv[2], da[2];  // d/dw_k of the same

  void run(double w0, double w1, int horizon) {
    p.assign(horizon + 1, T(0)), v.assign(horizon + 1, T(0)), a.assign(horizon, T(0));
    for (int k = 0; k < 2; ++k) dp[k].assign(horizon + 1, T(0)), dv[k].assign(horizon + 1, T(0)), da[k].assign(horizon, T(0));
    p[0] = static_cast<T>(mc::kStart[0]), v[0] = static_cast<T>(mc::kStart[1]);
    const T W[2] = {static_cast<T>(w0), static_cast<T>(w1)};
    const T m = static_cast<T>(mc::kMass), g = static_cast<T>(mc::kGravity), kf = static_cast<T>(mc::kFriction);
    const T dt = static_cast<T>(mc::kDt), amax = static_cast<T>(mc::kMaxAction);
    for (int t = 0; t < horizon; ++t) {
      const T pt = p[t], vt = v[t];
      const T u = pt * W[0] + vt * W[1];
      const bool inside = u >= -amax && u <= amax;
      const T at = std::min(amax, std::max(-amax, u));
      const T vn = vt + (g * m * std::cos(T(3) * pt) + at / m - kf * vt) * dt;
      const T pn = pt + vn * dt;
      a[t] = at;
      for (int k = 0; k < 2; ++k) {
        const T du = dp[k][t] * W[0] + dv[k][t] * W[1] + (k == 0 ? pt : vt);
        const T dat = inside ? du : T(0);
        const T dvn = dv[k][t] + (-T(3) * g * m * std::sin(T(3) * pt) * dp[k][t] + dat / m - kf * dv[k][t]) * dt;
        da[k][t] = dat;
        dv[k][t + 1] = dvn;
        dp[k][t + 1] = dp[k][t] + dvn * dt;
      }
      T vc = std::min(static_cast<T>(mc::kMaxSpeed), std::max(static_cast<T>(-mc::kMaxSpeed), vn));
      const T pc = std::min(static_cast<T>(mc::kMaxPos), std::max(static_cast<T>(mc::kMinPos), pn));
      if (pc <= static_cast<T>(mc::kMinPos) && vc < T(0)) vc = T(0);
      p[t + 1] = pc, v[t + 1] = vc;
    }
  }

  // |s_from..s_to-1 - target| (Frobenius) and its derivative along w_0, w_1.
  T distance(int from, int to, const double* target, T* d) const {
    T sq = 0, dsq[2] = {0, 0};
    for (int t = from; t < to; ++t) {
      const T ep = p[t] - static_cast<T>(target[0]), ev = v[t] - static_cast<T>(target[1]);
      sq += ep * ep + ev * ev;
      for (int k = 0; k < 2; ++k) dsq[k] += ep * dp[k][t] + ev * dv[k][t];
    }
    const T n = std::sqrt(sq);
    for (int k = 0; k < 2; ++k) d[k] += dsq[k] / n;
    return n;
  }
};

}  // namespace

template <typename T>
struct MountainCarEngine<T>::Impl {
  std::vector<int> sizes;
  int horizon = 35, pool = 1;
  double lr = 1e-3;
  bool shaping = true;
  EluTangentPass<T> net;
  std::vector<TangentRollout<T>> before, after;
  typename EluTangentPass<T>::Mat bar;
};

template <typename T>
MountainCarEngine<T>::MountainCarEngine(std::vector<int> loss_sizes, int horizon, double inner_lr, bool shaping,
                                        int pool)
    : impl_(std::make_unique<Impl>()) {
  if (loss_sizes.size() < 2 || loss_sizes.front() != 4 || loss_sizes.back() != 1)
    throw Error("mountain car: the learned loss must be 4-...-1");
  if (horizon < 1 || pool < 1) throw Error("mountain car: horizon and pool size must be >= 1");
  Impl& s = *impl_;
  s.sizes = std::move(loss_sizes), s.horizon = horizon, s.pool = pool, s.lr = inner_lr, s.shaping = shaping;
  s.net.resize(s.sizes, pool * horizon, 2);
  s.before.resize(pool), s.after.resize(pool);
  s.bar = EluTangentPass<T>::Mat::Zero(3 * pool * horizon, 1);
}

template <typename T>
MountainCarEngine<T>::~MountainCarEngine() = default;

template <typename T>
size_t MountainCarEngine<T>::num_params() const {
  return impl_->net.num_params();
}

template <typename T>
MountainCarStep MountainCarEngine<T>::meta_grad(const T* phi, const std::vector<std::array<double, 2>>& pool, T* gphi) {
  Impl& s = *impl_;
  const int H = s.horizon, P = s.pool, n = P * H;
  if (static_cast<int>(pool.size()) != P) throw Error("mountain car: pool size mismatch");
  // Rollouts of the pool with tangents; the loss network's inputs.
  auto in = s.net.primal_input();
  auto t0 = s.net.tangent_input(0), t1 = s.net.tangent_input(1);
  for (int q = 0; q < P; ++q) {
    TangentRollout<T>& r = s.before[q];
    r.run(pool[q][0], pool[q][1], H);
    const T ep = r.p[H] - static_cast<T>(mc::kGoal[0]), ev = r.v[H] - static_cast<T>(mc::kGoal[1]);
    const T d = std::sqrt(ep * ep + ev * ev);
    for (int t = 0; t < H; ++t) {
      const int row = q * H + t;
      in(row, 0) = r.p[t], in(row, 1) = r.v[t], in(row, 2) = r.a[t], in(row, 3) = d;
      t0(row, 0) = r.dp[0][t], t0(row, 1) = r.dv[0][t], t0(row, 2) = r.da[0][t];
      t1(row, 0) = r.dp[1][t], t1(row, 1) = r.dv[1][t], t1(row, 2) = r.da[1][t];
    }
  }
  s.net.forward(phi);
  const auto o = s.net.output();
  const auto o0 = s.net.tangent_output(0), o1 = s.net.tangent_output(1);
  MountainCarStep out;
  out.w_after.resize(P), out.final_positions.resize(P);
  for (int q = 0; q < P; ++q) {
    T lin = 0, g[2] = {0, 0};
    for (int t = 0; t < H; ++t) lin += o(q * H + t, 0), g[0] += o0(q * H + t, 0), g[1] += o1(q * H + t, 0);
    out.inner_loss += static_cast<double>(lin / static_cast<T>(H));
    // w' = w - lr g, in T like the rollouts.
    for (int k = 0; k < 2; ++k)
      out.w_after[q][k] = static_cast<double>(static_cast<T>(pool[q][k]) - static_cast<T>(s.lr) * (g[k] / static_cast<T>(H)));
  }
  // Task loss after the step and its gradient wrt w'.
  for (int q = 0; q < P; ++q) {
    TangentRollout<T>& r = s.after[q];
    r.run(out.w_after[q][0], out.w_after[q][1], H);
    T dl[2] = {0, 0}, loss;
    if (s.shaping) {
      const int k = std::min(mc::kShapedSteps, H + 1);
      loss = r.distance(0, k, mc::kIntermediate, dl);
      if (k < H + 1) loss += r.distance(k, H + 1, mc::kGoal, dl);
    } else {
      loss = r.distance(0, H + 1, mc::kGoal, dl);
    }
    out.task_loss += static_cast<double>(loss) / P;
    out.final_positions[q] = static_cast<double>(r.p[H]);
    // Adjoints of the tangent outputs: -lr (dL_T/dw'_k) / T, with dL_T/dw' = dl / P.
    for (int k = 0; k < 2; ++k) {
      const T b = -static_cast<T>(s.lr) * dl[k] / static_cast<T>(P) / static_cast<T>(H);
      for (int t = 0; t < H; ++t) s.bar((1 + k) * n + q * H + t, 0) = b;
    }
  }
  s.net.backward(phi, s.bar, gphi);
  return out;
}

template class MountainCarEngine<float>;
template class MountainCarEngine<double>;

}  // namespace ml3
