"""Randomized smoothing: CERTIFY and PREDICT of Cohen, Rosenfeld & Kolter (2019).

The statistics follow the reference implementation exactly:

- CERTIFY draws ``n0`` noisy samples to *select* the top class and ``n`` fresh samples to *estimate* its
  probability; the one-sided (1 - alpha) Clopper-Pearson lower bound ``pA`` on that probability gives the
  radius ``sigma * Phi^-1(pA)``, and the smoothed classifier abstains when ``pA < 0.5``.
- PREDICT draws ``n`` samples once and returns the top class only if a two-sided exact binomial test of the
  top two counts rejects equality at level alpha.
- ``certify_sequential`` (not in the reference) answers "certified at each radius of a grid?" with an
  anytime-valid test (:mod:`rsmooth.sequential`), stopping each image once its answer is settled.

Noise is N(0, sigma^2 I) added in [0, 1] pixel space, before the model's normalization layer, and never
clamped. Unlike the reference, noise is drawn and votes are counted on the model's device in whole batches,
and on a GPU several images share one forward pass when ``n`` is smaller than the batch size.

Fast path (:mod:`rsmooth.fastpath`): ``precision="bf16"`` or ``"fp16"`` runs the base classifier under autocast,
``"tf32"`` runs its float32 convolutions and matrix products in TF32 (CUDA, Ampere on),
``channels_last`` feeds it channels-last batches and ``compile`` compiles it. The noise is always drawn and added
in float32 and the float32 sum is what the model receives (autocast casts it at the first convolution). The
default (fp32, contiguous, eager) is the reference's arithmetic.

Reproducibility: with ``seed`` given, every image gets its own generator and draws its noise in blocks of
``NOISE_BLOCK`` draws, so draw ``j`` of image ``i`` is a function of (seed, i, j) alone: not of the batch size,
nor of which other images share the call. A certification at ``batch: auto`` therefore gives the log of the
same run at ``batch: 400`` (up to batch-dependent rounding in the base classifier's kernels, which on the CPU
and with the default fp32 has not changed a vote in the tests), and one split into shards, or resumed after a
kill, draws exactly the noise an uninterrupted run would have drawn (same device and library versions). This
block scheme (recorded as ``"noise": NOISE_SCHEME`` in the logs' settings) replaced draws in chunks of the
batch size, which made the noise depend on the batch; logs drawn that way have no ``noise`` setting, so a
resume never mixes the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from scipy.stats import binomtest, norm
from statsmodels.stats.proportion import proportion_confint

from rsmooth import fastpath
from rsmooth.fastpath import DEFAULT_PRECISION, check_fast_path
from rsmooth.logformat import ABSTAIN, NOT_LABEL  # -1: what PREDICT and CERTIFY return, as the logs record it
from rsmooth.sequential import CONTINUE, DEFAULT_TEST, STOP_RULED_OUT, SequentialTest, sequential_test
from rsmooth.validation import check_alpha, check_positive_int, check_sigma

# Draws of noise per generator call: fixed, so that an image's noise does not depend on the batch size or the
# other images. NOISE_SCHEME names this scheme in the logs' settings (a resume refuses another scheme).
NOISE_BLOCK = 200
NOISE_SCHEME = f"blocks-{NOISE_BLOCK}"


def lower_confidence_bound(n_a: int, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion ``n_a / n``.

    Equals ``Beta^-1(alpha; n_a, n - n_a + 1)``; statsmodels' two-sided interval at level ``2 * alpha`` puts
    alpha in the lower tail, exactly as the reference does. ``n_a = 0`` gives 0 (never NaN: ``NaN < 0.5``
    would be False and turn an abstention into a certificate).
    """
    _check_counts(n_a, n)
    check_alpha(alpha)
    if n_a == 0:
        return 0.0
    return float(proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0])


def certified_radius(p_a_lower: float, sigma: float) -> float:
    """``sigma * Phi^-1(pA)``, the radius certified by Theorem 1 with the ``pB = 1 - pA`` bound."""
    return float(sigma * norm.ppf(p_a_lower))


def certify_from_counts(top_class: int, n_a: int, n: int, alpha: float, sigma: float) -> tuple[int, float]:
    """The CERTIFY decision given the selected class and its count among ``n`` estimation samples."""
    p_a_lower = lower_confidence_bound(n_a, n, alpha)
    if p_a_lower < 0.5:
        return ABSTAIN, 0.0
    return int(top_class), certified_radius(p_a_lower, sigma)


