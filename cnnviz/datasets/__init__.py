"""Datasets: specs -> labeled uint8 images (``base``), where the files are (``locate``), the built-in
formats (``idx``, ``cifar``), image folders (``folders``), the decoded-image cache (``cache``) and the
loaders that batch them (``loader``). ``cnnviz.data.open_split`` is the entry point.
"""

from cnnviz.datasets.base import ArrayImages, FolderImages, LabeledImages, SubsetImages, limit_dataset, permuted_labels, stratified_indices

__all__ = ["ArrayImages", "FolderImages", "LabeledImages", "SubsetImages", "limit_dataset", "permuted_labels", "stratified_indices"]
