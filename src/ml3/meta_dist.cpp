// Distributed ML3 meta-training (docs/distributed.md): the tasks of an outer
// step are spread over the ranks (task k on rank k % world); what depends on
// every task is made the same on every rank, in task order, so that all ranks
// take the same outer step and hold the same complete state -- any rank's
// checkpoint resumes on any number of ranks.
#include "src/ml3/meta_trainer.h"

namespace ml3::ml3meta {

std::vector<LearnedLoss> Ml3MetaTrainer::share_rows(const std::vector<TaskRun>& mine, bool stats) {
  dist::Comm& comm = comm_;
  std::vector<LearnedLoss> seen;
  size_t i = 0;
  for (int k = 0; k < meta_.tasks_per_iteration; ++k) {
    const int owner = k % comm.world();
    std::vector<Tensor> rows;
    if (owner == comm.rank()) {
      const TaskRun& t = mine.at(i++);
      rows = stats ? std::vector<Tensor>{t.stat_rows} : std::vector<Tensor>{t.mb1.obs, t.mb1.expert};
    }
    rows = comm.broadcast_list(rows, owner, stats ? "loss statistics" : "expert labels");
    if (!stats) {
      Minibatch mb;
      mb.obs = rows.at(0), mb.expert = rows.at(1);
      shaping_.remember(mb);
      continue;
    }
    loss_.update_stats_rows(rows.at(0));
    if (owner == comm.rank()) seen.push_back(loss_);  // the statistics task k sees, as in a 1-process run
  }
  return seen;
}

void Ml3MetaTrainer::share_results(int it, const std::vector<TaskRun>& mine, Params* acc, IterationSums* s) {
  dist::Comm& comm = comm_;
  // The summed meta-gradient (zeros from a rank without a finite task) and the sums.
  std::vector<Tensor> parts;
  for (size_t j = 0; j < phi_.size(); ++j)
    parts.push_back(acc->empty() ? torch::zeros({phi_[j].numel()}, phi_[j].options().requires_grad(false))
                                 : (*acc)[j].detach().reshape({-1}));
  Tensor flat = torch::cat(parts).contiguous();
  comm.allreduce_sum(flat, "meta-gradient");
  acc->clear();
  for (int64_t j = 0, off = 0; j < static_cast<int64_t>(phi_.size()); off += phi_[j].numel(), ++j)
    acc->push_back(flat.slice(0, off, off + phi_[j].numel()).reshape(phi_[j].sizes()).clone());
  std::vector<double> flat_sums = s->flat();
  Tensor sums = torch::tensor(flat_sums, torch::kFloat64);
  comm.allreduce_sum(sums, "metrics");
  for (size_t j = 0; j < flat_sums.size(); ++j) flat_sums[j] = sums[static_cast<int64_t>(j)].item<double>();
  s->assign(flat_sums);
  // The pool slots, in task order (restarts draw from one counter).
  for (size_t k = 0, i = 0; k < static_cast<size_t>(meta_.tasks_per_iteration); ++k) {
    const int owner = static_cast<int>(k) % comm.world();
    const TaskRun* t = owner == comm.rank() ? &mine.at(i++) : nullptr;
    const bool ok = s->task_status[k] == 1;
    PoolSlot& slot = pool_[slot_of(it, static_cast<int>(k))];
    if (!ok || resets_after(slot)) {
      finish_task(slot, false, {}, {});
      continue;
    }
    std::vector<Tensor> list;
    if (t) {
      list = t->theta_k;
      list.insert(list.end(), t->state.m.begin(), t->state.m.end());
      list.insert(list.end(), t->state.v.begin(), t->state.v.end());
      list.push_back(torch::tensor({t->state.t}, torch::kInt64));
    }
    list = comm.broadcast_list(list, owner, "pool policies");
    if (t) {
      finish_task(slot, true, t->theta_k, t->state);
      continue;
    }
    const size_t n = slot.theta.size(), moments = (list.size() - n - 1) / 2;
    InnerState st;
    st.m.assign(list.begin() + n, list.begin() + n + moments);
    st.v.assign(list.begin() + n + moments, list.begin() + n + 2 * moments);
    st.t = list.back().item<int64_t>();
    finish_task(slot, true, Params(list.begin(), list.begin() + n), st);
  }
}

}  // namespace ml3::ml3meta
