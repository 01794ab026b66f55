"""``fcndetect train``: train a detector from examples (:mod:`fcndetect.train`)."""

from __future__ import annotations

import sys

import click

from .common import EXIT_INTERRUPTED, EXIT_USAGE, bounded, err, fail


@click.command("train")
@click.option("--recipe", "recipe", default=None,
              help="Train a cascade from a recipe file (TOML: data, stages, schedule), e.g. configs/train/face.toml; "
                   "the single-stage options below do not apply.")
@click.option("--positives", "-p", multiple=True,
              help="Folder of object crops (each image one positive), or an annotation file (any `eval` format). "
                   "Repeatable.")
@click.option("--negatives", "-n", multiple=True, help="Folder, file or glob of images without the object. Repeatable.")
@click.option("-o", "--output", required=True, help="Output folder: model.pt, preset.toml, metrics.jsonl.")
@click.option("--arch", default="tiny", show_default=True, help="tiny, or a torchvision architecture.")
@click.option("--input-size", type=int, default=None, callback=bounded(1, 16384), help="Classifier input side (tiny: 34).")
@click.option("--weights", default=None, help="Initial weights: an earlier model.pt (tiny) or an ImageNet state dict.")
@click.option("--epochs", type=int, default=10, show_default=True, callback=bounded(1, 100000), help="Epochs per round.")
@click.option("--batch-size", type=int, default=128, show_default=True, callback=bounded(1, 65536))
@click.option("--lr", type=float, default=2e-3, show_default=True, callback=bounded(0, 100), help="Adam learning rate (halved each round).")
@click.option("--hard-negative-rounds", type=int, default=2, show_default=True, callback=bounded(0, 1000),
              help="Rounds of hard-negative mining after the first round.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed and thread count: same model.pt bytes.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--grayscale/--color", "grayscale", default=None,
              help="Train on grayscale windows (default: when any positive is single-channel); the preset then "
                   "converts every input image.")
@click.option("--label", default="object", show_default=True, help="Class name of the detections.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in OUTPUT from its last completed epoch.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run's files in OUTPUT.")
def train_cmd(recipe: str | None, positives: tuple[str, ...], negatives: tuple[str, ...], output: str, arch: str, input_size: int | None,
              weights: str | None, epochs: int, batch_size: int, lr: float, hard_negative_rounds: int, seed: int,
              device: str, grayscale: bool | None, label: str, resume: bool, overwrite: bool) -> None:
    """Train a detector from examples (DDFD's recipe): a classifier on object and background windows, with
    hard-negative mining, written as a preset that `run --config OUT/preset.toml` uses. With --recipe, every
    stage of a cascade in order (MTCNN's nets fine-tuned on annotated photos).

    \b
    Exit codes: 0 trained, 2 bad input (nothing trained), 130 interrupted (the last completed epoch is saved;
    --resume continues).
    """
    from ..detector import DeviceError
    from ..models.torchvision_models import ModelLoadError
    from ..train import TrainDataError, TrainError, TrainOptions, train

    if recipe is not None:
        _train_recipe(recipe, output, resume, overwrite)
        return
    if not positives:
        fail("Missing option '--positives' (or --recipe FILE)", EXIT_USAGE)
    opts = TrainOptions(
        positives=list(positives), negatives=list(negatives), output=output, arch=arch, input_size=input_size,
        weights=weights, epochs=epochs, batch_size=batch_size, lr=lr, hard_negative_rounds=hard_negative_rounds,
        seed=seed, device=device, grayscale=grayscale, label=label,
    )
    try:
        train(opts, resume=resume, overwrite=overwrite)
    except (TrainError, TrainDataError, ModelLoadError, DeviceError) as exc:
        fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        err(f"interrupted: {output} holds the last completed epoch; continue with --resume")
        sys.exit(EXIT_INTERRUPTED)


def _train_recipe(path: str, output: str, resume: bool, overwrite: bool) -> None:
    from ..detector import DeviceError
    from ..models.mtcnn import WeightsNotFoundError
    from ..train import TrainDataError, TrainError
    from ..train.cascade_loop import train_recipe
    from ..train.recipe import read_recipe

    try:
        train_recipe(read_recipe(path), output, resume=resume, overwrite=overwrite)
    except (TrainError, TrainDataError, DeviceError, WeightsNotFoundError) as exc:
        fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        err(f"interrupted: {output} holds the last completed epoch; continue with --resume")
        sys.exit(EXIT_INTERRUPTED)
