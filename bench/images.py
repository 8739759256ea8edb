"""Image-folder loading speed: Ember against torchvision, in one run on one machine.

Writes (once) a folder of 10,000 JPEG images, 64x64 RGB, in 10 class sub-directories
(structured content: smooth colour fields, shapes and noise, a fixed seed), then times
training epochs over it:

- torchvision: `datasets.ImageFolder(DIR, transform=Compose([RandomCrop(64, padding=4),
  RandomHorizontalFlip(), ToTensor(), Normalize(0.5, 0.5)]))` read through
  `DataLoader(batch_size=64, shuffle=True, num_workers=2)`;
- Ember: `ember bench images DIR --batch-size 64 --crop-padding 4 --flip true`, the same
  decoding and augmentation through the loader training uses.

Each prints one JSON line (`open_seconds`, `epoch_seconds`, the median `seconds_per_epoch`,
`images_per_second`); the last line is the ratio of Ember's seconds per epoch to
torchvision's (< 1: Ember is faster). Every batch is summed, so no work is skipped.

    cargo build --release
    python bench/images.py                       # both (writes /tmp/ember-images-10k once)
    python bench/images.py --ember none          # torchvision only
    target/release/ember bench images /tmp/ember-images-10k --epochs 3

`--size H,W` resizes on both sides (torchvision: `Resize((H, W))` first, which
antialiases; Ember: bilinear without antialias); by default the images keep their size.
`--threads N` sets Ember's decoding threads (default every core); `--workers` torchvision's.
Needs torch, torchvision and pillow.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", default="/tmp/ember-images-10k")
    p.add_argument("--images", type=int, default=10_000, help="images to write (only when the folder is absent)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--image-size", type=int, default=64, help="the written images' height and width")
    p.add_argument("--size", default=None, help="H,W: resize to this (default: the images' own size)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--crop-padding", type=int, default=4)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="torchvision DataLoader num_workers")
    p.add_argument("--threads", type=int, default=None, help="Ember's --threads (default: every core)")
    p.add_argument("--ember", default="target/release/ember", help="the ember binary, or 'none' to skip it")
    p.add_argument("--skip-torchvision", action="store_true")
    return p.parse_args()


a = None  # the arguments, set by main()


def marker():
    return os.path.join(a.dir, ".complete")  # hidden: neither loader takes it for a class


def write_folder():
    from PIL import Image

    rng = np.random.default_rng(0)
    s = a.image_size
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    for k in range(a.classes):
        os.makedirs(os.path.join(a.dir, f"class_{k:02d}"), exist_ok=True)
    t = time.perf_counter()
    for i in range(a.images):
        k = i % a.classes
        # A smooth colour field (a few waves per channel, the class tilting the palette),
        # a few filled rectangles and discs, and sensor-like noise: JPEG has real work.
        img = np.empty((s, s, 3), np.float32)
        for c in range(3):
            f = rng.uniform(0.5, 4.0, size=(3, 2))
            ph = rng.uniform(0, 2 * np.pi, size=3)
            field = sum(np.sin(2 * np.pi * (f[j, 0] * xx + f[j, 1] * yy) + ph[j]) for j in range(3))
            img[..., c] = 128 + 40 * field + 30 * np.cos(k + c)
        for _ in range(rng.integers(2, 6)):
            colour = rng.uniform(0, 255, size=3)
            x0, y0 = rng.integers(0, s, size=2)
            r = rng.integers(s // 10, s // 3)
            if rng.random() < 0.5:
                img[y0 : y0 + r, x0 : x0 + r] = colour
            else:
                img[(xx * s - x0) ** 2 + (yy * s - y0) ** 2 < r * r] = colour
        img += rng.normal(0, 8, size=img.shape)
        pixels = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(os.path.join(a.dir, f"class_{k:02d}", f"{i:05d}.jpg"), quality=90)
    open(marker(), "w").close()
    total = sum(
        os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(a.dir) for f in fs if f.endswith(".jpg")
    )
    print(json.dumps({"wrote": a.dir, "images": a.images, "bytes": total, "seconds": time.perf_counter() - t}))


def warm_cache():
    """Reads every file once, so both loaders start from the page cache."""
    n = 0
    for r, _, fs in os.walk(a.dir):
        for f in fs:
            with open(os.path.join(r, f), "rb") as fh:
                n += len(fh.read())
    return n


def summary(loader, images, open_seconds, epoch_seconds, **extra):
    median = sorted(epoch_seconds)[len(epoch_seconds) // 2]
    return {
        "loader": loader,
        "images": images,
        "open_seconds": open_seconds,
        "epoch_seconds": epoch_seconds,
        "seconds_per_epoch": median,
        "images_per_second": images / median,
        **extra,
    }


def time_torchvision(size):
    import torch
    import torchvision
    from PIL import Image
    from torchvision import datasets
    from torchvision import transforms as T

    steps = []
    if size is not None:
        steps.append(T.Resize(size))
    else:
        first = os.path.join(a.dir, sorted(d for d in os.listdir(a.dir) if not d.startswith("."))[0])
        with Image.open(os.path.join(first, sorted(os.listdir(first))[0])) as im:
            size = (im.height, im.width)
    if a.crop_padding > 0:
        steps.append(T.RandomCrop(size, padding=a.crop_padding))
    if not a.no_flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]
    t = time.perf_counter()
    ds = datasets.ImageFolder(a.dir, transform=T.Compose(steps))
    open_seconds = time.perf_counter() - t
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers)
    epochs, checksum = [], 0.0
    for _ in range(a.epochs):
        t = time.perf_counter()
        seen = 0
        for x, y in dl:
            seen += len(y)
            checksum += float(x.sum())
        epochs.append(time.perf_counter() - t)
        assert seen == len(ds), (seen, len(ds))
    return summary(
        f"torchvision {torchvision.__version__} (torch {torch.__version__}, num_workers={a.workers})",
        len(ds),
        open_seconds,
        epochs,
        shape=list(x.shape[1:]),
        checksum=checksum,
    )


def time_ember():
    cmd = [a.ember, "bench", "images", a.dir, "--batch-size", str(a.batch_size), "--epochs", str(a.epochs)]
    cmd += ["--crop-padding", str(a.crop_padding), "--flip", "false" if a.no_flip else "true"]
    if a.size:
        cmd += ["--size", a.size]
    if a.threads is not None:
        cmd += ["--threads", str(a.threads)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({run.returncode}):\n{run.stderr}{run.stdout}")
    line = [l for l in run.stdout.splitlines() if l.strip()][-1]
    return json.loads(line)


def main():
    global a
    a = parse_args()
    if not os.path.exists(marker()):
        write_folder()
    warm_cache()
    size = tuple(int(v) for v in a.size.replace("x", ",").split(",")) if a.size else None
    if size is not None and len(size) == 1:
        size = (size[0], size[0])
    print(json.dumps({"dir": a.dir, "cores": os.cpu_count(), "batch_size": a.batch_size, "epochs": a.epochs}))

    tv = None
    if not a.skip_torchvision:
        tv = time_torchvision(size)
        print(json.dumps(tv))
    em = None
    if a.ember != "none":
        if os.path.exists(a.ember):
            em = time_ember()
            print(json.dumps(em))
        else:
            print(json.dumps({"skipped": "ember", "reason": f"{a.ember} does not exist (cargo build --release)"}))
    if tv and em:
        print(
            json.dumps(
                {
                    "ember_over_torchvision": em["seconds_per_epoch"] / tv["seconds_per_epoch"],
                    "ember_seconds_per_epoch": em["seconds_per_epoch"],
                    "torchvision_seconds_per_epoch": tv["seconds_per_epoch"],
                }
            )
        )


if __name__ == "__main__":
    main()
