#pragma once
// The ML3 meta-trainer of policies (the `ml3` algorithm of `ml3 meta-train`):
// a learned loss that replaces the policy-gradient objective, meta-trained
// over a pool of policies at different stages of learning. Shaping (the
// extra information of meta-training) is its own class (src/ml3/shaping.h).
// Defined in src/ml3/meta_trainer.cpp (one process) and
// src/ml3/meta_dist.cpp (the tasks of an outer step spread over the ranks of
// a distributed run); included by those two only.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "src/ml3/inner_loop.h"
#include "src/ml3/sections.h"
#include "src/ml3/shaping.h"
#include "src/policy/trainer.h"
#include "src/run/dist.h"

namespace ml3::ml3meta {

struct PoolSlot {
  Params theta;
  InnerState opt_state;  // the inner optimiser's state (Adam), kept across updates
  int age = 0;
};

// The sums of one meta-iteration over its tasks, and each task's status. A
// distributed run all-reduces them as one vector (flat(), in this order).
struct IterationSums {
  explicit IterationSums(int n_tasks) : task_status(static_cast<size_t>(n_tasks), 0.0) {}
  double ok = 0, skipped = 0, task_loss = 0, inner_loss = 0, pool_success = 0, post_success = 0, pool_return = 0,
         post_return = 0, collect_seconds = 0, log_std = 0, imitation_error = 0;
  std::vector<double> task_status;  // 1 ok, 2 skipped (0: a task of another rank, before the all-reduce)
  std::vector<double> flat() const;
  void assign(const std::vector<double>& v);
};

class Ml3MetaTrainer : public Algorithm {
 public:
  Ml3MetaTrainer(const Config& c, const std::string& run_dir, dist::Comm& comm);

  std::string label() const override { return "meta-train " + env_name_; }
  int iterations() const override { return meta_.iterations; }
  int checkpoint_every() const override { return meta_.checkpoint_every; }
  std::vector<std::string> columns() const override;
  nlohmann::json iterate(int it) override;
  std::string progress_text(const nlohmann::json& r) const override;
  void save(Archive& a) const override;
  void load(const Archive& a) override;
  void write_artifacts(const std::string& run_dir, int it) const override;
  nlohmann::json summary(double) override;
  bool spreads_over_ranks() const override { return true; }
  Plot plot() const override;

 private:
  // ---- one task of an outer step (src/ml3/meta_dist.cpp spreads them over ranks) ----
  struct TaskRun {
    int k = 0;
    size_t slot = 0;
    uint64_t tseed = 0;
    std::vector<Task> tasks;
    Params theta, theta_k;
    Batch b1;
    Minibatch mb1;
    Tensor stat_rows;  // the loss's normalisation inputs (first loss.norm_iterations)
    InnerState state;
    bool ok = false;
  };
  // The first batch of task k (rollouts of its pool policy).
  TaskRun begin_task(int it, int k, IterationSums* s);
  // The inner updates of task t under `loss` (its normalisation statistics)
  // and the meta-gradient of its task loss, added to *acc.
  void run_task(TaskRun& t, const LearnedLoss& loss, double weight, Params* acc, IterationSums* s);
  // The pool slot after its task: the updated policy and optimiser state (a
  // restart when the task was skipped or the policy is old enough).
  void finish_task(PoolSlot& slot, bool ok, const Params& theta_k, const InnerState& state);
  size_t slot_of(int it, int k) const {
    return (static_cast<size_t>(it - 1) * meta_.tasks_per_iteration + k) % pool_.size();
  }
  bool resets_after(const PoolSlot& slot) const { return fresh_ || slot.age + 1 >= meta_.pool_reset_every; }
  // src/ml3/meta_dist.cpp: every rank gets every task's rows in task order --
  // expert labels into the buffer (stats false) or normalisation inputs into
  // the loss's statistics (stats true: returns the loss as each of this
  // rank's tasks sees it, after the tasks before it); then the gradient and
  // sums all-reduced and the pool slots from their tasks' ranks.
  std::vector<LearnedLoss> share_rows(const std::vector<TaskRun>& mine, bool stats);
  void share_results(int it, const std::vector<TaskRun>& mine, Params* acc, IterationSums* s);
  void reset_slot(PoolSlot& slot);

  dist::Comm& comm_;  // the process group (one process: world 1)
  Config cfg_;
  MetaSection meta_;
  LossSection lsec_;
  uint64_t seed_;
  std::string env_name_, run_dir_;
  VecEnv venv_;
  ObsNormalizer raw_;
  PolicyModels models_;
  LearnedLoss loss_;
  Params phi_;
  Adam adam_;
  Shaping shaping_;
  bool fresh_ = false;
  InnerOptimizer inner_;
  std::vector<PoolSlot> pool_;
  uint64_t resets_ = 0;
  int total_skipped_ = 0;
  std::vector<double> step_seconds_;
  double meta_seconds_ = 0;  // the meta-iterations' wall time, over resumes
};

}  // namespace ml3::ml3meta
