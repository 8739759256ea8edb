# Acceptance check (needs numpy, safetensors, scikit-learn; run from the repository
# root after `cargo build --release`): train the diabetes config on a train/test split
# and a multi-label table with ember, predict the test rows with `ember predict`, and
# compare the runs' last eval metrics with scikit-learn's on those predictions.
import csv, os, subprocess, tempfile
import numpy as np
from safetensors.numpy import save_file, load_file
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, root_mean_squared_error, r2_score

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

# Multi-label: two 0/1 label columns from three features, bce_with_logits, per-label and
# macro F1 against scikit-learn's f1_score on the predictions (a label is predicted
# where its logit is > 0).
rng = np.random.default_rng(1)
def labels(x):
    return np.stack([(x[:, 0] + 0.2 * rng.uniform(-1, 1, len(x)) > 0), (x[:, 1] - x[:, 2] > 0.5)], 1).astype(np.float64)
xs = {n: rng.uniform(-2, 2, (m, 3)) for n, m in [('ml_train', 240), ('ml_test', 80)]}
for name, x in xs.items():
    with open(f'{name}.csv', 'w') as f:
        f.write('x1,x2,x3,a,b\n')
        for r in np.concatenate([x, labels(x)], 1): f.write(','.join(repr(float(v)) for v in r) + '\n')
y = np.loadtxt('ml_test.csv', delimiter=',', skiprows=1)[:, 3:]
open('ml.toml', 'w').write(f'''seed = 2
[model]
sizes = [3, 16, 2]
[loss]
name = "bce_with_logits"
[optimizer]
name = "adam"
lr = 0.05
[data]
kind = "csv"
train = "{os.getcwd()}/ml_train.csv"
test = "{os.getcwd()}/ml_test.csv"
target = ["a", "b"]
[train]
epochs = 8
batch_size = 24
metrics = ["f1:average=macro", "f1:label=0", "f1:label=1", "f1:average=micro", "accuracy"]
''')
subprocess.run([E, 'train', 'ml.toml', '--out', 'ml', '--overwrite', '--quiet'], check=True, capture_output=True)
save_file({'input': np.loadtxt('ml_test.csv', delimiter=',', skiprows=1)[:, :3].astype(np.float32)}, 'ml_in.safetensors')
subprocess.run([E, 'predict', 'ml', '--input', 'ml_in.safetensors', '--out', 'ml_pred.safetensors'], check=True, capture_output=True)
pred = (load_file('ml_pred.safetensors')['output'] > 0).astype(np.float64)
last = list(csv.DictReader(open('ml/metrics.csv')))[-1]
per = f1_score(y, pred, average=None)
for col, theirs in [('eval_f1[average=macro]', f1_score(y, pred, average='macro')), ('eval_f1[label=0]', per[0]),
                    ('eval_f1[label=1]', per[1]), ('eval_f1[average=micro]', f1_score(y, pred, average='micro')),
                    ('eval_accuracy', accuracy_score(y, pred))]:
    ours = float(last[col])
    print(col, ours, theirs)
    assert abs(ours - theirs) <= 1e-12, (col, ours, theirs)
print('multi-label ok')
