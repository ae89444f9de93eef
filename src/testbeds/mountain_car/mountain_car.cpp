// The mountain car meta-problem (src/testbeds/mountain_car/mountain_car.h):
// differentiable dynamics and losses, policy training on a loss, the loss
// file, meta-test and landscape. The meta-trainer: meta_trainer.cpp.
#include "src/testbeds/mountain_car/internal.h"

namespace ml3 {
namespace mcar {


// Value clamped, gradient passed through (the reference clamps `.data` in place).
Tensor st_clamp(const Tensor& x, double lo, double hi) { return x + (x.clamp(lo, hi) - x).detach(); }

// Rollouts of P linear policies w [P, 2] from the start state.
Rollout rollout(const Tensor& w, int horizon) {
  const int64_t n = w.size(0);
  const auto opts = w.options().requires_grad(false);
  Tensor p = torch::full({n}, kStart[0], opts), v = torch::full({n}, kStart[1], opts);
  const Tensor w0 = w.select(1, 0), w1 = w.select(1, 1);
  std::vector<Tensor> ps{p}, vs{v}, as;
  for (int t = 0; t < horizon; ++t) {
    const Tensor a = (p * w0 + v * w1).clamp(-kMaxAction, kMaxAction);
    v = v + (kGravity * kMass * torch::cos(3.0 * p) + a / kMass - kFriction * v) * kDt;
    p = p + v * kDt;
    v = st_clamp(v, -kMaxSpeed, kMaxSpeed);
    p = st_clamp(p, kMinPos, kMaxPos);
    const Tensor stop = (p.detach() <= kMinPos).logical_and(v.detach() < 0);
    v = torch::where(stop, v - v.detach(), v);  // value 0, gradient passed through
    ps.push_back(p), vs.push_back(v), as.push_back(a);
  }
  return {torch::stack({torch::stack(ps, 1), torch::stack(vs, 1)}, 2), torch::stack(as, 1)};
}

Tensor point(const double* xy, const Tensor& like) { return torch::tensor({xy[0], xy[1]}, like.options()); }

// Per policy [P]: |S - goal|, or with shaping |S[:15] - intermediate| + |S[15:] - goal|.
Tensor task_loss(const Rollout& r, bool shaped) {
  const Tensor& s = r.states;
  if (!shaped) return (s - point(kGoal, s)).pow(2).sum({1, 2}).sqrt();
  const int64_t k = std::min<int64_t>(kShapedSteps, s.size(1));
  Tensor first = (s.narrow(1, 0, k) - point(kIntermediate, s)).pow(2).sum({1, 2}).sqrt();
  if (k == s.size(1)) return first;
  return first + (s.narrow(1, k, s.size(1) - k) - point(kGoal, s)).pow(2).sum({1, 2}).sqrt();
}

// The learned loss per policy [P]: mean over t < T of M_phi(p_t, v_t, a_t, d),
// d = |s_T - goal| detached.
Tensor learned_loss(const FunctionalMlp& net, const Params& phi, const Rollout& r) {
  const int64_t n = r.states.size(0), horizon = r.actions.size(1);
  const Tensor d = (r.states.select(1, horizon) - point(kGoal, r.states)).norm(2, 1).detach();
  const Tensor rows = torch::cat({r.states.narrow(1, 0, horizon), r.actions.unsqueeze(2),
                                  d.view({n, 1, 1}).expand({n, horizon, 1})},
                                 2);
  return net.forward(rows, phi).squeeze(2).mean(1);
}

// Final position at the goal (the position bound is the goal's position).
bool at_goal(double final_position, double tolerance) { return final_position >= kGoal[0] - tolerance; }

int max_consecutive(const std::vector<double>& finals, double tolerance) {
  int best = 0, run = 0;
  for (double f : finals) {
    run = at_goal(f, tolerance) ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

// A fresh policy: w ~ U(-scale, scale)^2.
std::array<double, 2> init_policy(uint64_t seed, double scale) {
  Rng rng(seed);
  const double a = rng.uniform(-scale, scale);
  return {a, rng.uniform(-scale, scale)};
}
uint64_t test_init_seed(uint64_t test_seed, int s) { return mix_seed(mix_seed(test_seed, kTagTest), s); }

Tensor weights_tensor(const std::vector<std::array<double, 2>>& ws, torch::Dtype dtype) {
  Tensor t = torch::empty({static_cast<int64_t>(ws.size()), 2}, torch::kFloat64);
  auto acc = t.accessor<double, 2>();
  for (size_t i = 0; i < ws.size(); ++i) acc[i][0] = ws[i][0], acc[i][1] = ws[i][1];
  return t.to(dtype);
}

// Meta-test from one initialisation: `steps` SGD steps on the learned loss
// (phi non-empty) or on the unshaped task loss; the final position after each.
std::vector<double> train_policy(const FunctionalMlp& net, const Params& phi, std::array<double, 2> w0,
                                 const Settings& s, std::array<double, 2>* w_out) {
  Tensor w = weights_tensor({w0}).requires_grad_(true);
  std::vector<double> finals;
  for (int k = 0; k < s.test_steps; ++k) {
    const Rollout r = rollout(w, s.horizon);
    const Tensor loss = phi.empty() ? task_loss(r, false).sum() : learned_loss(net, phi, r).sum();
    const Tensor g = torch::autograd::grad({loss}, {w})[0];
    w = (w.detach() - s.inner_lr * g).requires_grad_(true);
    torch::NoGradGuard ng;
    finals.push_back(rollout(w, s.horizon).states[0][s.horizon][0].item<double>());
  }
  if (w_out) *w_out = {w[0][0].item<double>(), w[0][1].item<double>()};
  return finals;
}

// One meta-step with LibTorch autograd (create_graph through the inner step):
// the reference the hand-derived engine is tested against. gphi: dL_T/dphi
// per tensor of phi.
MountainCarStep autograd_meta_step(const FunctionalMlp& net, const Params& phi,
                                   const std::vector<std::array<double, 2>>& pool, const Settings& s,
                                   std::vector<Tensor>& gphi) {
  Tensor w = weights_tensor(pool, phi[0].scalar_type()).requires_grad_(true);
  const Rollout r0 = rollout(w, s.horizon);
  const Tensor lin = learned_loss(net, phi, r0).sum();
  const Tensor g = torch::autograd::grad({lin}, {w}, {}, /*retain_graph=*/true, /*create_graph=*/true)[0];
  const Tensor w1 = w - s.inner_lr * g;
  const Rollout r1 = rollout(w1, s.horizon);
  const Tensor lt = task_loss(r1, s.shaping).mean();
  // The loss's last bias shifts it by a constant: no gradient reaches it.
  gphi = torch::autograd::grad({lt}, phi, {}, c10::nullopt, false, /*allow_unused=*/true);
  for (size_t i = 0; i < gphi.size(); ++i)
    if (!gphi[i].defined()) gphi[i] = torch::zeros_like(phi[i]);
  MountainCarStep out;
  out.task_loss = lt.item<double>();
  out.inner_loss = lin.item<double>();
  const Tensor w1d = w1.detach().to(torch::kFloat64);
  const Tensor finals = r1.states.select(1, s.horizon).select(1, 0).detach().to(torch::kFloat64);
  for (int i = 0; i < s.pool; ++i) {
    out.w_after.push_back({w1d[i][0].item<double>(), w1d[i][1].item<double>()});
    out.final_positions.push_back(finals[i].item<double>());
  }
  return out;
}

// phi's tensors as new tensors shaped like `like`, from a flat vector
// (core/small_mlp.h's layout: W_0, b_0, ...).

LoadedLoss load_loss(const std::string& path) {
  MlpLossFile f = load_mlp_loss_file(path, "mountain_car_loss", 4, "mountain car");
  LoadedLoss l;
  l.net = std::move(f.net);
  l.phi = std::move(f.phi);
  l.shaping = f.meta.value("shaping", false);
  return l;
}

nlohmann::json policy_results(const FunctionalMlp& net, const Params& phi, const Settings& s, Progress& progress,
                              int& done) {
  nlohmann::json finals_all = nlohmann::json::array(), consecutive = nlohmann::json::array();
  int worst = s.test_steps;
  for (int k = 0; k < s.test_seeds; ++k) {
    const std::vector<double> finals = train_policy(net, phi, init_policy(test_init_seed(s.test_seed, k), s.init_scale), s);
    const int c = max_consecutive(finals, s.tolerance);
    worst = std::min(worst, c);
    finals_all.push_back(finals);
    consecutive.push_back(c);
    progress.update(++done, fmt::format("{} seed {}: {} steps at the goal in a row", phi.empty() ? "task loss" : "learned loss", k, c));
  }
  return {{"final_position_after_steps", finals_all[0]},
          {"max_consecutive_steps_at_goal", consecutive[0]},
          {"per_seed_final_position_after_steps", finals_all},
          {"per_seed_max_consecutive_steps_at_goal", consecutive},
          {"min_over_seeds_max_consecutive_steps_at_goal", worst}};
}
}  // namespace mcar

using namespace mcar;


void declare_mountain_car(Schema& s) { declare<MountainCarSection>(s, "mountain_car."); }

void check_mountain_car_config(const Config& c) {
  if (c.get_int("mountain_car.horizon") <= kShapedSteps && c.get_bool("mountain_car.shaping"))
    throw Error("config: mountain_car.shaping needs mountain_car.horizon > 15 (the first 15 states go to the "
                "intermediate goal)");
}

MountainCarStep mountain_car_meta_step(const Config& cfg, bool autograd, const std::vector<double>& phi,
                                       const std::vector<std::array<double, 2>>& pool, std::vector<double>& gphi) {
  check_mountain_car_config(cfg);
  Settings s(cfg);
  s.pool = static_cast<int>(pool.size());
  if (!autograd) {
    MountainCarEngine<double> engine(s.sizes(), s.horizon, s.inner_lr, s.shaping, s.pool);
    if (phi.size() != engine.num_params()) throw Error("mountain car: phi has the wrong size");
    gphi.assign(phi.size(), 0.0);
    return engine.meta_grad(phi.data(), pool, gphi.data());
  }
  const FunctionalMlp net(s.sizes(), Activation::Elu, true);
  const Params like = net.init(0, 1.0, /*float64=*/true);
  Params p = tensors_of(phi, like);
  for (auto& t : p) t.set_requires_grad(true);
  std::vector<Tensor> g;
  const MountainCarStep out = autograd_meta_step(net, p, pool, s, g);
  gphi = flat_params<double>(g);
  return out;
}

std::vector<std::array<double, 2>> mountain_car_rollout(const std::array<double, 2>& w, int horizon) {
  torch::NoGradGuard ng;
  const Tensor t = weights_tensor({w}, torch::kFloat64);
  const Rollout r = rollout(t, horizon);
  std::vector<std::array<double, 2>> out;
  for (int k = 0; k <= horizon; ++k) out.push_back({r.states[0][k][0].item<double>(), r.states[0][k][1].item<double>()});
  return out;
}

std::string run_mountain_car_meta_test(const std::string& loss_file, const Config& cfg, bool quiet) {
  check_mountain_car_config(cfg);
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const Settings s(cfg);
  const LoadedLoss l = load_loss(loss_file);
  Progress progress("meta-test", 2 * s.test_seeds, quiet);
  int done = 0;
  nlohmann::json out = {{"loss_file", loss_file},
                        {"loss_shaping", l.shaping},
                        {"steps", s.test_steps},
                        {"lr", s.inner_lr},
                        {"test_seeds", s.test_seeds},
                        {"goal_tolerance", s.tolerance}};
  const nlohmann::json learned = policy_results(l.net, l.phi, s, progress, done);
  for (const auto& [k, v] : learned.items()) out[k] = v;
  out["task_loss_sgd"] = policy_results(l.net, {}, s, progress, done);
  progress.finish();
  return out.dump(2);
}

std::string mountain_car_landscape(const std::string& loss_file, const Config& cfg, int points) {
  set_compute_threads(static_cast<int>(cfg.get_int("torch_threads")));
  const Settings s(cfg);
  const LoadedLoss l = load_loss(loss_file);
  torch::NoGradGuard ng;
  const std::array<double, 2> w0 = init_policy(test_init_seed(s.test_seed, 0), s.init_scale);
  std::array<double, 2> wk{};
  {
    c10::AutoGradMode on(true);
    train_policy(l.net, l.phi, w0, s, &wk);
  }
  auto values = [&](const std::vector<std::array<double, 2>>& ws) {
    const Rollout r = rollout(weights_tensor(ws), s.horizon);
    const Tensor lv = learned_loss(l.net, l.phi, r), tu = task_loss(r, false), ts = task_loss(r, true);
    const Tensor fin = r.states.select(1, s.horizon).select(1, 0);
    std::vector<std::vector<double>> out(4);
    for (size_t i = 0; i < ws.size(); ++i) {
      out[0].push_back(lv[i].item<double>());
      out[1].push_back(tu[i].item<double>());
      out[2].push_back(ts[i].item<double>());
      out[3].push_back(fin[i].item<double>());
    }
    return out;
  };
  // 1-D: w(a) = w0 + a (wK - w0), a in [-0.5, 1.5].
  std::vector<double> xs;
  std::vector<std::array<double, 2>> line;
  for (int i = 0; i < points; ++i) {
    const double a = -0.5 + 2.0 * i / (points - 1);
    xs.push_back(a);
    line.push_back({w0[0] + a * (wk[0] - w0[0]), w0[1] + a * (wk[1] - w0[1])});
  }
  const auto v1 = values(line);
  nlohmann::json one = {{"label", "from the initial (0) to the trained policy (1)"},
                        {"x_label", "a: w = w0 + a (wK - w0)"},
                        {"x", xs},
                        {"curves", {{"learned loss", v1[0]}, {"task loss", v1[1]}, {"shaped task loss", v1[2]}}},
                        {"final_position", v1[3]},
                        {"marks", {{"w0", 0.0}, {"wK", 1.0}}}};
  // 2-D: a square around both policies.
  const double lo0 = std::min(w0[0], wk[0]), hi0 = std::max(w0[0], wk[0]);
  const double lo1 = std::min(w0[1], wk[1]), hi1 = std::max(w0[1], wk[1]);
  const double c0 = (lo0 + hi0) / 2, c1 = (lo1 + hi1) / 2;
  const double half = std::max({hi0 - lo0, hi1 - lo1, 0.5}) * 0.75;
  std::vector<double> gx, gy;
  for (int i = 0; i < points; ++i) gx.push_back(c0 - half + 2 * half * i / (points - 1)), gy.push_back(c1 - half + 2 * half * i / (points - 1));
  nlohmann::json surf_l = nlohmann::json::array(), surf_t = nlohmann::json::array(), surf_s = nlohmann::json::array(),
                 surf_f = nlohmann::json::array();
  for (double y : gy) {
    std::vector<std::array<double, 2>> row;
    for (double x : gx) row.push_back({x, y});
    const auto v = values(row);
    surf_l.push_back(v[0]), surf_t.push_back(v[1]), surf_s.push_back(v[2]), surf_f.push_back(v[3]);
  }
  nlohmann::json two = {{"label", "policy weights"},
                        {"x_label", "w_position"},
                        {"y_label", "w_velocity"},
                        {"x", gx},
                        {"y", gy},
                        {"surfaces", {{"learned loss", surf_l}, {"task loss", surf_t}}},
                        {"shaped_task_loss", surf_s},
                        {"final_position", surf_f},
                        {"marks", {{"w0", {w0[0], w0[1]}}, {"wK", {wk[0], wk[1]}}}}};
  return nlohmann::json{{"problem", "mountain_car"},
                        {"loss_file", loss_file},
                        {"w0", {w0[0], w0[1]}},
                        {"w_trained", {wk[0], wk[1]}},
                        {"one_d", {one}},
                        {"two_d", {two}}}
      .dump(1);
}

}  // namespace ml3
