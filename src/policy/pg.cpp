#include "src/policy/pg.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/adam.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/small_mlp.h"

namespace ml3 {
namespace {
constexpr uint64_t kNoiseStream = 0x4E4F495345ull;  // "NOISE"
}

Batch collect(VecEnv& venv, const GaussianPolicy& policy, const Params& params, const ObsNormalizer& norm,
              const std::vector<Task>& tasks, uint64_t seed, bool deterministic, bool expert_labels) {
  torch::NoGradGuard no_grad;
  const EnvSpec& spec = venv.spec();
  const int N = venv.size(), T = spec.episode_steps, od = spec.obs_dim, ad = spec.act_dim;
  if (static_cast<int>(tasks.size()) != N) throw Error("internal: collect() needs one task per env");
  Batch b;
  b.T = T, b.N = N;
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  b.obs = torch::zeros({T, N, od}, f32);
  b.raw_obs = torch::zeros({T, N, od}, f32);
  b.actions = torch::zeros({T, N, ad}, f32);
  b.logp = torch::zeros({T, N}, f32);
  b.rewards = torch::zeros({T, N}, f32);
  b.terminated = torch::zeros({T, N}, f32);
  b.truncated = torch::zeros({T, N}, f32);
  b.mask = torch::zeros({T, N}, f32);
  b.trunc_obs = torch::zeros({T, N, od}, f32);
  b.time_frac = (torch::arange(T, f32) / static_cast<float>(T)).unsqueeze(1).expand({T, N}).contiguous();
  {
    auto g = torch::zeros({N, spec.goal_dim}, f32);
    for (int i = 0; i < N; ++i)
      for (int k = 0; k < spec.goal_dim; ++k) g[i][k] = tasks[i].goal[k];
    b.goals = g.unsqueeze(0).expand({T, N, spec.goal_dim}).contiguous();
  }

  std::vector<uint64_t> seeds(N);
  std::vector<Rng> noise;
  for (int i = 0; i < N; ++i) {
    seeds[i] = mix_seed(seed, i);
    noise.emplace_back(mix_seed(seed ^ kNoiseStream, i));
  }
  std::vector<double> obs(N * od), act(N * ad), rew(N), ret(N, 0.0), final_dist(N, 0.0);
  std::vector<uint8_t> term(N), trunc(N), alive(N, 1), success(N, 0);
  std::vector<StepInfo> info(N);
  std::vector<float> nobs(N * od);
  const Tensor log_std_t = policy.log_std(params).to(torch::kFloat64).contiguous();
  std::vector<double> log_std(log_std_t.data_ptr<double>(), log_std_t.data_ptr<double>() + ad);
  double logp_const = 0;
  for (int j = 0; j < ad; ++j) logp_const += -log_std[j] - 0.5 * std::log(2.0 * M_PI);

  // The mean through core/small_mlp.h (GaussianPolicy::small_forward) or LibTorch.
  const bool small = policy.small_forward() && params[0].scalar_type() == torch::kFloat32;
  std::vector<float> flat, buf_a, buf_b;
  std::vector<MlpLayer> layers;
  Activation hidden_act = Activation::None;
  if (small) {
    const FunctionalMlp& mlp = policy.mlp();
    const auto& sizes = mlp.sizes();
    for (size_t k = 0; k < mlp.num_tensors(); ++k) {
      const Tensor t = params[k].detach().contiguous();
      flat.insert(flat.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
    for (size_t l = 0, off = 0; l + 1 < sizes.size(); ++l) {
      const size_t nw = static_cast<size_t>(sizes[l]) * sizes[l + 1];
      layers.push_back({flat.data() + off, flat.data() + off + nw, sizes[l], sizes[l + 1]});
      off += nw + sizes[l + 1];
    }
    const int widest = *std::max_element(sizes.begin(), sizes.end());
    buf_a.resize(static_cast<size_t>(N) * widest), buf_b.resize(static_cast<size_t>(N) * widest);
    hidden_act = mlp.activation();
  }

  venv.reset(seeds, tasks, obs.data());
  float* obs_p = b.obs.data_ptr<float>();
  float* raw_p = b.raw_obs.data_ptr<float>();
  float* act_p = b.actions.data_ptr<float>();
  float* logp_p = b.logp.data_ptr<float>();
  float* rew_p = b.rewards.data_ptr<float>();
  float* term_p = b.terminated.data_ptr<float>();
  float* trunc_p = b.truncated.data_ptr<float>();
  float* mask_p = b.mask.data_ptr<float>();
  float* tobs_p = b.trunc_obs.data_ptr<float>();
  std::vector<double> expert(expert_labels ? N * ad : 0);
  if (expert_labels) b.expert = torch::zeros({T, N, ad}, f32);
  for (int t = 0; t < T; ++t) {
    if (expert_labels) {
      venv.expert_actions(expert.data());
      float* e = b.expert.data_ptr<float>() + static_cast<int64_t>(t) * N * ad;
      for (int k = 0; k < N * ad; ++k) e[k] = static_cast<float>(expert[k]);
    }
    norm.normalize(obs.data(), nobs.data(), N);
    std::memcpy(obs_p + static_cast<int64_t>(t) * N * od, nobs.data(), sizeof(float) * N * od);
    for (int k = 0; k < N * od; ++k) raw_p[static_cast<int64_t>(t) * N * od + k] = static_cast<float>(obs[k]);
    Tensor mean;
    const float* mean_p;
    if (small) {
      mean_p = mlp_forward(layers.data(), layers.size(), hidden_act, nobs.data(), N, buf_a.data(), buf_b.data());
    } else {
      mean = policy.mean(torch::from_blob(nobs.data(), {N, od}, f32), params).contiguous();
      mean_p = mean.data_ptr<float>();
    }
    for (int i = 0; i < N; ++i) {
      double lp = logp_const;
      for (int j = 0; j < ad; ++j) {
        const double eps = deterministic ? 0.0 : noise[i].normal();
        const double a = mean_p[i * ad + j] + std::exp(log_std[j]) * eps;
        act[i * ad + j] = a;
        act_p[(static_cast<int64_t>(t) * N + i) * ad + j] = static_cast<float>(a);
        lp += -0.5 * eps * eps;
      }
      logp_p[t * N + i] = static_cast<float>(lp);
    }
    venv.step(act.data(), obs.data(), rew.data(), term.data(), trunc.data(), info.data());
    for (int i = 0; i < N; ++i) {
      const int64_t r = static_cast<int64_t>(t) * N + i;
      mask_p[r] = alive[i];
      if (!alive[i]) continue;
      rew_p[r] = static_cast<float>(rew[i]);
      ret[i] += rew[i];
      term_p[r] = term[i];
      trunc_p[r] = trunc[i] && !term[i];
      if (trunc_p[r] != 0.f) norm.normalize(&obs[i * od], tobs_p + r * od, 1);
      if (term[i] || trunc[i] || t == T - 1) {
        final_dist[i] = info[i].distance;
        success[i] = info[i].success;
        alive[i] = 0;
      }
    }
  }
  for (int i = 0; i < N; ++i) {
    b.return_mean += ret[i] / N;
    b.success_rate += static_cast<double>(success[i]) / N;
    b.final_distance_mean += final_dist[i] / N;
  }
  return b;
}

void compute_values(Batch& b, const FunctionalMlp& value_net, const Params& vparams) {
  torch::NoGradGuard no_grad;
  b.values = value_net.forward(b.obs, vparams).squeeze(-1).contiguous();
  b.bootstrap = (value_net.forward(b.trunc_obs, vparams).squeeze(-1) * b.truncated).contiguous();
}

void compute_gae(Batch& b, double gamma, double lambda) {
  const int T = b.T, N = b.N;
  b.advantages = torch::zeros({T, N}, torch::kFloat32);
  const auto r = b.rewards.accessor<float, 2>();
  const auto v = b.values.accessor<float, 2>();
  const auto boot = b.bootstrap.accessor<float, 2>();
  const auto term = b.terminated.accessor<float, 2>();
  const auto trunc = b.truncated.accessor<float, 2>();
  const auto mask = b.mask.accessor<float, 2>();
  auto adv = b.advantages.accessor<float, 2>();
  for (int i = 0; i < N; ++i) {
    double gae = 0.0;
    for (int t = T - 1; t >= 0; --t) {
      if (mask[t][i] == 0.f) {
        gae = 0.0;
        continue;
      }
      const bool ends = term[t][i] != 0.f || trunc[t][i] != 0.f || t == T - 1;
      double next_v;
      if (term[t][i] != 0.f)
        next_v = 0.0;
      else if (trunc[t][i] != 0.f)
        next_v = boot[t][i];
      else
        next_v = (t + 1 < T) ? v[t + 1][i] : 0.0;
      const double delta = r[t][i] + gamma * next_v - v[t][i];
      gae = delta + (ends ? 0.0 : gamma * lambda * gae);
      adv[t][i] = static_cast<float>(gae);
    }
  }
  b.returns = b.advantages + b.values;
}

void compute_rtg(Batch& b, double gamma) {
  b.rtg = torch::zeros({b.T, b.N}, torch::kFloat32);
  const auto r = b.rewards.accessor<float, 2>();
  const auto mask = b.mask.accessor<float, 2>();
  auto out = b.rtg.accessor<float, 2>();
  for (int i = 0; i < b.N; ++i) {
    double g = 0.0;
    for (int t = b.T - 1; t >= 0; --t) {
      g = mask[t][i] != 0.f ? r[t][i] + gamma * g : 0.0;
      out[t][i] = static_cast<float>(g);
    }
  }
}

EvalResult evaluate(VecEnv& venv, const GaussianPolicy& policy, const Params& params, const ObsNormalizer& norm,
                    Split split, int episodes, uint64_t seed) {
  if (episodes != venv.size()) throw Error("internal: evaluate() runs one episode per env");
  const auto tasks = sample_tasks(venv.env(0), split, seed, episodes);
  const Batch b = collect(venv, policy, params, norm, tasks, eval_reset_stream(seed), true);
  EvalResult r;
  r.episodes = episodes;
  r.success_rate = b.success_rate;
  r.final_distance_mean = b.final_distance_mean;
  r.return_mean = b.return_mean;
  return r;
}

// ---- objectives ---------------------------------------------------------------
Tensor ReinforceObjective::policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats*) const {
  return -(ev.logp * mb.advantages).mean();
}

Tensor PpoObjective::policy_loss(const Minibatch& mb, const PolicyEval& ev, LossStats* stats) const {
  const Tensor log_ratio = ev.logp - mb.old_logp;
  const Tensor ratio = log_ratio.exp();
  const Tensor s1 = ratio * mb.advantages;
  const Tensor s2 = ratio.clamp(1.0 - clip_, 1.0 + clip_) * mb.advantages;
  if (stats) {
    torch::NoGradGuard no_grad;
    // Schulman's low-variance KL estimator, as in CleanRL.
    stats->approx_kl = ((ratio - 1) - log_ratio).mean().item<double>();
    stats->clip_fraction = ((ratio - 1.0).abs() > clip_).to(torch::kFloat32).mean().item<double>();
  }
  const Tensor surrogate = -torch::min(s1, s2).mean();
  if (!drift_) return surrogate;
  return surrogate + drift_values(*drift_, ratio, log_ratio, mb.advantages, progress_).mean();
}

Tensor drift_values(const Drift& d, const Tensor& ratio, const Tensor& log_ratio, const Tensor& adv, double progress) {
  const Tensor p = torch::full_like(adv, progress), zero = torch::zeros_like(adv);
  const Tensor x = torch::stack({ratio - 1, log_ratio, adv, (ratio - 1) * adv, log_ratio * adv, p}, -1).to(torch::kFloat32);
  const Tensor x0 = torch::stack({zero, zero, adv, zero, zero, p}, -1).to(torch::kFloat32);
  const std::vector<int>& sizes = d.sizes();
  const auto net = [&](Tensor h) {
    size_t off = 0;
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
      const int64_t in = sizes[l], out = sizes[l + 1];
      const float* w = d.params().data() + off;
      const Tensor W = torch::from_blob(const_cast<float*>(w), {in, out}, torch::kFloat32).clone();
      const Tensor b = torch::from_blob(const_cast<float*>(w + in * out), {out}, torch::kFloat32).clone();
      h = torch::matmul(h, W) + b;
      if (l + 2 < sizes.size()) h = torch::tanh(h);
      off += static_cast<size_t>(in + 1) * out;
    }
    return h.squeeze(-1);
  };
  const Tensor diff = net(x) - net(x0);
  return d.nonnegative() ? torch::relu(diff) : diff;
}

// ---- optimiser --------------------------------------------------------------------
Adam::Adam(const Params& params, double eps, double beta1, double beta2) : eps_(eps), b1_(beta1), b2_(beta2) {
  if (params.empty()) return;
  int64_t n = 0;
  for (const auto& p : params) {
    if (p.scalar_type() != params[0].scalar_type()) throw Error("internal: Adam needs parameters of one dtype");
    n += p.numel();
  }
  const auto opts = torch::TensorOptions().dtype(params[0].scalar_type());
  m_flat_ = torch::zeros({n}, opts);
  v_flat_ = torch::zeros({n}, opts);
  int64_t off = 0;
  for (const auto& p : params) {
    m_.push_back(m_flat_.narrow(0, off, p.numel()).view(p.sizes()));
    v_.push_back(v_flat_.narrow(0, off, p.numel()).view(p.sizes()));
    off += p.numel();
  }
}

void Adam::step_flat(float* params, const float* grads, size_t n, double lr) {
  if (!m_flat_.defined() || m_flat_.scalar_type() != torch::kFloat32 || static_cast<int64_t>(n) != m_flat_.numel())
    throw Error("internal: Adam::step_flat needs the float32 parameters it was made for");
  ++t_;
  adam_step(params, grads, m_flat_.data_ptr<float>(), v_flat_.data_ptr<float>(), n, AdamHyper{b1_, b2_, eps_}, t_, lr);
}

void Adam::step(Params& params, const std::vector<Tensor>& grads, double lr) {
  torch::NoGradGuard no_grad;
  ++t_;
  const AdamHyper h{b1_, b2_, eps_};
  for (size_t i = 0; i < params.size(); ++i) {
    // The one Adam kernel (core/adam.h), on the tensors' own memory.
    Tensor& p = params[i];
    if (!p.is_contiguous() || !m_[i].is_contiguous())
      throw Error("internal: Adam needs contiguous parameters");
    const Tensor g = grads[i].to(p.scalar_type()).contiguous();
    if (p.scalar_type() == torch::kFloat64)
      adam_step(p.data_ptr<double>(), g.data_ptr<double>(), m_[i].data_ptr<double>(), v_[i].data_ptr<double>(),
                static_cast<size_t>(p.numel()), h, t_, lr);
    else
      adam_step(p.data_ptr<float>(), g.data_ptr<float>(), m_[i].data_ptr<float>(), v_[i].data_ptr<float>(),
                static_cast<size_t>(p.numel()), h, t_, lr);
  }
}

void Adam::save(Archive& a, const std::string& prefix) const {
  put_params(a, prefix + "m/", m_);
  put_params(a, prefix + "v/", v_);
  a.put_f64(prefix + "t", {static_cast<double>(t_)});
}

void Adam::load(const Archive& a, const std::string& prefix) {
  // Into the flat state's views (shapes and dtype as constructed).
  torch::NoGradGuard no_grad;
  const Params m = get_params(a, prefix + "m/", m_.size()), v = get_params(a, prefix + "v/", v_.size());
  for (size_t i = 0; i < m_.size(); ++i) {
    if (m[i].sizes() != m_[i].sizes() || v[i].sizes() != v_[i].sizes())
      throw Error(a.path() + ": optimiser state " + prefix + " tensor " + std::to_string(i) + " has shape " +
                  c10::str(m[i].sizes()) + ", the network expects " + c10::str(m_[i].sizes()));
    m_[i].copy_(m[i]);
    v_[i].copy_(v[i]);
  }
  t_ = static_cast<int64_t>(a.get_f64(prefix + "t").at(0));
}

double clip_grad_norm(std::vector<Tensor>& grads, double max_norm) {
  torch::NoGradGuard no_grad;
  double sq = 0.0;
  for (const auto& g : grads) sq += g.to(torch::kFloat64).pow(2).sum().item<double>();
  const double norm = std::sqrt(sq);
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm)
    for (auto& g : grads) g.mul_(max_norm / (norm + 1e-6));
  return norm;
}

