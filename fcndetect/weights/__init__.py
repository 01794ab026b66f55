"""Weights shipped inside the package (plain PyTorch state dicts), read by :mod:`fcndetect.models.registry`:
``face-wider-pnet.pt``, ``face-wider-rnet.pt``, ``face-wider.pt``, MTCNN's P-, R- and O-Net fine-tuned by
``fcndetect train --recipe configs/train/face.toml`` (see README.md beside them for data and licence)."""
