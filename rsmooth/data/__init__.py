"""Data sets of the randomized-smoothing references, their on-disk formats, and synthetic stand-ins.

Everything yields ``(FloatTensor [C, H, W] in [0, 1], int label)`` with no normalisation (that is the model's first
layer). Each data set's facts (files, shape, classes, transforms) are its spec in ``rsmooth.dataset_info``; the
modules here hold the code that reads them. Layouts under the data root (see each module's docstring for the file
formats):

- cifar10: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
- mnist: ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
- imagenet: ``<root>/imagenet/{train,val}/<wnid>/*.JPEG``
- imagenet32: ``<root>/imagenet32/Imagenet32_train/train_data_batch_{1..10}``,
  ``<root>/imagenet32/Imagenet32_val/val_data``
- tinyimages: ``<root>/tinyimages/ti_500K_pseudo_labeled.pickle``
"""

from rsmooth.data.cifar10 import download_cifar10, verify_cifar10
from rsmooth.data.errors import DatasetFormatError, DatasetIntegrityError, DatasetNotFoundError
from rsmooth.data.manifest import LABEL_ORIGINS, ManifestError, read_manifest
from rsmooth.data.mnist import download_mnist
from rsmooth.data.pseudolabel import predict_labels, write_merged_trainset
from rsmooth.data.registry import (
    DATASETS,
    REFERENCE_SUBSAMPLE_SKIP,
    dataset_splits,
    get_dataset,
    input_shape,
    num_classes,
)
from rsmooth.data.selftraining import load_merged_trainset
from rsmooth.data.synthetic import (
    class_prototypes,
    write_synthetic_cifar10,
    write_synthetic_imagenet,
    write_synthetic_imagenet32,
    write_synthetic_mnist,
    write_synthetic_tinyimages,
)
from rsmooth.data.transforms import build_transform

__all__ = [
    "DATASETS",
    "LABEL_ORIGINS",
    "REFERENCE_SUBSAMPLE_SKIP",
    "DatasetFormatError",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "ManifestError",
    "build_transform",
    "class_prototypes",
    "dataset_splits",
    "download_cifar10",
    "download_mnist",
    "get_dataset",
    "input_shape",
    "load_merged_trainset",
    "num_classes",
    "predict_labels",
    "read_manifest",
    "verify_cifar10",
    "write_merged_trainset",
    "write_synthetic_cifar10",
    "write_synthetic_imagenet",
    "write_synthetic_imagenet32",
    "write_synthetic_mnist",
    "write_synthetic_tinyimages",
]
