#!/usr/bin/env bash
# Behaviour snapshot: runs every shipped config (configs/*.yaml) for a few
# iterations, plus export/eval/deploy, with one ml3 binary, and writes the
# outputs with wall-clock fields removed to OUT/. Two snapshots of two builds
# are compared with `diff -r`: a refactor that keeps behaviour gives none.
#   tools/behaviour_snapshot.sh BUILD_DIR OUT
# Needs the demonstration files of the configs (demos/, docs/demos.md) and the
# loss files the compare presets name (runs/...); missing ones skip that run.
set -uo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "$1"); OUT=$(realpath -m "$2"); rm -rf "$OUT"; mkdir -p "$OUT/runs"
R="$OUT/runs"
run() {  # name, then the ml3 arguments (long runs get --quiet from the caller)
  local name=$1; shift
  if "$B/ml3" "$@" >"$OUT/$name.log" 2>&1; then echo "ok   $name"; else echo "FAIL $name (exit $?)"; fi
}
small_train="train.iterations=3 train.eval_episodes=10"
for c in pointmass_ppo reacher_ppo pusher_ppo reacher_reinforce; do
  run "$c" train --quiet --config configs/$c.yaml $small_train --out "$R/$c"
done
run pg_torch train --quiet --config configs/reacher_ppo.yaml $small_train pg.backend=torch --out "$R/pg_torch"
run pg_fast train --quiet --config configs/reacher_ppo.yaml $small_train pg.backend=fast --out "$R/pg_fast"
for c in pointmass_ml3 reacher_ml3 reacher_ml3_shaped reacher_ml3_expert reacher_ml3_anchored \
         reacher_ml3_few_demos reacher_ml3_long pusher_ml3_shaped pusher_ml3_expert; do
  run "$c" meta-train --quiet --config configs/$c.yaml meta.iterations=2 --out "$R/$c"
done
run pointmass_learned_loss train --quiet --config configs/pointmass_learned_loss.yaml $small_train \
  --loss "$R/pointmass_ml3/loss.ml3" --out "$R/pointmass_learned_loss"
run reacher_learned_loss train --quiet --config configs/reacher_learned_loss.yaml $small_train \
  --loss "$R/reacher_ml3_shaped/loss.ml3" --out "$R/reacher_learned_loss"
run meta_test meta-test --quiet --loss "$R/reacher_ml3_shaped/loss.ml3" --config configs/reacher_ml3_shaped.yaml \
  meta_test.updates=3 meta_test.seeds=1 meta_test.eval_every=3 meta_test.eval_episodes=10 --out "$R/meta_test"
run sine_ml3 meta-train --quiet --config configs/sine_ml3.yaml sine.iterations=5 sine.test_steps=5 --out "$R/sine_ml3"
run shaped_sine_ml3 meta-train --quiet --config configs/shaped_sine_ml3.yaml sine.iterations=5 sine.test_steps=5 --out "$R/shaped_sine_ml3"
run mountain_car_ml3 meta-train --quiet --config configs/mountain_car_ml3.yaml mountain_car.iterations=5 \
  mountain_car.eval_every=0 --out "$R/mountain_car_ml3"
run reacher_mbrl_ml3 meta-train --quiet --config configs/reacher_mbrl_ml3.yaml mbrl.iterations=3 mbrl.babble_episodes=30 \
  mbrl.holdout_episodes=5 mbrl.eval_every=0 --out "$R/reacher_mbrl_ml3"
# Compare presets: every method, with the loss files of this snapshot (the
# presets name runs/ that a checkout does not have) and short cloning.
compare_overrides() {  # config: each loss file named runs/X/loss.ml3 -> this snapshot's run of the same kind
  awk -v R="$R" '/^methods:/{m=1;next} m && /^  [a-zA-Z_0-9]+:/{name=$1; sub(":","",name)}
    m && /kind:/{kind=$2}
    m && /file:/{f=$2; sub("^runs/","",f); sub("/loss.ml3$","",f)
      sub("_shaped_target$","_shaped",f); sub("_few20_s1$","_shaped",f); sub("_few_demos_s1$","_few_demos",f)
      sub("^reacher_anchor_only$","reacher_ml3_anchored",f)
      print "methods." name "." kind ".file=" R "/" f "/loss.ml3"}
    m && /pretrain_steps:/{print "methods." name ".bc.pretrain_steps=20"}' "$1"
}
run pusher_ml3 meta-train --quiet --config configs/reacher_ml3.yaml env.name=pusher env.episode_steps=100 \
  meta.iterations=2 --out "$R/pusher_ml3"
