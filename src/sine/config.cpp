// The sine experiment's config schema, the checks the schema cannot express,
// the names of its choices, and the validation of a SineProblem.
#include <string>

#include "core/error.h"
#include "src/algorithm.h"
#include "src/sine/internal.h"
#include "src/sine/sine.h"

namespace ml3 {

void declare_sine(Schema& s) {
  s.add_string("sine.model", "mlp",
               "mlp (an MLP regressor of A sin(x - p), the paper's first experiment) or frequency (y = sin(theta x), "
               "one parameter; the shaping experiment, autograd only)",
               {"mlp", "frequency"});
  s.add_bool("sine.shaping", false,
             "frequency model: meta-train on the task loss abs(theta' - theta*) (the true parameter as extra "
             "information) instead of the MSE");
  s.add_double("sine.frequency_init", 0.1, "frequency model: theta at the start of every task (meta-train and test)",
               -100.0, 100.0);
  s.add_double("sine.train_frequency_min", -5.0, "frequency model: meta-training tasks' theta* ~ U[min, max]");
  s.add_double("sine.train_frequency_max", 5.0, "frequency model: upper end of the meta-training theta* range");
  s.add_int("sine.tasks_per_iteration", 1,
            "frequency model: tasks per meta-iteration (each from theta = frequency_init)");
  s.add_int("sine.task_steps", 1,
            "frequency model: inner steps per task at meta-train, each followed by one Adam step of the loss "
            "(theta carries over, the graph does not: the reference's schedule)");
  s.add_double("sine.outer_lr_decay", 0.0,
               "frequency model: the outer lr falls linearly to (1 - decay) x outer_lr over the iterations (0: constant)",
               0.0, 1.0);
  s.add_double("sine.test_frequency", 0.7,
               "frequency model: the meta-test task's theta* (x on the grid -5, -4.9, ..., 4.9, the reference's)");
  s.add_string("sine.implementation", "eigen",
               "meta-gradient: eigen (hand-derived, 1 inner step, fast) or autograd (LibTorch, any inner steps)",
               {"eigen", "autograd"});
  s.add_int("sine.inner_steps", 1, "unrolled inner SGD steps K per meta step (eigen: 1 only)", 1, 100);
  s.add_double("sine.inner_lr", 1e-3, "inner SGD step size alpha (also the meta-test SGD step size)", 0.0, 1e6, true);
  s.add_double("sine.outer_lr", 1e-3, "Adam learning rate of the learned loss", 0.0, 1e6, true);
  s.add_int("sine.iterations", 500, "outer (meta) iterations");
  s.add_int("sine.points", 100, "points per task (meta-train and meta-test)");
  s.add_int_list("sine.regressor_hidden", {100, 10}, "regressor hidden sizes (1-h...-1, ReLU, biases)");
  s.add_int_list("sine.loss_hidden", {50, 50}, "learned-loss hidden sizes (2-h...-1, ReLU, no bias, softplus)");
  s.add_string("sine.train_init", "xavier",
               "regressor init at meta-train: xavier (Glorot-uniform, zero biases; the reference's reset) "
               "or torch (U(+-1/sqrt(fan_in)) weights and biases)",
               {"xavier", "torch"});
  s.add_string("sine.test_init", "torch", "regressor init at meta-test (the reference uses nn.Linear's default)",
               {"xavier", "torch"});
  s.add_string("sine.loss_init", "xavier", "learned-loss init", {"xavier", "torch"});
  s.add_int("sine.test_tasks", 10, "out-of-distribution meta-test tasks (A in [0.2, 5], p in [-pi, pi], x in [-5, 5])");
  s.add_int("sine.test_steps", 100, "SGD steps at meta-test");
  s.add_int("sine.test_seeds", 5, "regressor initialisations per meta-test task");
  s.add_int("sine.test_seed", 0,
            "seed of the meta-test tasks, points and regressor inits (independent of `seed`)", 0);
  s.add_int_list("sine.transfer_hidden", {40, 40}, "second regressor architecture for the transfer test");
  s.add_bool("sine.float64", false, "compute in double precision (default float)");
  s.add_int("sine.checkpoint_every", 100, "checkpoint (and loss.ml3) every K meta-iterations");
}

Schema sine_schema() { return algorithm_schema(find_algorithm("sine"), ""); }

void check_sine_config(const Config& cfg) {
  const bool freq = cfg.get_string("sine.model") == "frequency";
  if (!freq && cfg.get_bool("sine.shaping"))
    throw Error("config: sine.shaping=true needs sine.model=frequency (the true parameter theta* is the shaping "
                "information)");
  if (!freq && (cfg.get_int("sine.tasks_per_iteration") != 1 || cfg.get_int("sine.task_steps") != 1))
    throw Error("config: sine.tasks_per_iteration and sine.task_steps apply to sine.model=frequency only");
  if (!(cfg.get_double("sine.train_frequency_min") < cfg.get_double("sine.train_frequency_max")))
    throw Error("config: sine.train_frequency_min must be below sine.train_frequency_max");
  if (cfg.get_string("sine.implementation") == "eigen" && cfg.get_int("sine.inner_steps") != 1)
    throw Error("config: sine.implementation=eigen supports sine.inner_steps=1 only (got " +
                std::to_string(cfg.get_int("sine.inner_steps")) +
                "); use sine.implementation=autograd for several unrolled inner steps");
}

namespace sine_detail {

void check_problem(const SineProblem& pb, size_t theta_size, size_t phi_size) {
  const auto& r = pb.regressor.sizes;
  const auto& l = pb.loss.sizes;
  if (pb.model == SineModel::Frequency) {
    if (r != std::vector<int>{1, 1} || pb.regressor.bias) throw Error("sine: the frequency model has one parameter");
    if (l.size() < 2 || l.front() != 3 || l.back() != 1 || !pb.loss.bias)
      throw Error("sine: the frequency model's learned loss must be 3-...-1 with biases");
  } else {
    if (r.size() < 2 || r.front() != 1 || r.back() != 1 || !pb.regressor.bias)
      throw Error("sine: the regressor must be 1-...-1 with biases");
    if (l.size() < 2 || l.front() != 2 || l.back() != 1 || pb.loss.bias)
      throw Error("sine: the learned loss must be 2-...-1 without biases");
    if (pb.shaping) throw Error("sine: shaping needs the frequency model");
  }
  if (theta_size != pb.regressor.num_params())
    throw Error("sine: theta has " + std::to_string(theta_size) + " values, the regressor needs " +
                std::to_string(pb.regressor.num_params()));
  if (phi_size != 0 && phi_size != pb.loss.num_params())
    throw Error("sine: phi has " + std::to_string(phi_size) + " values, the learned loss needs " +
                std::to_string(pb.loss.num_params()));
  if (pb.inner_steps < 1) throw Error("sine: inner_steps must be >= 1");
}

SineProblem problem_from(const Config& cfg) {
  SineProblem pb;
  pb.model = parse_sine_model(cfg.get_string("sine.model"));
  pb.regressor = pb.model == SineModel::Frequency ? frequency_model_shape()
                                                  : sine_regressor_shape(cfg.get_int_list("sine.regressor_hidden"));
  pb.loss = sine_loss_shape(cfg.get_int_list("sine.loss_hidden"), pb.model);
  pb.shaping = cfg.get_bool("sine.shaping");
  pb.inner_lr = cfg.get_double("sine.inner_lr");
  pb.inner_steps = static_cast<int>(cfg.get_int("sine.inner_steps"));
  pb.float64 = cfg.get_bool("sine.float64");
  return pb;
}

}  // namespace sine_detail

Config load_sine_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::vector<std::string> all{"algorithm=sine"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return load_config(Command::MetaTrain, path, all);
}

SineInit parse_sine_init(const std::string& name) {
  if (name == "torch") return SineInit::Torch;
  if (name == "xavier") return SineInit::Xavier;
  throw Error("unknown initialisation '" + name + "' (expected torch or xavier)");
}

SineModel parse_sine_model(const std::string& name) {
  if (name == "mlp") return SineModel::Mlp;
  if (name == "frequency") return SineModel::Frequency;
  throw Error("unknown sine model '" + name + "' (expected mlp or frequency)");
}

const char* sine_model_name(SineModel m) { return m == SineModel::Frequency ? "frequency" : "mlp"; }

SineImpl parse_sine_impl(const std::string& name) {
  if (name == "eigen") return SineImpl::Eigen;
  if (name == "autograd") return SineImpl::Autograd;
  throw Error("unknown sine implementation '" + name + "' (expected eigen or autograd)");
}

const char* sine_impl_name(SineImpl impl) { return impl == SineImpl::Eigen ? "eigen" : "autograd"; }

}  // namespace ml3
