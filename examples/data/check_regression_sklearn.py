# Acceptance check (needs numpy, safetensors, scikit-learn; run from the repository
# root after `cargo build --release`): train on a diabetes train/test split with
# ember, predict the test rows with `ember predict`, compare the run's last eval metrics
# with scikit-learn's on those predictions.
import csv, os, subprocess, tempfile
import numpy as np
from safetensors.numpy import save_file, load_file
from sklearn.metrics import mean_absolute_error, root_mean_squared_error, r2_score

root = os.getcwd()
os.chdir(tempfile.mkdtemp())
rows = list(csv.reader(open(os.path.join(root, 'examples/data/diabetes.csv'))))
header, data = rows[0], np.array(rows[1:], dtype=np.float64)
rng = np.random.default_rng(0); idx = rng.permutation(len(data)); test, train = data[idx[:90]], data[idx[90:]]
for name, part in [('train', train), ('test', test)]:
    with open(f'{name}.csv', 'w') as f:
        f.write(','.join(header) + '\n')
        for r in part: f.write(','.join(repr(float(v)) for v in r) + '\n')
cfg = open(os.path.join(root, 'examples/configs/diabetes_regression.toml')).read()
cfg = cfg.replace('path = "examples/data/diabetes.csv"', f'train = "{os.getcwd()}/train.csv"\ntest = "{os.getcwd()}/test.csv"').replace('eval_split = 0.2\n', '').replace('lr = 0.05', 'lr = 0.02').replace('epochs = 150', 'epochs = 60')
open('run.toml', 'w').write(cfg)
E = os.path.join(root, 'target/release/ember')
subprocess.run([E, 'train', 'run.toml', '--out', 'run', '--overwrite', '--quiet'], check=True, capture_output=True)
save_file({'input': test[:, :10].astype(np.float32)}, 'in.safetensors')
subprocess.run([E, 'predict', 'run', '--input', 'in.safetensors', '--out', 'pred.safetensors'], check=True, capture_output=True)
pred = load_file('pred.safetensors'); key = list(pred)[0]; p = pred[key].astype(np.float64).reshape(-1)
y = test[:, 10]
last = list(csv.DictReader(open('run/metrics.csv')))[-1]
for col, fn in [('eval_mae', mean_absolute_error), ('eval_rmse', root_mean_squared_error), ('eval_r2', r2_score)]:
    ours, theirs = float(last[col]), fn(y, p)
    print(col, ours, theirs, abs(ours - theirs) / abs(theirs))
    assert abs(ours - theirs) <= 1e-6 * abs(theirs)
print('regression ok')