def predict_from_counts(counts: np.ndarray | Sequence[int], alpha: float) -> int:
    """The PREDICT decision: two-sided binomial test (p = 1/2) of the two largest vote counts."""
    check_alpha(alpha)
    counts = np.asarray(counts)
    # Stable sort on the negated counts: the top class is the lowest index among ties, as numpy argmax.
    order = np.argsort(-counts, kind="stable")
    count1 = int(counts[order[0]])
    count2 = int(counts[order[1]]) if len(counts) > 1 else 0
    if count1 + count2 == 0:
        return ABSTAIN
    if binomtest(count1, count1 + count2, p=0.5).pvalue > alpha:
        return ABSTAIN
    return int(order[0])


class Smooth:
    """A smoothed classifier g(x) = argmax_c P(f(x + eps) = c), eps ~ N(0, sigma^2 I).

    ``base_classifier`` maps a batch ``[B, C, H, W]`` in [0, 1] pixel space to logits (normalization is its
    first layer). ``precision`` (``fp32``, ``tf32``, ``bf16``, ``fp16``) is the precision of the forward passes;
    ``amp`` is the older spelling of fp16 autocast on CUDA (ignored on CPU). ``channels_last`` converts the
    model and its input batches to the channels-last memory format; ``compile`` wraps the model in
    ``torch.compile`` (eager with a warning if compiling fails). Options that cannot work on the model's device
    raise ``ValueError`` here (:func:`rsmooth.fastpath.check_fast_path`).
    ``group_images`` lets several images share a forward pass when ``n`` is below the batch size; by default
    only on CUDA (on a CPU larger batches are slower per sample). Results are the same either way.
    """

    ABSTAIN = ABSTAIN

    def __init__(
        self,
        base_classifier: torch.nn.Module,
        num_classes: int,
        sigma: float,
        *,
        amp: bool = False,
        group_images: bool | None = None,
        precision: str = DEFAULT_PRECISION,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        check_sigma(sigma)
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = float(sigma)
        self.amp = amp
        self.group_images = group_images
        check_fast_path(self.device.type, precision=precision, channels_last=channels_last, compile=compile)
        self.precision = precision
        self.channels_last = channels_last
        self.compile = compile
        self._set_float32_arithmetic(self.device.type)
        if channels_last:
            base_classifier.to(memory_format=fastpath.memory_format(True))
        self._compiled = fastpath.CompiledForward(base_classifier) if compile else None

    @property
    def device(self) -> torch.device:
        for tensor in self.base_classifier.parameters():
            return tensor.device
        for tensor in self.base_classifier.buffers():
            return tensor.device
        return torch.device("cpu")

    # -- single-image API of the reference ---------------------------------------------------------------

    def certify(
        self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int, *, seed: int | None = None
    ) -> tuple[int, float]:
        """CERTIFY for one image ``x`` of shape ``[C, H, W]``: ``(class, radius)`` or ``(-1, 0.0)``."""
        _check_image(x)
        seeds = None if seed is None else [seed]
        return self.certify_batch(x.unsqueeze(0), n0, n, alpha, batch_size, seeds=seeds)[0]

    def predict(
        self, x: torch.Tensor, n: int, alpha: float, batch_size: int, *, seed: int | None = None
    ) -> int:
        """PREDICT for one image ``x`` of shape ``[C, H, W]``: the class, or -1 to abstain."""
        _check_image(x)
        seeds = None if seed is None else [seed]
        return self.predict_batch(x.unsqueeze(0), n, alpha, batch_size, seeds=seeds)[0]

    # -- batched API -------------------------------------------------------------------------------------

    def certify_batch(
        self,
        xs: torch.Tensor,
        n0: int,
        n: int,
        alpha: float,
        batch_size: int,
        *,
        seeds: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """CERTIFY for each image of ``xs`` (``[K, C, H, W]``), one ``(class, radius)`` per image."""
        check_positive_int(n0, "n0")
        check_positive_int(n, "n")
        check_alpha(alpha)
        generators = self._generators(xs, seeds)
        selection = self.sample_counts(xs, n0, batch_size, generators)
        estimation = self.sample_counts(xs, n, batch_size, generators)
        top_classes = selection.argmax(axis=1)  # numpy argmax: ties go to the lowest class index
        return [
            certify_from_counts(top, int(counts[top]), n, alpha, self.sigma)
            for top, counts in zip(top_classes, estimation, strict=True)
        ]

    def predict_batch(
        self,
        xs: torch.Tensor,
        n: int,
        alpha: float,
        batch_size: int,
        *,
        seeds: Sequence[int] | None = None,
    ) -> list[int]:
        """PREDICT for each image of ``xs`` (``[K, C, H, W]``)."""
        check_positive_int(n, "n")
        check_alpha(alpha)
        counts = self.sample_counts(xs, n, batch_size, self._generators(xs, seeds))
        return [predict_from_counts(row, alpha) for row in counts]

    # -- sequential certification at a grid of radii (rsmooth.sequential) -------------------------------

    def certify_sequential(
        self,
        x: torch.Tensor,
        radii: Sequence[float],
        alpha: float,
        n_max: int,
        batch_size: int,
        *,
        label: int | None = None,
        seed: int | None = None,
        n0: int = 100,
        test: str = DEFAULT_TEST,
    ) -> tuple[int, float, int]:
        """Anytime-valid sequential certification of one image ``x`` (``[C, H, W]``) at the grid ``radii``.

        Returns ``(cls, radius, samples)``: ``radius`` is the largest grid radius certified (``0.0``: the
        smoothed classifier predicts ``cls``, pA > 1/2), ``(-1, 0.0)`` an abstention, ``samples`` the
        base-classifier draws used (selection included); with ``label``, ``(NOT_LABEL, 0.0)`` (-2) says the
        futility bound (level ``beta``) ruled out ``p(label) > 1/2``: a wrong prediction, not an abstention.
        The radius is the highest certified at any look. Guarantee: whatever the stopping time, the
        probability that ``(cls, radius)`` is wrong (``cls`` is not g's class at ``x``, or g is not robust at
        ``radius``) is at most ``alpha``. With ``label`` the test is on the probability of that label (for
        certified accuracy; no selection draws); without it ``n0`` draws first select the class, as in
        CERTIFY. ``n_max`` caps the test's draws. See :mod:`rsmooth.sequential` for the test and its
        stopping rules.
        """
        _check_image(x)
        labels = None if label is None else [label]
        seeds = None if seed is None else [seed]
        return self.certify_sequential_batch(
            x.unsqueeze(0), radii, alpha, n_max, batch_size, labels=labels, seeds=seeds, n0=n0, test=test
        )[0]

    @torch.inference_mode()
    def certify_sequential_batch(
        self,
        xs: torch.Tensor,
        radii: Sequence[float],
        alpha: float,
        n_max: int,
        batch_size: int,
        *,
        labels: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
        n0: int = 100,
        test: str | SequentialTest = DEFAULT_TEST,
    ) -> list[tuple[int, float, int]]:
        """:meth:`certify_sequential` for each image of ``xs`` (``[K, C, H, W]``), sharing forward passes.

        Every forward pass holds ``batch_size`` noisy samples: each running image gets the draws up to its
        next look, images are admitted as slots free up, and when no image is left to admit the running ones
        draw ahead. Each image's noise comes from its own generator in blocks of ``NOISE_BLOCK`` draws, so
        with ``seeds`` an image's result does not depend on the batch size or on the other images (up to
        batch-dependent rounding in the base classifier's kernels).
        """
        check_positive_int(batch_size, "batch_size")
        check_positive_int(n0, "n0")  # alpha and n_max: checked by the test built or matched below
        if xs.dim() != 4:
            raise ValueError(f"expected a batch of images [K, C, H, W], got shape {tuple(xs.shape)}")
        if labels is not None and len(labels) != xs.shape[0]:
            raise ValueError(f"got {len(labels)} labels for {xs.shape[0]} images")
        if labels is not None and any(not 0 <= int(y) < self.num_classes for y in labels):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got {list(labels)}")
        if not isinstance(test, SequentialTest):
            test = sequential_test(radii, self.sigma, alpha, n_max, test)
        else:  # its boundaries hold only for its own sigma, radii, alpha and n_max
            test.check_matches(radii, self.sigma, alpha, n_max)
        generators = self._generators(xs, seeds) or [None] * xs.shape[0]
        self.base_classifier.eval()
        xs = xs.to(self.device, torch.float32)
        runs = [
            _SequentialRun(test, n0 if labels is None else 0, None if labels is None else int(labels[i]))
            for i in range(xs.shape[0])
        ]
        if labels is not None:
            for run in runs:
                run.start_test(run.label, 0)
        waiting = list(range(len(runs)))[::-1]
        active: list[int] = []
        buffers: dict[int, list[torch.Tensor]] = {}
        while active or waiting:
            plan = self._plan_batch(runs, active, waiting, batch_size)
            parts = [self._take_noisy(xs, i, m, runs[i], buffers, generators[i]) for i, m in plan]
            predictions = self._forward(torch.cat(parts)).argmax(dim=1).cpu().numpy()
            offset = 0
            for i, m in plan:
                runs[i].feed(predictions[offset : offset + m], self.num_classes)
                offset += m
            for i in [i for i in active if runs[i].result is not None]:
                active.remove(i)
                buffers.pop(i, None)
        return [run.result for run in runs]

    @staticmethod
    def _plan_batch(runs, active, waiting, batch_size) -> list[tuple[int, int]]:
        """(image, draws) pairs filling one forward pass: draws up to each next look, then new images,
        then draws ahead for the running ones when no image is left to admit."""
        space, plan = batch_size, {}
        for i in active:
            take = min(space, runs[i].need())
            if take:
                plan[i] = take
                space -= take
        while space and waiting:
            i = waiting.pop()
            active.append(i)
            plan[i] = min(space, runs[i].need())
            space -= plan[i]
        for i in active:
            if not space:
                break
            extra = min(space, runs[i].remaining() - plan.get(i, 0))
            if extra > 0:
                plan[i] = plan.get(i, 0) + extra
                space -= extra
        return list(plan.items())

    def _take_noisy(self, xs, i, m, run, buffers, generator) -> torch.Tensor:
        """The next ``m`` noisy copies of image ``i``, drawn in blocks of ``NOISE_BLOCK`` from its generator."""
        queue = buffers.setdefault(i, [])
        have = sum(len(t) for t in queue)
        while have < m:
            size = min(NOISE_BLOCK, run.end - run.drawn)
            _, noisy = next(self._noisy_batches(xs[i : i + 1], size, size, [generator]))
            run.drawn += size
            queue.append(noisy)
            have += size
        rows = torch.cat(queue) if len(queue) > 1 else queue[0]
        queue[:] = [rows[m:]] if len(rows) > m else []
        return rows[:m]

    @torch.inference_mode()
    def sample_counts(
        self,
        xs: torch.Tensor,
        num: int,
        batch_size: int,
        generators: Sequence[torch.Generator | None] | None = None,
    ) -> np.ndarray:
        """Votes of the base classifier on ``num`` noisy copies of each image: int64 array ``[K, classes]``.

        Each image's noise is drawn in blocks of ``NOISE_BLOCK`` from its own generator (or the global one),
        whatever ``batch_size``; on CUDA, when ``num < batch_size``, several whole images share a forward pass.
        """
        check_positive_int(batch_size, "batch_size")
        if xs.dim() != 4:
            raise ValueError(f"expected a batch of images [K, C, H, W], got shape {tuple(xs.shape)}")
        self.base_classifier.eval()
        device = self.device
        xs = xs.to(device, torch.float32)
        k = xs.shape[0]
        generators = list(generators) if generators is not None else [None] * k
        counts = torch.zeros(k * self.num_classes, dtype=torch.int64, device=device)
        for rows, noisy in self._noisy_batches(xs, num, batch_size, generators):
            predictions = self._forward(noisy).argmax(dim=1)
            counts += torch.bincount(rows * self.num_classes + predictions, minlength=counts.numel())
        return counts.view(k, self.num_classes).cpu().numpy()

    def _noisy_batches(
        self,
        xs: torch.Tensor,
        num: int,
        batch_size: int,
        generators: list[torch.Generator | None],
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (image index per row, noisy rows) batches covering ``num`` draws for every image.

        Each image's noise is drawn from its generator in blocks of ``NOISE_BLOCK`` draws (the last one
        shorter), whatever ``batch_size`` and whichever images share a pass, so draw ``j`` of an image is the
        same number for every batch size. A block is drawn straight into the batch when it fits, and the noise
        is scaled and the image added in place (no extra tensor the size of the batch).
        """
        shape = xs.shape[1:]
        # By default whole images share a forward pass only on a GPU: on a CPU a larger batch is slower per
        # sample (measured: 0.60x for 4 images of 100 draws in one batch of 400 against 100-draw batches).
        group = xs.device.type == "cuda" if self.group_images is None else self.group_images
        if num >= batch_size or not group:
            for i, generator in enumerate(generators):
                blocks = _NoiseBlocks(generator, num, shape, xs.device)
                while blocks.left:
                    noisy = blocks.take(min(batch_size, blocks.left))
                    rows = torch.full((len(noisy),), i, dtype=torch.int64, device=xs.device)
                    yield rows, noisy.mul_(self.sigma).add_(xs[i])
            return
        per_batch = batch_size // num
        for start in range(0, len(generators), per_batch):
            stop = min(start + per_batch, len(generators))
            noisy = torch.empty(((stop - start) * num, *shape), device=xs.device, dtype=torch.float32)
            for offset, i in enumerate(range(start, stop)):
                _NoiseBlocks(generators[i], num, shape, xs.device).take(
                    num, noisy[offset * num : (offset + 1) * num]
                )
            rows = torch.arange(start, stop, device=xs.device).repeat_interleave(num)
            yield rows, noisy.mul_(self.sigma).add_(xs[rows])

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of the float32 noisy ``batch``; in reduced precision autocast casts it inside the model."""
        device_type = batch.device.type
        if self.precision != DEFAULT_PRECISION:
            autocast = fastpath.autocast(self.precision, device_type)
        elif self.amp and device_type == "cuda":
            autocast = torch.autocast("cuda", dtype=torch.float16)
        else:
            autocast = contextlib.nullcontext()
        self._set_float32_arithmetic(device_type)
        batch = fastpath.to_memory_format(batch, self.channels_last)
        model = self._compiled or self.base_classifier
        with autocast:
            return model(batch)

    def _set_float32_arithmetic(self, device_type: str) -> None:
        # Process-wide settings (TF32 on or off), so set again before every use: another Smooth in this process
        # may have changed them. amp, fp16 autocast by its older name, leaves them as they are.
        if not self.amp:
            fastpath.float32_arithmetic(self.precision, device_type)

    def attack_model(self) -> torch.nn.Module:
        """The base classifier as the attacks should call it: itself in the default fp32, else a wrapper that
        runs it in this classifier's precision and memory format and returns float32 logits (so that the
        attacks' softmax, log and gradients stay in float32)."""
        self._set_float32_arithmetic(self.device.type)  # the attack's passes, backward included, follow
        if self.precision == DEFAULT_PRECISION and not self.channels_last and self._compiled is None:
            return self.base_classifier
        return FastForward(self.base_classifier, self.precision, self.channels_last, self._compiled)

    def auto_batch_size(
        self, shape: Sequence[int], limit: int | None = None, *, gradients: bool = False
    ) -> tuple[int, dict[int, float]]:
        """:func:`rsmooth.fastpath.auto_batch_size` for this classifier's forward pass on ``shape`` images:
        ``(fastest batch, samples/s per batch tried)``; measured on zero images, no generator is touched.
        With ``gradients`` each pass also back-propagates to the input, as the attacks do (more memory)."""
        device = self.device
        self.base_classifier.eval()

        def forward(size: int) -> None:
            batch = torch.zeros((size, *shape), device=device)
            if gradients:
                batch.requires_grad_(True)
                torch.autograd.grad(self.attack_model()(batch).logsumexp(dim=1).sum(), batch)
            else:
                with torch.inference_mode():
                    self._forward(batch).argmax(dim=1)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return fastpath.auto_batch_size(forward, device.type, limit=limit)

    def _generators(
        self, xs: torch.Tensor, seeds: Sequence[int] | None
    ) -> list[torch.Generator | None] | None:
        if seeds is None:
            return None
        if len(seeds) != xs.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for {xs.shape[0]} images")
        device = self.device
        return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


class FastForward(torch.nn.Module):
    """``module`` in ``precision`` (under autocast for bf16 and fp16), fed ``channels_last`` batches, returning
    float32 logits."""

    def __init__(self, module: torch.nn.Module, precision: str, channels_last: bool, compiled=None) -> None:
        super().__init__()
        self.module = module
        self.precision = precision
        self.channels_last = channels_last
        self._compiled = compiled

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        batch = fastpath.to_memory_format(batch, self.channels_last)
        with fastpath.autocast(self.precision, batch.device.type):
            return (self._compiled or self.module)(batch).float()


class _SequentialRun:
    """The vote stream of one image in sequential certification: selection, then the test's looks."""

    def __init__(self, test: SequentialTest, n0: int, label: int | None) -> None:
        self.test, self.n0, self.label = test, n0, label
        self.end = n0 + test.n_max  # draws in the stream at most
        self.drawn = 0  # noise drawn (some may wait in a buffer)
        self.position = 0  # votes counted
        self.counts = np.zeros(0, dtype=np.int64)  # selection votes
        self.cls: int | None = None
        self.successes = 0
        self.look = 0
        self.best = -1  # the highest level certified at any look so far (kept)
        self.result: tuple[int, float, int] | None = None

    def start_test(self, cls: int, position: int) -> None:
        self.cls, self.position = cls, position

    def checkpoint(self) -> int:
        return self.n0 if self.cls is None else self.n0 + int(self.test.looks[self.look])

    def need(self) -> int:
        return 0 if self.result is not None else self.checkpoint() - self.position

    def remaining(self) -> int:
        return 0 if self.result is not None else self.end - self.position

    def feed(self, predictions: np.ndarray, num_classes: int) -> None:
        """Count ``predictions`` (the next votes of the stream) and decide at every look they reach."""
        start = 0
        while start < len(predictions) and self.result is None:
            stop = start + min(len(predictions) - start, self.checkpoint() - self.position)
            votes = predictions[start:stop]
            if self.cls is None:
                self.counts = np.bincount(votes, minlength=num_classes) + (
                    self.counts if self.counts.size else 0
                )
            else:
                self.successes += int(np.count_nonzero(votes == self.cls))
            self.position += stop - start
            start = stop
            if self.position == self.checkpoint():
                self._look()

    def _look(self) -> None:
        if self.cls is None:  # end of selection: numpy argmax, ties to the lowest class index
            self.cls = int(self.counts.argmax())
            return
        level, stop = self.test.decide(self.successes, self.look, self.best)
        self.best = int(level)
        if int(stop) == CONTINUE:
            self.look += 1
            return
        if self.best >= 0:
            self.result = (self.cls, self.test.radius(self.best), self.position)
        elif self.label is not None and int(stop) == STOP_RULED_OUT:
            # label mode: the upper bound put p(label) at or below 1/2, so g does not return the label
            self.result = (NOT_LABEL, 0.0, self.position)
        else:
            self.result = (ABSTAIN, 0.0, self.position)


class _NoiseBlocks:
    """The ``num`` standard normal draws of one image, drawn in blocks of ``NOISE_BLOCK`` from ``generator``
    (the global generator when ``None``) and handed out in runs of any length."""

    def __init__(self, generator: torch.Generator | None, num: int, shape, device: torch.device) -> None:
        self.generator, self.shape, self.device = generator, tuple(shape), device
        self.left = num  # draws not yet handed out
        self.undrawn = num  # draws not yet generated
        self.carry: torch.Tensor | None = None  # generated, not yet handed out (part of one block)

    def take(self, m: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """The next ``m`` draws, written into ``out`` (``[m, *shape]`` float32, contiguous) or a new tensor."""
        if out is None:
            out = torch.empty((m, *self.shape), device=self.device, dtype=torch.float32)
        pos = 0
        if self.carry is not None:
            used = min(m, len(self.carry))
            out[:used].copy_(self.carry[:used])
            self.carry = self.carry[used:] if used < len(self.carry) else None
            pos = used
        while pos < m:
            size = min(NOISE_BLOCK, self.undrawn)
            self.undrawn -= size
            if pos + size <= m:  # the whole block fits: draw it in place (randn is empty + normal_)
                out[pos : pos + size].normal_(generator=self.generator)
                pos += size
            else:
                block = torch.randn(
                    (size, *self.shape), device=self.device, dtype=torch.float32, generator=self.generator
                )
                out[pos:].copy_(block[: m - pos])
                self.carry = block[m - pos :]
                pos = m
        self.left -= m
        return out


def image_seed(seed: int, index: int) -> int:
    """A per-image seed from a run seed and the image's data set index (stable across shards and resumes)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _check_image(x: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected one image [C, H, W], got shape {tuple(x.shape)}")


def _check_counts(n_a: int, n: int) -> None:
    if not (0 <= n_a <= n and n >= 1):
        raise ValueError(f"need 0 <= n_a <= n and n >= 1, got n_a={n_a!r}, n={n!r}")
