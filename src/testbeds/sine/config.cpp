// The sine experiment's config schema, the checks the schema cannot express,
// the names of its choices, and the validation of a SineProblem.
#include <string>
#include <vector>

#include "core/error.h"
#include "src/run/algorithm.h"
#include "src/testbeds/sine/internal.h"
#include "src/testbeds/sine/sine.h"

namespace ml3 {

namespace {
// sine.*: the sine testbed (the paper's first experiment and the shaped sine).
struct SineSection {
  std::string model = "mlp";
  bool shaping = false;
  double frequency_init = 0.1, train_frequency_min = -5.0, train_frequency_max = 5.0;
  int tasks_per_iteration = 1, task_steps = 1;
  double outer_lr_decay = 0.0, test_frequency = 0.7;
  std::string implementation = "eigen";
  int inner_steps = 1;
  double inner_lr = 1e-3, outer_lr = 1e-3;
  int iterations = 500, points = 100;
  std::vector<int> regressor_hidden{100, 10}, loss_hidden{50, 50};
  std::string train_init = "xavier", test_init = "torch", loss_init = "xavier";
  int test_tasks = 10, test_steps = 100, test_seeds = 5, test_seed = 0;
  std::vector<int> transfer_hidden{40, 40};
  bool float64 = false;
  int checkpoint_every = 100;
  template <class F>
  void fields(F& f) {
    f("model", model,
      "mlp (an MLP regressor of A sin(x - p), the paper's first experiment) or frequency (y = sin(theta x), "
      "one parameter; the shaping experiment, autograd only)",
      Choices{{"mlp", "frequency"}});
    f("shaping", shaping,
      "frequency model: meta-train on the task loss abs(theta' - theta*) (the true parameter as extra "
      "information) instead of the MSE");
    f("frequency_init", frequency_init, "frequency model: theta at the start of every task (meta-train and test)",
      Bounds::in(-100.0, 100.0));
    f("train_frequency_min", train_frequency_min, "frequency model: meta-training tasks' theta* ~ U[min, max]");
    f("train_frequency_max", train_frequency_max, "frequency model: upper end of the meta-training theta* range");
    f("tasks_per_iteration", tasks_per_iteration,
      "frequency model: tasks per meta-iteration (each from theta = frequency_init)");
    f("task_steps", task_steps,
      "frequency model: inner steps per task at meta-train, each followed by one Adam step of the loss "
      "(theta carries over, the graph does not: the reference's schedule)");
    f("outer_lr_decay", outer_lr_decay,
      "frequency model: the outer lr falls linearly to (1 - decay) x outer_lr over the iterations (0: constant)",
      Bounds::in(0.0, 1.0));
    f("test_frequency", test_frequency,
      "frequency model: the meta-test task's theta* (x on the grid -5, -4.9, ..., 4.9, the reference's)");
    f("implementation", implementation,
      "meta-gradient: eigen (hand-derived, 1 inner step, fast) or autograd (LibTorch, any inner steps)",
      Choices{{"eigen", "autograd"}});
    f("inner_steps", inner_steps, "unrolled inner SGD steps K per meta step (eigen: 1 only)", Bounds::in(1, 100));
    f("inner_lr", inner_lr, "inner SGD step size alpha (also the meta-test SGD step size)",
      Bounds::in(0.0, 1e6, true));
    f("outer_lr", outer_lr, "Adam learning rate of the learned loss", Bounds::in(0.0, 1e6, true));
    f("iterations", iterations, "outer (meta) iterations");
    f("points", points, "points per task (meta-train and meta-test)");
    f("regressor_hidden", regressor_hidden, "regressor hidden sizes (1-h...-1, ReLU, biases)");
    f("loss_hidden", loss_hidden, "learned-loss hidden sizes (2-h...-1, ReLU, no bias, softplus)");
    f("train_init", train_init,
      "regressor init at meta-train: xavier (Glorot-uniform, zero biases; the reference's reset) "
      "or torch (U(+-1/sqrt(fan_in)) weights and biases)",
      Choices{{"xavier", "torch"}});
    f("test_init", test_init, "regressor init at meta-test (the reference uses nn.Linear's default)",
      Choices{{"xavier", "torch"}});
    f("loss_init", loss_init, "learned-loss init", Choices{{"xavier", "torch"}});
    f("test_tasks", test_tasks,
      "out-of-distribution meta-test tasks (A in [0.2, 5], p in [-pi, pi], x in [-5, 5])");
    f("test_steps", test_steps, "SGD steps at meta-test");
    f("test_seeds", test_seeds, "regressor initialisations per meta-test task");
    f("test_seed", test_seed, "seed of the meta-test tasks, points and regressor inits (independent of `seed`)",
      Bounds::at_least(0));
    f("transfer_hidden", transfer_hidden, "second regressor architecture for the transfer test");
    f("float64", float64, "compute in double precision (default float)");
    f("checkpoint_every", checkpoint_every, "checkpoint (and loss.ml3) every K meta-iterations");
  }
};
}  // namespace

void declare_sine(Schema& s) { declare<SineSection>(s, "sine."); }

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
