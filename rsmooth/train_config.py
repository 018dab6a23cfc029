"""Training hyper-parameters, validated before any data is read or any model built (no torch import: the
Snakemake DAG validates every grid cell with it).

``TrainConfig`` is generated from the options below and those of every registered method
(``rsmooth.train.methods.REGISTRY``), in a fixed order: the run's settings, the options shared by several
methods, the options of the first methods (carried by every config), the inputs and runtime settings, then
the options that only their own method's configs carry. ``scripts/train.py``'s flags, the schema's training
section (:func:`training_schema`) and the cell ids come from the same list.

Defaults are the papers' CIFAR-10 settings. ``eps`` and ``smoothmix_alpha`` are in [0, 1] pixel L2 units (the
reference's command line divides by 256: ``--epsilon 64`` is 0.25 here). ``lr_step_size = 0`` keeps the
learning rate constant (fine-tuning). ``batches_per_epoch`` sets a run's length in SGD steps (``epochs x
batches_per_epoch``) whatever the training set's size; every epoch-counted setting (lr steps, warm-up,
evaluation, resumption) then counts these epochs. ``warmup`` is the number of epochs over which eps (SmoothAdv) or the
mixup weight (SmoothMix) grows linearly, as ``min(1, (epoch + 1) / warmup)``. A shared option left at
``None`` takes its method's default (MACER's k = 16, ...) when the config is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rsmooth.dataset_info import DATASET_SPECS, DATASETS
from rsmooth.fastpath import DEFAULT_PRECISION, TRAINING_PRECISIONS
from rsmooth.options import Option
from rsmooth.train.methods import REGISTRY, Method, get_method

METHODS: tuple[str, ...] = tuple(REGISTRY)
ATTACKS = ("pgd", "ddn", "pgd_stein")

_RUN = (
    Option("dataset", str, "cifar10", "training set", choices=tuple(DATASETS)),
    Option("arch", str, "cifar_resnet110", "architecture (rsmooth.models.ARCHITECTURES)"),
    Option("method", str, "gaussian", "training method", choices=METHODS),
    Option("sigma", float, 0.25, "training noise level", minimum=0),
    Option("epochs", int, 150, "training epochs", minimum=1),
    Option(
        "batches_per_epoch",
        int,
        None,
        "SGD steps per epoch (unset: one pass over the training set)",
        minimum=1,
        nullable=True,
    ),
    Option("batch_size", int, 256, "loader batch size", minimum=1),
    Option("lr", float, 0.1, "initial learning rate", minimum=0),
    Option("lr_step_size", int, 50, "epochs between lr decays (0: constant lr)", minimum=0),
    Option("lr_gamma", float, 0.1, "lr decay factor", above=0),
    Option("momentum", float, 0.9, "SGD momentum", minimum=0),
    Option("weight_decay", float, 1e-4, "SGD weight decay", minimum=0),
)
# Shared by several methods. A method may give its own default (Method.defaults) to eps, steps,
# num_noise_vec and warmup: they are None until the config is built.
_SHARED = (
    Option("attack", str, "pgd", "SmoothAdv's attack", choices=ATTACKS),
    Option("eps", float, 0.25, "attack L2 radius, [0, 1] pixels (reference --epsilon / 256)", minimum=0),
    Option("steps", int, 10, "attack steps T", minimum=1, short="T"),
    Option("num_noise_vec", int, 1, "noise draws per image m (MACER: k)", minimum=1, short="m"),
    Option("multi_noise", bool, False, "SmoothAdv's --train-multi-noise"),
    Option("warmup", int, 10, "warm-up epochs of eps / the mixup weight", minimum=1),
    Option("ddn_gamma", float, 0.05, "DDN's norm step (its starting norm is the warmed-up eps)", above=0, below=1),
)  # fmt: skip
_PER_METHOD = ("eps", "steps", "num_noise_vec", "warmup")
_INPUTS_AND_RUNTIME = (
    Option("pretrained", str, None, "pre-trained checkpoint to fine-tune (fresh head)", nullable=True),
    Option("pseudo_labels", str, None, "merged training set manifest (scripts/pseudolabel.py)", nullable=True),
    Option("self_training_weight", float, 1.0, "loss weight of pseudo-labelled batches (SmoothAdv E.2)", minimum=0),
    Option("seed", int, 0, "seed of weights, data order and noise", minimum=0),
    Option("workers", int, 2, "data loader workers", minimum=0),
    Option("test_subset", int, 0, "test images evaluated per epoch (0: all)", minimum=0),
    Option("amp", bool, False, "float16 autocast with a gradient scaler (CUDA; = precision fp16)"),
    Option("channels_last", bool, False, "channels-last memory format"),
    Option("precision", str, DEFAULT_PRECISION, "autocast precision: bf16 (no gradient scaler) or fp16 (CUDA)", choices=TRAINING_PRECISIONS),
)  # fmt: skip
# Options added after results existed: at their default they stay off the train jobs' command lines
# (rsmooth.pipeline.train_arguments), so that the jobs of existing configs keep their commands and never rerun.
OMITTED_AT_DEFAULT = ("precision",)
_SCHEDULE = (
    Option(
        "lr_decay_offset", int, None,
        "epochs each lr decay comes late: 0 as Cohen's and Salman's scripts, 1 as the SmoothMix repository's "
        "(its scheduler.step(epoch) after the epoch); None: the timing of the code the method comes from",
        minimum=0, nullable=True,
    ),
)  # fmt: skip


def _all_options() -> tuple[tuple[Option, type[Method] | None], ...]:
    carried = [(o, cls) for cls in REGISTRY.values() for o in cls.options if not o.exclusive]
    own = [(o, cls) for cls in REGISTRY.values() for o in cls.options if o.exclusive]
    core = [(o, None) for o in (*_RUN, *_SHARED)]
    tail = [(o, None) for o in (*_INPUTS_AND_RUNTIME, *_SCHEDULE)]
    options = (*core, *carried, *tail, *own)
    names = [o.name for o, _ in options]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise RuntimeError(f"training options declared twice: {duplicated}")
    return options


OPTIONS: dict[str, Option] = {o.name: o for o, _ in _all_options()}
# The method whose configs alone carry each exclusive option.
OWNER: dict[str, str] = {o.name: cls.name for o, cls in _all_options() if cls is not None and o.exclusive}


def _annotation(option: Option) -> Any:
    nullable = option.nullable or option.name in _PER_METHOD or option.name in OWNER
    return option.kind | None if nullable else option.kind


def _field_default(option: Option) -> Any:
    return None if option.name in _PER_METHOD or option.name in OWNER else option.default


class _TrainConfigBase:
    """Every hyper-parameter of one training run (fields: :data:`OPTIONS`; see the module docstring)."""

    def __post_init__(self) -> None:
        if self.method not in REGISTRY:  # validate() names it
            return
        cls = REGISTRY[self.method]
        for name in _PER_METHOD:
            if getattr(self, name) is None:
                setattr(self, name, cls.defaults.get(name, OPTIONS[name].default))
        for name, owner in OWNER.items():
            if owner == self.method and getattr(self, name) is None:
                setattr(self, name, OPTIONS[name].default)

    @property
    def method_class(self) -> type[Method]:
        return get_method(self.method)

    @property
    def attacking(self) -> bool:
        return self.method_class.is_attacking(self)

    @property
    def decay_offset(self) -> int:
        """The lr decay timing in force (``lr_decay_offset``, else the method's)."""
        return self.method_class.lr_decay_offset if self.lr_decay_offset is None else self.lr_decay_offset

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the first bad value and what is allowed; return self."""
        for name in ("dataset", "method", "attack", "precision"):
            OPTIONS[name].check(getattr(self, name))
        if self.amp and self.precision != DEFAULT_PRECISION:
            raise ValueError(
                f"amp is precision fp16 with a gradient scaler: set one of amp and precision {self.precision!r}"
            )
        if not DATASET_SPECS[self.dataset].trainable:
            raise ValueError(
                f"dataset {self.dataset!r} has pseudo-labels only: train on cifar10 with pseudo_labels=..."
            )
        cls = REGISTRY[self.method]
        for name, option in OPTIONS.items():
            value = getattr(self, name)
            owner = OWNER.get(name)
            if owner is not None and owner != self.method:
                if value is not None:
                    raise ValueError(f"{name} applies to method {owner} only, not {self.method!r}")
                continue
            option.check(value)
        if self.batches_per_epoch is not None and self.pseudo_labels:
            raise ValueError(
                "batches_per_epoch does not combine with pseudo_labels (a self-training epoch is one pass over "
                "the labelled set plus as many pseudo-labelled batches): leave batches_per_epoch unset"
            )
        if not cls.noise_free and self.sigma == 0:
            raise ValueError(f"method {self.method!r} trains under Gaussian noise: sigma must be > 0, got 0")
        if self.num_noise_vec > 1 and not cls.noise_draws:
            allowed = ", ".join(n for n, c in REGISTRY.items() if c.noise_draws)
            raise ValueError(f"num_noise_vec (m) > 1 applies to methods {allowed} only, not {self.method!r}")
        if cls.is_chunked(self) and self.batch_size % self.num_noise_vec:
            raise ValueError(
                f"num_noise_vec (m) must divide batch_size: got m={self.num_noise_vec}, "
                f"batch_size={self.batch_size} (the batch is split into m chunks of batch_size/m images)"
            )
        cls.check(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; allowed: {sorted(known)}")
        # YAML reads `sigma: 1` as an int; make it 1.0 so that ids and paths do not depend on the spelling.
        floats = {name for name, option in OPTIONS.items() if option.kind is float}
        return cls(
            **{
                k: float(v) if k in floats and isinstance(v, int) and not isinstance(v, bool) else v
                for k, v in values.items()
            }
        )


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(o.name, _annotation(o), dataclasses.field(default=_field_default(o))) for o in OPTIONS.values()],
    bases=(_TrainConfigBase,),
)
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = "Every hyper-parameter of one training run.\n\n" + "\n".join(
    f"- ``{o.name}`` (default {o.default!r}): {o.help}" for o in OPTIONS.values()
)
TRAIN_FIELDS: tuple[str, ...] = tuple(OPTIONS)


def method_defaults(method: str) -> dict[str, Any]:
    """Every field's default for a model of ``method`` (its own defaults of shared options applied)."""
    return TrainConfig(method=method).to_dict()


# -- the schema's training section ---------------------------------------------------------------------

# Set by the pipeline from an experiment's `init` / `pseudo_labels` keys, never in a config.
PIPELINE_SET = ("pretrained", "pseudo_labels")
_SCHEMA_OVERRIDES = {
    # tinyimages only supplies pseudo-labels (its spec is not `trainable`): TrainConfig.validate refuses it.
    "dataset": {"enum": [d for d in DATASETS if DATASET_SPECS[d].trainable]},
    # rsmooth.models.ARCHITECTURES; any CIFAR ResNet depth 6n+2 is accepted there.
    "arch": {"type": "string", "pattern": "^(cifar_resnet[0-9]+|imagenet32_resnet110|resnet50|lenet)$"},
}


def training_schema() -> dict[str, dict[str, Any]]:
    """The JSON-schema entries of the training fields that a config may set, with validate()'s bounds;
    ``workflow/schemas/config.schema.yaml`` holds this (``python -m rsmooth.train_config`` rewrites it)."""
    entries = {}
    for name, option in OPTIONS.items():
        if name in PIPELINE_SET:
            continue
        entry = _SCHEMA_OVERRIDES.get(name) or option.schema()
        if (name in _PER_METHOD or name in OWNER) and "type" in entry and not option.nullable:
            entry = {**entry, "type": [entry["type"], "null"]}
        entries[name] = entry
    return entries


_BEGIN = "  # BEGIN training fields: generated by `python -m rsmooth.train_config`, do not edit\n"
_END = "  # END training fields\n"


def _flow(entry: dict[str, Any]) -> str:
    def scalar(value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            plain = value.isidentifier() and value not in ("null", "true", "false", "yes", "no")
            return value if plain else f'"{value}"'
        if isinstance(value, list):
            return "[" + ", ".join(scalar(v) for v in value) + "]"
        return repr(value)

    return "{" + ", ".join(f"{key}: {scalar(value)}" for key, value in entry.items()) + "}"


def schema_block() -> str:
    """The generated part of the schema file: ``$defs.training`` and ``$defs.training_grid``."""
    lines = [
        _BEGIN,
        "  training:\n",
        "    description: >-\n",
        "      Fields of rsmooth.train_config.TrainConfig (`pretrained` and `pseudo_labels` come from an\n",
        "      experiment's `init` and `pseudo_labels` keys)\n",
        "    type: object\n",
        "    additionalProperties: false\n",
        "    properties:\n",
    ]
    entries = training_schema()
    for name, entry in entries.items():
        line = f"      {name}: {_flow(entry)}"
        comment = f" # {OPTIONS[name].help.split(';')[0]}"
        lines.append(line + (comment if len(line + comment) <= 110 else "") + "\n")
    lines += [
        "\n",
        "  # A non-empty list of distinct values; `grid` takes the product of such lists.\n",
        "  list: {type: array, minItems: 1, uniqueItems: true}\n",
        "\n",
        "  training_grid:\n",
        "    type: object\n",
        "    additionalProperties: false\n",
        "    properties:\n",
    ]
    for name in entries:
        ref = f'{{$ref: "#/$defs/list", items: {{$ref: "#/$defs/training/properties/{name}"}}}}'
        gap = " " if len(f"      {name}: {ref}") <= 110 else "\n        "
        lines.append(f"      {name}:{gap}{ref}\n")
    lines.append(_END)
    return "".join(lines)


def rewrite_schema(text: str) -> str:
    """``text`` (the schema file) with its generated block replaced by :func:`schema_block`."""
    start, stop = text.index(_BEGIN), text.index(_END) + len(_END)
    return text[:start] + schema_block() + text[stop:]


def _main() -> None:
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    path.write_text(rewrite_schema(path.read_text()))
    print(f"wrote the training fields of {path}")


if __name__ == "__main__":
    _main()
