#!/usr/bin/env bash
# Every GPU path of mimic_fast in ONE call on a GPU machine (sized for one H200 in < 8 min).
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --dry-run  # anywhere: list the steps, check that every test
#                                           # and benchmark they name exists (CI runs this)
#
# Wheels the GPU image lacks (it has no internet): put them in .gpuwheels/ (git-ignored, sent
# with `carry`), e.g. `pip download --no-deps -d .gpuwheels webdataset braceexpand av`.
# Output in $OUT (default /tmp/gpu-check): log.txt, summary.json (step -> rc, seconds), each
# benchmark's JSON renamed <bench>-h200.json (commit them to benchmarks/results/), and the
# goals each benchmark printed. A step past the time budget ($BUDGET s, default 460) is skipped.
#   ONLY="mine_cuda bench_mining" bash benchmarks/gpu_check.sh   # a rerun of some steps (env and
#                                           # build always run first)
set -u
DRY=0; [[ "${1:-}" == "--dry-run" ]] && DRY=1
ONLY=${ONLY:-}
OUT=${OUT:-/tmp/gpu-check}; W=/tmp/gpu-check-work; BUDGET=${BUDGET:-460}; PY=${PY:-python3}
T0=$(date +%s)

# name | timeout s | files that must exist | command
STEPS=(
  "env|60|-|nvidia-smi -L; nvcc --version | tail -1; $PY -c 'import torch, triton, numpy; print(torch.__version__, torch.version.cuda, triton.__version__, numpy.__version__, torch.cuda.get_device_name())'"
  "build|240|CMakeLists.txt pyproject.toml|MIMIC_FAST_CUDA=ON CMAKE_BUILD_PARALLEL_LEVEL=16 $PY -m pip install -q --no-index --no-build-isolation --no-deps -e . && $PY -c 'import mimic_fast as m, sys; c = m.build_config(); print(c); sys.exit(not (c[\"cuda\"] and c[\"cuda_devices\"] > 0))'"
  "pytest_cuda|200|tests|$PY -m pytest tests -m cuda -p no:cacheprovider -q -rfE --durations=10"
  "bench_overlap|90|benchmarks/bench_overlap.py|$PY benchmarks/bench_overlap.py --quick"
  "bench_ransac|90|benchmarks/bench_ransac.py|$PY benchmarks/bench_ransac.py --quick"
  "bench_matching|60|benchmarks/bench_matching.py|$PY benchmarks/bench_matching.py --quick --device cuda"
  "bench_sift|90|benchmarks/bench_sift.py|$PY benchmarks/bench_sift.py --quick --device cuda"
  "mine_cuda|120|../shared/data/video|set -o pipefail; M=\"$PY -m mimic_fast.cli mine ../shared/data/video --sift opencv --ransac native --workers 8 --no-progress\"; S='^(candidates|accepted|seconds)'; \$M --out $W/mine_cpu --device cpu | grep -E \$S && \$M --out $W/mine_cuda --device cuda | grep -E \$S && cmp $W/mine_cpu/index.jsonl $W/mine_cuda/index.jsonl && echo 'mine --device cuda: the CPU dataset, byte for byte'"
  "bench_mining|90|benchmarks/bench_mining.py benchmarks/bench_mining_device.py benchmarks/mining_profile.py|$PY benchmarks/bench_mining.py --device cuda --quick"
  "bench_attention|120|benchmarks/bench_attention.py|$PY benchmarks/bench_attention.py --warmup 3 --trials 10 --iters 5"
  "train_data|60|../shared/data/video/tum_freiburg_frames|$PY benchmarks/gpu_check_data.py $W/data"
  "train_smoke|150|python/mimic_fast/train/__main__.py|$PY -m mimic_fast.train --data $W/data --model croco_base --pos-embed rope100 --batch-size 64 --device cuda --num-workers 8 --no-progress --log-every 2 --ckpt-every 3 --out $W/run --max-steps 6 && $PY -m mimic_fast.cli eval $W/run --device cuda --max-pairs 32 --out $W/eval"
  "bench_train|150|benchmarks/bench_train.py|$PY benchmarks/bench_train.py --data $W/data --models croco_base mae_base --batch-size 128 --steps 6 --repeats 3 --num-workers 12"
)

if [[ -n "$ONLY" ]]; then  # env, build, then the steps named, in the listed order
  picked=(); names=" env build $ONLY "
  for s in "${STEPS[@]}"; do [[ "$names" == *" ${s%%|*} "* ]] && picked+=("$s"); done
  for n in $ONLY; do
    printf '%s\n' "${STEPS[@]}" | grep -q "^$n|" || { echo "ONLY: no step named $n"; exit 2; }
  done
  STEPS=("${picked[@]}")
fi

if (( DRY )); then
  missing=0
  for s in "${STEPS[@]}"; do
    IFS='|' read -r name to files cmd <<< "$s"
    echo "== $name (timeout ${to}s): $cmd"
    [[ "$files" == "-" ]] && continue
    for f in $files; do [[ -e "$f" ]] || { echo "   MISSING: $f"; missing=1; }; done
  done
  if printf '%s\n' "${STEPS[@]}" | grep -q "^pytest_cuda|"; then
    n=$($PY -m pytest tests -m cuda --collect-only -q -p no:cacheprovider 2>/dev/null | grep -c '::')
    echo "== pytest -m cuda collects $n tests"
    (( n > 0 )) || missing=1
  fi
  exit $missing
fi

export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUT" "$W"
exec > >(tee -a "$OUT/log.txt") 2>&1
echo '{}' > "$OUT/summary.json"
if compgen -G ".gpuwheels/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps .gpuwheels/*.whl
fi
for s in "${STEPS[@]}"; do
  IFS='|' read -r name to files cmd <<< "$s"
  now=$(( $(date +%s) - T0 )); left=$(( BUDGET - now ))
  if (( left < 20 )); then echo "== SKIP $name (t=${now}s)"; rc=skipped; secs=0
  else
    (( to > left )) && to=$left
    echo "== $name (t=${now}s, timeout ${to}s)"; a=$(date +%s)
    timeout -k 5 "$to" bash -c "$cmd" > "$W/$name.log" 2>&1; rc=$?; secs=$(( $(date +%s) - a ))
    tail -n 25 "$W/$name.log"; echo "== $name rc=$rc ${secs}s"
  fi
  $PY -c "import json, sys; p, n, rc, s = sys.argv[1:]; d = json.load(open(p)); d[n] = {'rc': rc, 's': int(s)}; json.dump(d, open(p, 'w'), indent=1)" \
    "$OUT/summary.json" "$name" "$rc" "$secs"
  for j in benchmarks/results/*-cuda.json; do  # each benchmark's GPU result, named for the machine
    [[ -e "$j" ]] && cp "$j" "$OUT/$(basename "${j%-cuda.json}")-h200.json"
  done
done
echo "== goals (as each benchmark printed them)"
grep -hi "goal" "$W"/bench_*.log 2>/dev/null | tee "$OUT/goals.txt"
echo "== done t=$(( $(date +%s) - T0 ))s"
