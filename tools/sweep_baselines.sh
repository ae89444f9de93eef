#!/usr/bin/env bash
# Learning-rate sweep of the meta-test baselines (REINFORCE and PPO) with the
# meta-test's own batch size, update count and seeds, so the comparison with
# the learned loss is against *tuned* baselines. Needs a loss file only because
# meta-test takes one; the baselines do not use it.
# usage: tools/sweep_baselines.sh CONFIG LOSS_FILE [key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1 loss=$2
shift 2
out=runs/sweep_$(basename "$config" .yaml)
mkdir -p "$out"
printf "%-10s %-8s %14s %15s %18s\n" method lr "final success" "final distance" "updates to target"
for method in reinforce ppo; do
  if [ "$method" = reinforce ]; then lrs="1e-3 3e-3 1e-2 3e-2"; else lrs="1e-4 3e-4 1e-3 3e-3"; fi
  for lr in $lrs; do
    build/ml3 meta-test --loss "$loss" --config "$config" --out "$out/${method}_$lr" --force --quiet --json \
      meta_test.methods=$method baselines.${method}.optim.lr=$lr "$@" > "$out/${method}_$lr.json"
    python3 - "$out/${method}_$lr.json" "$method" "$lr" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
m = j["methods"][0]
u = m["updates_to_threshold"]
print("%-10s %-8s %13.1f%% %15.4f %18s" % (sys.argv[2], sys.argv[3], 100 * m["final_success_rate"],
      m["final_distance_mean"], "-" if u is None else "%.0f" % u))
PY
  done
done
