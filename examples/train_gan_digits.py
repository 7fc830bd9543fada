"""Train the GAN compiled from specs/gan.step on scikit-learn's digit images.

The data is the small handwritten-digit set bundled with scikit-learn
(``sklearn.datasets.load_digits``: 1797 grayscale 8x8 images, no download).
The script imports the Python module that stepc generated from
``specs/gan.step``, builds a small discriminator and generator for 8x8
images, trains the GAN briefly with Keras ``fit()`` (progress bar and all),
then samples 64 digits from the generator and saves them as a PNG grid.

Run it from the repository root once the GAN has been compiled::

    python examples/train_gan_digits.py
    python examples/train_gan_digits.py --module generated/gan.py \\
        --epochs 100 --out gan_digits.png

With the defaults (30 epochs of 28 batches) it needs about 45 s of CPU time:
roughly 30-75 s of wall time on two CPU cores, depending on other load.
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image
from sklearn.datasets import load_digits

IMAGE_SIZE = 8  # load_digits() images are 8x8
LATENT_DIM = 32
# Adam with beta_1=0.5 (the usual DCGAN setting): with the default 0.9 these
# tiny networks collapsed to a single blob shape within the default epochs.
LEARNING_RATE = 0.0003
BETA_1 = 0.5
GRID = 8  # the PNG shows GRID x GRID samples
SCALE = 4  # each 8x8 sample is drawn as 32x32 pixels
GAP = 1  # pixels between samples


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--module",
        default="generated/gan.py",
        help="Python file compiled from specs/gan.step (default: %(default)s)",
    )
    parser.add_argument("--epochs", type=int, default=30, help="default: %(default)s")
    parser.add_argument("--batch-size", type=int, default=64, help="default: %(default)s")
    parser.add_argument(
        "--out", default="gan_digits.png", help="PNG to write (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    return parser.parse_args(argv)


def load_module(path):
    """Import a Python file by path, registered in sys.modules first."""
    path = Path(path)
    if not path.is_file():
        sys.exit(f"error: no such module file: {path} (compile specs/gan.step first)")
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_images():
    """Return the sklearn digits as float32 in [0, 1], shape (N, 8, 8, 1)."""
    images = load_digits().images.astype("float32") / 16.0
    return images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)


def whole_batches(images, batch_size):
    """The images, trimmed to whole batches so every step sees the same shape
    (a traced step is then compiled once). NumPy arrays, which fit() takes on
    every backend; fit() shuffles them every epoch."""
    return images[: len(images) // batch_size * batch_size]


def build_discriminator():
    """Two small convolutions (the second strided), max-pooled to one logit."""
    return keras.Sequential(
        [
            keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1)),
            layers.Conv2D(32, 3, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(64, 3, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1),
        ],
        name="discriminator",
    )


def build_generator(latent_dim):
    """Latent vector -> 4x4x64 map -> upsampled once to an 8x8 image."""
    return keras.Sequential(
        [
            keras.Input(shape=(latent_dim,)),
            layers.Dense(4 * 4 * 64),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Reshape((4, 4, 64)),
            layers.Conv2DTranspose(64, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ],
        name="generator",
    )


def build_gan(module, latent_dim):
    """Instantiate and compile the generated GAN class."""
    gan = module.GAN(
        discriminator=build_discriminator(),
        generator=build_generator(latent_dim),
        latent_dim=latent_dim,
    )
    gan.compile(
        d_optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE, beta_1=BETA_1),
        g_optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE, beta_1=BETA_1),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return gan


def sample_digits(generator, count, latent_dim, seed):
    """Decode `count` random latent points into (count, 8, 8) images."""
    z = np.random.default_rng(seed).normal(size=(count, latent_dim))
    images = generator.predict(z.astype("float32"), verbose=0)
    return images.reshape(count, IMAGE_SIZE, IMAGE_SIZE)


def save_grid(images, path, grid=GRID, scale=SCALE, gap=GAP):
    """Write images as a grid PNG, each upscaled with nearest neighbour."""
    cell = IMAGE_SIZE * scale
    side = grid * cell + (grid + 1) * gap
    canvas = Image.new("L", (side, side), color=0)
    for i, image in enumerate(images[: grid * grid]):
        pixels = np.clip(image * 255.0, 0, 255).astype("uint8")
        tile = Image.fromarray(pixels).resize((cell, cell), Image.Resampling.NEAREST)
        row, col = divmod(i, grid)
        canvas.paste(tile, (gap + col * (cell + gap), gap + row * (cell + gap)))
    canvas.save(path)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    module = load_module(args.module)
    images = load_images()
    print(
        f"Data: scikit-learn load_digits(), {len(images)} handwritten digits, "
        f"{IMAGE_SIZE}x{IMAGE_SIZE} grayscale scaled to [0, 1] (bundled, no download)."
    )
    gan = build_gan(module, LATENT_DIM)
    print(f"Backend: {keras.backend.backend()} (set KERAS_BACKEND to choose another)")
    fit_start = time.perf_counter()
    history = gan.fit(
        whole_batches(images, args.batch_size), batch_size=args.batch_size, epochs=args.epochs
    )
    fit_time = time.perf_counter() - fit_start
    samples = sample_digits(gan.generator, GRID * GRID, LATENT_DIM, args.seed)
    save_grid(samples, args.out)
    print(f"Saved {GRID * GRID} generated digits to {args.out}")
    print(
        f"Final d_loss: {history.history['d_loss'][-1]:.4f}  "
        f"g_loss: {history.history['g_loss'][-1]:.4f}"
    )
    total = time.perf_counter() - start
    print(f"Wall time: {total:.1f} s (training {fit_time:.1f} s)")


if __name__ == "__main__":
    main()