for c in reacher_compare reacher_compare_few_demos reacher_compare_shift pusher_compare \
         pusher_compare_few_demos pusher_compare_shift; do
  run "$c" compare --quiet --config configs/$c.yaml compare.updates=2 compare.seeds=1 compare.eval_every=2 \
    compare.eval_episodes=10 sweep.updates=1 $(compare_overrides configs/$c.yaml) --out "$R/$c"
done
run export export --run "$R/reacher_ppo" --out "$R/reacher_ppo.ml3p"
run eval eval --run "$R/reacher_ppo" --episodes 20
if "$B/ml3-deploy" --policy "$R/reacher_ppo.ml3p" --env reacher --episodes 20 >"$OUT/deploy.log" 2>&1; then
  echo "ok   deploy"; else echo "FAIL deploy"; fi
# Normalise: wall-clock keys out of JSON, timing columns out of CSV, timing words out of logs.
/usr/bin/python3 - "$OUT" <<'PY'
import json, os, re, sys, csv, hashlib
out = sys.argv[1]
timing = re.compile(r"(seconds|wall|_ms$|_per_s|per_second|rate_hz|elapsed|eta|date|time|machine|host|commit|cpu)", re.I)
def scrub(x):
    if isinstance(x, dict):
        return {k: scrub(v) for k, v in x.items() if not timing.search(k)}
    if isinstance(x, list):
        return [scrub(v) for v in x]
    if isinstance(x, str):
        return x.replace(out, "OUT")
    return x
for root, dirs, files in os.walk(out):
    for f in files:
        p = os.path.join(root, f)
        if f.endswith(".json"):
            try: d = json.load(open(p))
            except Exception: continue
            json.dump(scrub(d), open(p, "w"), indent=1, sort_keys=True)
        elif f.endswith(".jsonl"):
            rows = [scrub(json.loads(l)) for l in open(p) if l.strip()]
            open(p, "w").write("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        elif f.endswith(".csv"):
            rows = list(csv.reader(open(p)))
            if not rows: continue
            keep = [i for i, h in enumerate(rows[0]) if not timing.search(h)]
            open(p, "w").write("".join(",".join(r[i] for i in keep if i < len(r)) + "\n" for r in rows))
        elif f.endswith(".log") or f.endswith(".md") or f.endswith(".yaml") or f.endswith(".txt"):
            s = open(p, errors="replace").read().replace(out, "OUT")
            lines, drop = [], None
            for line in s.split("\n"):
                if re.search(r'"[^"]*"\s*:', line) and timing.search(line.split(":")[0]):
                    continue  # a timing key of printed JSON
                if line.startswith("|"):
                    cells = line.split("|")
                    if drop is None:  # a table's header row: its timing columns
                        drop = {i for i, c in enumerate(cells) if re.search(r"(wall|seconds|\bs\b|ms\b|/s\b|rate|speed)", c, re.I)}
                    line = "|".join(c for i, c in enumerate(cells) if i not in drop)
                else:
                    drop = None
                lines.append(line)
            s = "\n".join(lines)
            s = re.sub(r"\d+(\.\d+)?\s*(s|ms|us|min|h)\b", "T", s)
            s = re.sub(r"[\d.]+\s*(steps|updates|it|episodes|gen)/s", "RATE", s)
            open(p, "w").write(s)
        elif f.endswith((".png", ".gif", ".ckpt", ".ml3", ".ml3p", ".pt")):
            # binary: keep a hash only (files that record timings will differ; compare them by their metrics)
            if f.endswith((".ckpt", ".ml3")):
                os.remove(p); continue  # they record wall times; their content shows in the metrics and in .ml3p
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            os.remove(p); open(p + ".sha256", "w").write(h + "\n")
PY
