#!/usr/bin/env bash
# The exact command behind benchmarks/results/transfer_study.{json,md,png} (issue 15): synthetic cohort on the
# issue-14 generator -> labelled store -> pretraining pool -> the resumable study (cpu preset, 2 workers x 1 thread).
# Re-running it resumes: finished steps and finished units are skipped. Stop: kill -9 -- -PGID.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/study}
PATIENTS=${PATIENTS:-4600}
BIN=${BIN:-.venv/bin}
# Scheduling only (units are the same whatever the order): the paper's comparison first for every
# replicate, then the other routes, so a budget cut short still leaves whole comparisons.
PRIORITY=${PRIORITY:-signal+je-barlow,regft,multimodal+distill,je-infonce,je-vicreg}
export OMP_NUM_THREADS=1 MPLBACKEND=Agg
mkdir -p "$RUN"
[ -d "$RUN/synth" ] || "$BIN/ecgkt" synth --out "$RUN/synth" --patients "$PATIENTS" --seed 0 --workers 2
[ -d "$RUN/store" ] || "$BIN/ecgkt" build --synthetic "$RUN/synth" --out "$RUN/store" --seed 0 --workers 2 --quiet
[ -d "$RUN/pool" ] || "$BIN/ecgkt" build --synthetic "$RUN/synth" --out "$RUN/pool" --seed 0 --workers 2 --quiet \
    --pretrain-pool --labelled-store "$RUN/store"
STUDY=(--store "$RUN/store" --out "$RUN/run" --preset cpu --workers 2 --threads 1 --replicates 5 --test-folds 2
       --fractions 0.05,0.2,1 --pool "$RUN/pool")
# The ECG-only oracle ceiling on the plan's own test folds and primary labels (benchmarks/transfer_ceiling.py;
# its oracle predictions are cached in $RUN/run/ceiling, so a resume only re-scores them).
"$BIN/python" benchmarks/transfer_study.py "${STUDY[@]}" --plan-only
OMP_NUM_THREADS=2 "$BIN/python" benchmarks/transfer_ceiling.py --study "$RUN/run" --synth "$RUN/synth"
exec "$BIN/python" benchmarks/transfer_study.py "${STUDY[@]}" \
    --ceilings benchmarks/results/transfer_ceiling.json \
    --ceiling-key "macro_auroc_per_replicate.ecg_params+demographics" --priority "$PRIORITY"
