#!/usr/bin/env bash
# The run-directory scenarios of RELIABILITY.md, end to end on the ember binary: re-running
# into the same directory, two trainers on one directory, export over a checkpoint, and a
# kill between the epoch checkpoint and best.safetensors. Each scenario prints PASS or
# FAIL with what it checked; the exit status is the number of failures.
#
#   fuzz/run_dir_scenarios.sh [PATH_TO_EMBER]    (default: target/release/ember, built if missing)
set -uo pipefail
cd "$(dirname "$0")/.."
EMBER=${1:-target/release/ember}
if [[ ! -x $EMBER ]]; then cargo build --release --quiet || exit 1; fi
EMBER=$(realpath "$EMBER")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
export HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:9
fails=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }
# A listing of every file of a run with its checksum: equal listings = nothing lost or mixed.
snapshot() { (cd "$1" && find . -type f ! -name .ember.lock -print0 | sort -z | xargs -0 sha256sum); }
epoch_meta() { "$EMBER" inspect "$1" | sed -n 's/^metadata epoch = //p'; }

cat > six.toml <<'TOML'
seed = 3
[model]
sizes = [8, 32, 3]
[loss]
name = "cross_entropy"
[optimizer]
name = "adam"
lr = 0.01
[data]
kind = "synthetic"
n_train = 400
n_eval = 100
features = 8
classes = 3
[train]
epochs = 6
batch_size = 32
keep_last = 3
best_metric = "train_loss"
TOML
sed 's/n_train = 400/n_train = 40000/; s/epochs = 6/epochs = 1000/' six.toml > long.toml

echo "== 1. re-running an edited config into the same directory"
"$EMBER" train six.toml --quiet > /dev/null
before=$(snapshot runs/six)
"$EMBER" train six.toml --out runs/six --epochs 2 --quiet > out.txt 2> err.txt
rc=$?
check "a second run with --out runs/six is refused (exit 1), naming --resume and --overwrite" \
    '[[ $rc -eq 1 ]] && grep -q "already holds a run" err.txt && grep -q -- "--overwrite" err.txt'
check "runs/six is byte for byte as the first run left it" '[[ "$(snapshot runs/six)" == "$before" ]]'
"$EMBER" train six.toml --epochs 2 --quiet > out.txt 2> err.txt
check "without --out the second run goes to runs/six-2" 'grep -q "\"out\":\"runs/six-2\"" out.txt && [[ -f runs/six-2/checkpoints/epoch-0002.safetensors ]]'
check "runs/six still holds epochs 4-6 and a best" '[[ -f runs/six/checkpoints/epoch-0006.safetensors && -f runs/six/checkpoints/best.safetensors && "$(snapshot runs/six)" == "$before" ]]'
"$EMBER" train six.toml --out runs/six --epochs 2 --overwrite --quiet > out.txt 2> err.txt
ckpt=$(sed -n 's/.*"checkpoint":"\([^"]*\)".*/\1/p' out.txt)
check "--overwrite replaces it: only the new run's epochs, and the summary names an existing file" \
    '[[ -f "$ckpt" ]] && [[ "$(ls runs/six/checkpoints | grep -c epoch-)" == 2 ]] && [[ ! -e runs/six/checkpoints/epoch-0006.safetensors ]]'

echo "== 2. two trainers on one directory"
"$EMBER" train long.toml --out runs/long --quiet > /dev/null 2>&1 &
first=$!
for _ in $(seq 600); do [[ -f runs/long/checkpoints/epoch-0001.safetensors ]] && break; sleep 0.1; done
"$EMBER" train long.toml --out runs/long --quiet > out.txt 2> err.txt
check "a second trainer is refused, naming the first (pid $first)" 'grep -q "in use by process $first" err.txt'
"$EMBER" train --resume runs/long --epochs 2000 --quiet > out.txt 2> err.txt
check "a resume of the busy directory is refused too" 'grep -q "in use by process $first" err.txt'
kill -9 "$first"; wait "$first" 2> /dev/null
last=$(ls runs/long/checkpoints | sed -n 's/epoch-0*\([0-9]*\)\.safetensors/\1/p' | sort -n | tail -1)
"$EMBER" train --resume runs/long --epochs $((last + 1)) > out.txt 2> err.txt
check "after SIGKILL the lock is taken over and the run resumes" 'grep -q "was last held by process $first" err.txt && grep -q "\"epochs\":$((last + 1))" out.txt'

echo "== 3. export over a checkpoint"
"$EMBER" train six.toml --out runs/exp --quiet > /dev/null
before=$(snapshot runs/exp)
"$EMBER" export runs/exp --out runs/exp/checkpoints/epoch-0006.safetensors > out.txt 2> err.txt
check "export onto the checkpoint it reads is refused" 'grep -q "is the checkpoint being exported" err.txt'
"$EMBER" export runs/exp/checkpoints/epoch-0005.safetensors --out runs/exp/checkpoints/epoch-0006.safetensors > out.txt 2> err.txt
check "export over another Ember checkpoint is refused without --force" 'grep -q "is an Ember checkpoint (epoch 6)" err.txt'
check "nothing in the run changed" '[[ "$(snapshot runs/exp)" == "$before" ]]'
"$EMBER" export runs/exp/checkpoints/epoch-0005.safetensors --out runs/exp/checkpoints/epoch-0006.safetensors --force > /dev/null 2>&1
"$EMBER" train --resume runs/exp --epochs 7 > out.txt 2> err.txt
check "a resume skips the exported-over checkpoint, naming it, and continues from epoch 5" \
    'grep -q "skipped .*epoch-0006.safetensors: not an Ember checkpoint" err.txt && grep -q "resuming from .*epoch-0005" err.txt && grep -q "\"epochs\":7" out.txt'

echo "== 4. a kill between epoch-N and best.safetensors"
"$EMBER" train six.toml --out runs/kill --epochs 1 --quiet > /dev/null
EMBER_FAILPOINT_CHECKPOINT_WRITE=best.safetensors "$EMBER" train --resume runs/kill --epochs 2 --quiet > /dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do [[ -f runs/kill/checkpoints/best.safetensors.paused ]] && break; sleep 0.1; done
kill -9 "$pid"; wait "$pid" 2> /dev/null
rm -f runs/kill/checkpoints/best.safetensors.paused
check "killed while writing best: epoch 2 is saved, best still holds epoch 1" \
    '[[ -f runs/kill/checkpoints/epoch-0002.safetensors && "$(epoch_meta runs/kill/checkpoints/best.safetensors)" == 1 ]]'
"$EMBER" train --resume runs/kill --epochs 2 > out.txt 2> err.txt
check "the resume rewrites best from epoch 2 and says so" \
    'grep -q "rewrote it from" err.txt && [[ "$(epoch_meta runs/kill/checkpoints/best.safetensors)" == 2 ]]'
check "no temporaries are left" '[[ -z "$(find runs -name "*.tmp-*")" ]]'

echo "$fails failed"
exit "$fails"
