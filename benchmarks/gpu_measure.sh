#!/usr/bin/env bash
# The GPU measurement session behind datasets/measurements/<gpu>/<date>/ (read-only: no device
# setting is changed). Usage: benchmarks/gpu_measure.sh OUTDIR STAGE...
# Stages: env tests quick overhead gemm gemm32 check llm_prefill llm_decode llm_e2e colocate pack
# Every stage appends to OUTDIR/log.txt and writes into the store OUTDIR/store, so a run cut
# short still leaves what it measured.
set -uo pipefail
OUT=${1:?usage: gpu_measure.sh OUTDIR STAGE...}
shift
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$(pwd)
S=${WATTLAS_GPU_STORE:-/tmp/wattlas-store}
W="python3 -m wattlas"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/log.txt"; }
for stage in "$@"; do
  log "stage $stage"
  case $stage in
    env)
      nvidia-smi 2>&1 | tee -a "$OUT/log.txt"
      python3 -c "import torch, transformers, numpy, pyarrow, pynvml; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'numpy', numpy.__version__, 'pyarrow', pyarrow.__version__)" 2>&1 | tee -a "$OUT/log.txt"
      $W bench info > "$OUT/info.json" 2>>"$OUT/log.txt"; cat "$OUT/info.json" >> "$OUT/log.txt" ;;
    tests)
      python3 -m pytest -q -p no:cacheprovider tests/test_bench_gpu.py tests/test_bench_meters.py tests/test_bench_sweep.py 2>&1 | tee -a "$OUT/log.txt" ;;
    quick)
      $W bench gemm --quick --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt"
      $W bench llm --quick --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt"
      $W bench colocate --quick --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    overhead)
      python3 benchmarks/bench_overhead.py 2>&1 | tee -a "$OUT/log.txt" ;;
    gemm)
      $W bench gemm --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    gemm32)
      $W bench gemm --dtypes fp32 --sizes 4096,8192 --idle-s 0 --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    check)
      $W bench energy-check --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    llm_prefill)
      $W bench llm --model llama-3-8b --phases prefill --batch-sizes 1,8,32 --input-tokens 512,2048 \
        --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    llm_decode)
      $W bench llm --model llama-3-8b --phases decode --batch-sizes 1,8,32,64 --input-tokens 512,2048 \
        --output-tokens 128 --idle-s 0 --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    llm_e2e)
      $W bench llm --model llama-3-8b --phases e2e --batch-sizes 1,16,64 --input-tokens 512 --output-tokens 64 \
        --idle-s 0 --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    colocate)
      $W bench colocate --store "$S" --format csv 2>&1 | tee -a "$OUT/log.txt" ;;
    pack)
      python3 - "$S" "$OUT" <<'EOF' 2>&1 | tee -a "$OUT/log.txt"
import sys, pyarrow as pa, pyarrow.parquet as pq, json, pathlib
store, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
cat = json.loads((store / "catalog.json").read_text())
for table, entry in cat["tables"].items():
    files = [store / "tables" / table / f for src in entry.values() for k in src.values() for f in k["files"]]
    t = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    pq.write_table(t, out / f"{table}.parquet", compression="zstd")
    print(table, t.num_rows, "rows")
EOF
      ;;
    *) log "unknown stage $stage" ;;
  esac
done
log "done"