// ---- minibatches -----------------------------------------------------------------
namespace {
Minibatch select(const Minibatch& all, const Tensor& idx) {
  Minibatch m;
  m.obs = all.obs.index_select(0, idx);
  m.raw_obs = all.raw_obs.index_select(0, idx);
  m.actions = all.actions.index_select(0, idx);
  m.old_logp = all.old_logp.index_select(0, idx);
  if (all.advantages.defined()) {
    m.advantages = all.advantages.index_select(0, idx);
    m.returns = all.returns.index_select(0, idx);
  }
  m.rewards = all.rewards.index_select(0, idx);
  m.mask = all.mask.index_select(0, idx);
  m.time_frac = all.time_frac.index_select(0, idx);
  m.goals = all.goals.index_select(0, idx);
  m.rtg = all.rtg.index_select(0, idx);
  return m;
}

}  // namespace

Minibatch flatten_batch(const Batch& batch) {
  const int64_t od = batch.obs.size(2), ad = batch.actions.size(2), gd = batch.goals.size(2);
  const Tensor keep = batch.mask.reshape({-1}).nonzero().squeeze(-1);
  auto rows = [&](const Tensor& t, int64_t width) {
    return (width > 0 ? t.reshape({-1, width}) : t.reshape({-1})).index_select(0, keep);
  };
  Minibatch all;
  all.obs = rows(batch.obs, od);
  all.raw_obs = rows(batch.raw_obs, od);
  all.actions = rows(batch.actions, ad);
  all.old_logp = rows(batch.logp, 0);
  all.rewards = rows(batch.rewards, 0);
  all.mask = rows(batch.mask, 0);
  all.time_frac = rows(batch.time_frac, 0);
  all.goals = rows(batch.goals, gd);
  if (batch.rtg.defined()) all.rtg = rows(batch.rtg, 0);
  if (batch.expert.defined()) all.expert = rows(batch.expert, ad);
  if (batch.advantages.defined()) {
    all.advantages = rows(batch.advantages, 0);
    all.returns = rows(batch.returns, 0);
  }
  return all;
}

PolicyEval policy_eval(const GaussianPolicy& policy, const Params& params, const Minibatch& mb) {
  PolicyEval ev;
  ev.mean = policy.mean(mb.obs, params);
  ev.log_std = policy.log_std(params);
  ev.logp = policy.log_prob(ev.mean, ev.log_std, mb.actions);
  ev.entropy = policy.entropy(ev.log_std);
  return ev;
}

std::vector<int64_t> permutation(int64_t n, Rng& rng) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.next() % static_cast<uint64_t>(i + 1)]);
  return p;
}

Minibatch select_rows(const Minibatch& all, const std::vector<int64_t>& perm, int64_t start, int64_t n) {
  const Tensor idx = torch::from_blob(const_cast<int64_t*>(perm.data()) + start, {n}, torch::kInt64);
  return select(all, idx);
}

}  // namespace ml3
