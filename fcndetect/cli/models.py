"""``fcndetect models``: the model catalogue (:mod:`fcndetect.models.listing`)."""

from __future__ import annotations

import click


@click.command("models")
@click.option("--geometry", is_flag=True, help="Also build each torchvision architecture to show its stride.")
def models_cmd(geometry: bool) -> None:
    """List the models: built-in face models, and torchvision architectures usable with --model."""
    from ..models.listing import catalogue

    click.echo(catalogue(geometry))
