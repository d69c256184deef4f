"""The fine-tuning protocol's models trained together: one stacked model per architecture.

Every model of a protocol call (target subject x row x fold) is independent and of one of a few
shapes, so the models of one shape are stacked (``torch.func.stack_module_state``) and run as one:
the shipped encoders and heads through a small interpreter (:func:`_run_program`: activations laid
out features first, rows last, each layer one native kernel over all models), any other encoder
through ``functional_call`` under ``vmap``. Each model keeps everything the per-model loop
(:func:`finetune.finetune`, the reference this engine is tested against) gives it, in either recipe:
its initial weights (built from its seed exactly as the loop builds them; LP-FT: its own probe as the
head), its own batches (its own generator; subjects with more windows have more batches per epoch:
at a step, the models that still have a batch are trained, grouped by batch size), its own Adam
moments and step count, the learning rates (the cosine schedule; LP-FT's head and encoder rates,
the encoder's BatchNorm frozen or not), its own checkpoint selection and patience. At every
checkpoint each model's validation and test rows go through ONE batched forward (the test figures
only feed the labelled optimistic column and, at the selected checkpoint, the reported metrics:
nothing is evaluated twice).

Measured (``benchmarks/evaluation.py``, 2-core CPU): see the README's performance table.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ..model import ClassifierHead
from ..seeding import seeded
from .finetune import (
    FinetuneConfig,
    balanced_selection_gap,
    batch_stream,
    finetune,
    fit_summary,
    random_choice_gap,
)
from .metrics import classification_metrics, improves, present_class_balanced_accuracies
from .probe import class_balance_weights, module_device

# rows per model per evaluation forward: 1,080 rows of 32 CNNs took 263 ms in slices of 128, 411 ms in 1,024
EVAL_ROWS = 128


@dataclass
class FinetuneJob:
    """One model of the protocol: its encoder to copy, seed, and row indices into the shared train
    set (``fit``, ``val``) and test set (``test``); ``groups`` labels the test rows (cross-subject)."""

    encoder: nn.Module
    seed: int
    fit: Tensor
    val: Tensor
    test: Tensor
    groups: Tensor | None = None
    select_at: int | None = None  # report this checkpoint (chosen beforehand by cross-validation), not the best on val
    head: nn.Module | None = None  # LP-FT: the fitted probe as an nn.Linear (reference: a fresh head from the seed)
    head_penalty: tuple[float, Tensor] | None = None  # (l2, s): l2 ||head.weight * s||^2 per batch (head_l2: probe)


def build_model(
    encoder: nn.Module,
    num_classes: int,
    config: FinetuneConfig,
    seed: int,
    head: nn.Module | None = None,
    copy_encoder: bool = True,
) -> nn.Module:
    """Encoder copy + ``head`` (a copy; or a fresh head initialised from ``seed``), exactly as
    :func:`finetune`. ``copy_encoder=False`` shares ``encoder`` itself (stacking copies its tensors
    anyway; 96 deep copies took ~7% of a batched protocol call). A fresh head is not copied again, and
    it is drawn under :func:`~scmm_lightning.seeding.seeded` (on the CPU through the CPU generator
    alone): the copies and ``torch.manual_seed`` took 0.20 s of a 3.2 s batched reference call with
    96 models (cProfile, ``benchmarks/evaluation.py --workloads finetune``)."""
    fresh = head is None
    with seeded(seed):
        if fresh:
            head = ClassifierHead(encoder.out_features, num_classes, config.hidden)
    return nn.Sequential(copy.deepcopy(encoder) if copy_encoder else encoder, head if fresh else copy.deepcopy(head))


def _signature(model: nn.Module) -> tuple:
    return tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()) + tuple(
        type(m).__name__ for m in model.modules()
    )


def _cosine_lrs(config: FinetuneConfig) -> list[float]:
    """The learning rate of each epoch, from torch's own CosineAnnealingLR (the loop's schedule)."""
    dummy = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(dummy, T_max=max(config.epochs, 1))
    lrs = []
    for _ in range(config.epochs):
        lrs.append(dummy.param_groups[0]["lr"])
        dummy.step()
        sched.step()
    return lrs


def _program(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]] | None:
    """The leaf layers of ``module`` in execution order, with their state-dict prefixes, when every
    part is one the stacked interpreter below knows (the shipped CNN encoder, the raw features and
    the head); ``None`` otherwise (the generic ``vmap`` path runs such an encoder)."""
    from ..model import CNNEncoder
    from .probe import FlattenFeatures

    if isinstance(module, nn.Sequential):
        out: list = []
        for name, child in module.named_children():
            sub = _program(child, f"{prefix}{name}.")
            if sub is None:
                return None
            out += sub
        return out
    if type(module) is CNNEncoder:
        inner = _program(module.features, f"{prefix}features.")
        return None if inner is None else [*inner, ("", nn.Flatten())]
    if type(module) is FlattenFeatures:
        return [("", nn.Flatten())]
    if type(module) is ClassifierHead:
        return _program(module.net, f"{prefix}net.")
    if type(module) is nn.Conv1d:
        plain = module.stride == (1,) and module.dilation == (1,) and module.groups == 1
        return [(prefix, module)] if plain and module.padding_mode == "zeros" else None
    if type(module) is nn.MaxPool1d:
        k, st, pad = (v if isinstance(v, int) else v[0] for v in (module.kernel_size, module.stride, module.padding))
        return [(prefix, module)] if k == st and module.dilation in (1, (1,)) and not module.ceil_mode else None
    if type(module) in (nn.BatchNorm1d, nn.ReLU, nn.Sigmoid, nn.Linear, nn.Flatten):
        if type(module) is nn.BatchNorm1d and not (
            module.affine and module.track_running_stats and module.momentum is not None
        ):
            return None
        return [(prefix, module)]
    return None


def _pool_before_relu(program: list | None) -> list | None:
    """``ReLU -> MaxPool`` reordered as ``MaxPool -> ReLU``: the same outputs (both are monotone, so
    max(relu(a), relu(b)) = relu(max(a, b))) and the same gradients (they differ only where every
    value of a window is <= 0, where ReLU passes no gradient), with ReLU on the pooled half."""
    if program is None:
        return None
    out = list(program)
    for i in range(len(out) - 1):
        if isinstance(out[i][1], nn.ReLU) and isinstance(out[i + 1][1], nn.MaxPool1d):
            out[i], out[i + 1] = out[i + 1], out[i]
    return out


class _ConvMatrix(torch.autograd.Function):
    """A stride-1 zero-padded Conv1d's weight (m, Cout, Cin, k) as a matrix (m, Cout * Lout, L * Cin):
    on activations laid out features first, rows last, the input positions outermost ((m, L * Cin,
    R), see :func:`_run_program`), the convolution of m models is one batched product. A 1-D CNN
    over 5 bands is too small for convolution kernels to be efficient, and the dense matrix skips
    the taps that only meet zero padding (for the shipped CNN 2.0-2.7x fewer multiply-adds than the
    direct convolution). Block (output position l, input position j) is the tap j - l + padding: for
    each l a contiguous range of taps. With the weight laid out (m, Cout, k, Cin) that range is one
    contiguous run of (taps x Cin) values, copied in (and, backwards, added back) as one slice per
    output position; with the input channels outermost the runs were 3-5 values long, and building
    and reducing the matrices took 0.7-1.0 s of a 5-6.5 s batched fine-tuning call, 0.5-0.57 s now
    (``benchmarks/evaluation.py --workloads finetune``, torch profiler, both versions in one process,
    2-core CPU). An ``einsum`` with a 0/1 shift tensor gave the same matrix ~2x slower, a gather by
    tap index ~3x."""

    @staticmethod
    def spans(length: int, k: int, padding: int) -> list[tuple[int, int, int, int, int]]:
        """Per output position: (position, first j, last j + 1, first tap, last tap + 1)."""
        out = []
        for pos in range(length + 2 * padding - k + 1):
            j_lo, j_hi = max(0, pos - padding), min(length, pos - padding + k)
            out.append((pos, j_lo, j_hi, j_lo - pos + padding, j_hi - pos + padding))
        return out

    @staticmethod
    def forward(ctx, weight: Tensor, length: int, padding: int) -> Tensor:  # noqa: ANN001
        m, cout, cin, k = weight.shape
        spans = _ConvMatrix.spans(length, k, padding)
        taps_last = weight.permute(0, 1, 3, 2).contiguous()  # (m, Cout, k, Cin)
        full = all(j_lo == 0 and j_hi == length for _, j_lo, j_hi, _, _ in spans)
        out = (weight.new_empty if full else weight.new_zeros)((m, cout, len(spans), length, cin))
        for pos, j_lo, j_hi, t_lo, t_hi in spans:
            out[:, :, pos, j_lo:j_hi] = taps_last[:, :, t_lo:t_hi]
        ctx.spans, ctx.shape = spans, weight.shape
        return out.view(m, cout * len(spans), length * cin)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:  # noqa: ANN001
        m, cout, cin, k = ctx.shape
        blocks = grad.reshape(m, cout, len(ctx.spans), -1, cin)
        taps_last = grad.new_zeros((m, cout, k, cin))
        for pos, j_lo, j_hi, t_lo, t_hi in ctx.spans:
            taps_last[:, :, t_lo:t_hi] += blocks[:, :, pos, j_lo:j_hi]
        return taps_last.permute(0, 1, 3, 2), None, None


class _WindowMax(torch.autograd.Function):
    """Max pooling with windows of ``k`` positions, stride ``k``, ``pad`` (<= k / 2) implicit -inf
    positions at each end, over axis 2 of (m, C, L, R) activations: ``nn.MaxPool1d(k, k, pad)`` on
    every (model, row). The gradient goes to each window's first maximum, as the pooling kernel's.
    Window o holds positions o * k - pad + t, t < k: for each offset t a strided slice. The output
    (m, C, L', R) is a view of memory laid out (m, L', C, R): the next convolution reads its input
    positions outermost (:class:`_ConvMatrix`) without a copy. Windows of 2 (the shipped CNN's) take
    one ``maximum`` and keep one comparison (is the first value the maximum?) for the gradient:
    pooling forward and backward ~0.4 vs 0.86-1.1 s of a batched fine-tuning call (32 stacked CNNs,
    ``benchmarks/evaluation.py --workloads finetune``, torch profiler, same process), where the general path
    (offsets as uint8, one comparison per offset) serves other sizes; the general path as a window
    view and ``max`` with int64 indices took ~2x as long."""

    @staticmethod
    def spans(length: int, k: int, pad: int) -> tuple[int, list[tuple[int, int, int, int]]]:
        """The windows and, per offset t, (t, first window, last window + 1, first position)."""
        n_out = (length + 2 * pad - k) // k + 1
        spans = []
        for t in range(k):
            lo = max(0, -((t - pad) // k))  # the first window whose position t is inside [0, length)
            hi = min(n_out, (length - 1 + pad - t) // k + 1)
            if hi > lo:
                spans.append((t, lo, hi, lo * k - pad + t))
        return n_out, spans

    @staticmethod
    def _positions(x: Tensor, span: tuple[int, int, int, int], k: int, lo: int, hi: int) -> Tensor:
        """Of offset ``span``'s positions, those of windows lo..hi - 1 (a strided slice of axis 2)."""
        _, s_lo, _, first = span
        start = first + (lo - s_lo) * k
        return x[:, :, start : start + (hi - lo - 1) * k + 1 : k]

    @staticmethod
    def _pairs(spans: list) -> tuple[tuple, tuple, int, int, list[tuple[tuple, int, int]]]:
        """Windows of 2 with both offsets' spans: (first span, second span, the windows lo..hi - 1
        holding both positions, and (span, w_lo, w_hi) for the windows at the ends holding one)."""
        first, second = spans
        lo, hi = max(first[1], second[1]), min(first[2], second[2])
        ends = [
            (span, w_lo, w_hi)
            for span in spans
            for w_lo, w_hi in ((span[1], min(span[2], lo)), (max(span[1], hi), span[2]))
            if w_hi > w_lo
        ]
        return first, second, lo, hi, ends

    @staticmethod
    def values(x: Tensor, k: int, pad: int, arg: bool = False) -> tuple[Tensor, Tensor | None]:
        """The pooled values and, with ``arg``, what the gradient needs: for windows of 2, 1 where the
        first value is the maximum (ties included) and 0 where the second is, in the activations' dtype
        (over the windows holding both); else each window's first maximum's offset (uint8)."""
        m, c, length, rows = x.shape
        n_out, spans = _WindowMax.spans(length, k, pad)
        out = x.new_empty((m, n_out, c, rows)).transpose(1, 2)
        if k == 2 and len(spans) == 2:
            first, second, lo, hi, ends = _WindowMax._pairs(spans)
            pick = _WindowMax._positions
            a, b = pick(x, first, 2, lo, hi), pick(x, second, 2, lo, hi)
            torch.maximum(a, b, out=out[:, :, lo:hi])
            for span, w_lo, w_hi in ends:  # windows holding one position
                out[:, :, w_lo:w_hi] = pick(x, span, 2, w_lo, w_hi)
            return out, (torch.ge(a, b).to(x.dtype) if arg else None)  # 1 where the first is the maximum
        out.fill_(float("-inf"))
        offsets = torch.zeros((m, c, n_out, rows), dtype=torch.uint8, device=x.device) if arg else None
        for t, lo, hi, first in spans:
            candidate = x[:, :, first : first + (hi - lo - 1) * k + 1 : k]
            current = out[:, :, lo:hi]
            if t == 0:
                current.copy_(candidate)
                continue
            if offsets is not None:
                offsets[:, :, lo:hi].masked_fill_(candidate > current, t)  # strictly: ties keep the first
            torch.maximum(current, candidate, out=current)
        return out, offsets

    @staticmethod
    def forward(ctx, x: Tensor, k: int, pad: int) -> Tensor:  # noqa: ANN001
        out, arg = _WindowMax.values(x, k, pad, arg=True)
        ctx.save_for_backward(arg)
        ctx.k, ctx.pad, ctx.shape = k, pad, x.shape
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:  # noqa: ANN001
        (arg,) = ctx.saved_tensors
        k, pad, shape = ctx.k, ctx.pad, ctx.shape
        _, spans = _WindowMax.spans(shape[2], k, pad)
        covered = sum(hi - lo for _, lo, hi, _ in spans) == shape[2]
        x_grad = (grad.new_empty if covered else grad.new_zeros)(shape)
        pick = _WindowMax._positions
        if k == 2 and len(spans) == 2:
            first, second, lo, hi, ends = _WindowMax._pairs(spans)
            both, to_first = grad[:, :, lo:hi], pick(x_grad, first, 2, lo, hi)
            torch.mul(both, arg, out=to_first)  # (``torch.where`` into the strided slices: ~8x slower)
            torch.sub(both, to_first, out=pick(x_grad, second, 2, lo, hi))  # exact: g - g = 0, g - 0 = g
            for span, w_lo, w_hi in ends:
                pick(x_grad, span, 2, w_lo, w_hi).copy_(grad[:, :, w_lo:w_hi])
            return x_grad, None, None
        for span in spans:
            t, lo, hi, _ = span
            torch.mul(grad[:, :, lo:hi], arg[:, :, lo:hi] == t, out=pick(x_grad, span, k, lo, hi))
        return x_grad, None, None


def _run_program(
    program: list,
    params: dict,
    buffers: dict,
    x: Tensor,
    training: bool,
    frozen: str | None = None,
    matrices: dict | None = None,
) -> Tensor:
    """The stacked forward of models with the same ``program`` on activations laid out features
    first, rows last: ``x`` (m, C, L, R) or (m, D, R) -> logits (m, K, R). In this layout every
    layer is one native kernel over all m models: a convolution or linear layer one batched matrix
    product, BatchNorm ``F.batch_norm`` on the (1, m * C, L * R) view (each model's channels are
    channels of their own; its running statistics, views of the stacked buffers, are updated in
    place), ReLU and sigmoid elementwise, max pooling one reduction over a window axis. (The earlier
    rows-first layout composed BatchNorm and pooling from ~10 elementwise operations each and ran
    a training step 2-2.4x slower, ``benchmarks/evaluation.py``.) BatchNorm runs on batch
    statistics when ``training``, except in layers under the prefix ``frozen`` (LP-FT's encoder).
    ``matrices``: a cache of the convolutions' matrices, kept across calls with the same weights
    (the evaluation's slices of rows)."""
    m, rows = x.shape[0], x.shape[-1]
    for prefix, layer in program:
        if isinstance(layer, nn.Conv1d):
            cin, length = x.shape[1], x.shape[2]
            matrix = matrices.get(prefix) if matrices is not None else None
            if matrix is None:
                matrix = _ConvMatrix.apply(params[prefix + "weight"], length, layer.padding[0])
                if matrices is not None:
                    matrices[prefix] = matrix
            positions_first = x.transpose(1, 2).reshape(m, length * cin, rows)  # a view after pooling
            x = torch.bmm(matrix, positions_first).view(m, layer.out_channels, -1, rows)
            if layer.bias is not None:
                x = x + params[prefix + "bias"][:, :, None, None]
        elif isinstance(layer, nn.BatchNorm1d):
            batch_stats = training and not (frozen is not None and prefix.startswith(frozen))
            mean, var = buffers[prefix + "running_mean"], buffers[prefix + "running_var"]
            momentum = layer.momentum  # a number: _program leaves momentum=None (cumulative) to vmap
            if batch_stats:
                buffers[prefix + "num_batches_tracked"].add_(1)
            shape = x.shape
            x = F.batch_norm(
                x.reshape(1, m * shape[1], -1), mean.view(-1), var.view(-1), params[prefix + "weight"].reshape(-1),
                params[prefix + "bias"].reshape(-1), batch_stats, momentum, layer.eps,
            ).view(shape)  # fmt: skip
        elif isinstance(layer, nn.ReLU):
            x = F.relu(x)
        elif isinstance(layer, nn.Sigmoid):
            x = torch.sigmoid(x)
        elif isinstance(layer, nn.MaxPool1d):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            pad = layer.padding if isinstance(layer.padding, int) else layer.padding[0]
            x = _WindowMax.apply(x, k, pad) if torch.is_grad_enabled() else _WindowMax.values(x, k, pad)[0]
        elif isinstance(layer, nn.Flatten):
            x = x.reshape(m, -1, rows)
        elif isinstance(layer, nn.Linear):
            x = torch.baddbmm(params[prefix + "bias"][:, :, None], params[prefix + "weight"], x)
    return x


def _fused_adam(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: list[Tensor],
    exp_avg_sq: list[Tensor],
    rates: list[float],
    step: int,
    config: FinetuneConfig,
) -> bool:
    """One Adam step of stacked models that share a step count, by torch's fused Adam kernel (what
    ``torch.optim.Adam(fused=True)`` runs: one pass per tensor; at 64 stacked CNNs 6.6 ms against
    34 ms for the same update in ``_foreach`` operations), one call per learning rate. False where
    this torch build has no such kernel for the device (the caller then updates op by op)."""
    fused = getattr(torch, "_fused_adam_", None)
    if fused is None:
        return False
    # the kernel walks memory linearly: a convolution weight kept taps-last (``_Stack``) is passed,
    # with its gradient and Adam state laid out alike, as their contiguous (m, Cout, k, Cin) views
    quads = list(zip(params, grads, exp_avg, exp_avg_sq))
    if any(len({t.stride() for t in quad}) > 1 for quad in quads):
        return False
    quads = [tuple(t.permute(0, 1, 3, 2) for t in quad) if quad[0].dim() == 4 and not quad[0].is_contiguous()
             else quad for quad in quads]  # fmt: skip
    if not all(t.is_contiguous() for quad in quads for t in quad):
        return False
    params, grads, exp_avg, exp_avg_sq = (list(ts) for ts in zip(*quads))
    beta1, beta2 = config.betas
    try:
        for rate in dict.fromkeys(rates):
            at = [i for i, r in enumerate(rates) if r == rate]
            fused(
                [params[i] for i in at], [grads[i] for i in at], [exp_avg[i] for i in at],
                [exp_avg_sq[i] for i in at], [], [torch.tensor(float(step), device=params[i].device) for i in at],
                amsgrad=False, lr=rate, beta1=beta1, beta2=beta2, weight_decay=config.weight_decay, eps=1e-8,
                maximize=False,
            )  # fmt: skip
    except (RuntimeError, NotImplementedError):
        return False
    return True


class _Stack:
    """The stacked parameters, buffers and Adam state of same-shaped models."""

    def __init__(self, models: list[nn.Module], config: FinetuneConfig, device: torch.device) -> None:
        self.base = copy.deepcopy(models[0]).to("meta")
        for model in models:  # the heads (own copies) to the encoders' device; the shared encoders stay put
            model[1].to(device)
        params, buffers = stack_module_state(models)
        params = {k: v.to(device) for k, v in params.items()}
        self.program = _pool_before_relu(_program(models[0]))
        # the convolutions' weights (m, Cout, Cin, k) kept in taps-last memory ((m, Cout, k, Cin), see
        # _ConvMatrix): building their matrices then copies no weight, and their gradients come back
        # in the same memory order, so the Adam step copies none either (before: a permuted copy of
        # each weight per forward and of each gradient per step, ~0.24 s of an 8.4 s batched call,
        # the largest being conv3's, torch profiler on ``benchmarks/evaluation.py --workloads finetune``)
        for prefix, layer in self.program or []:
            if isinstance(layer, nn.Conv1d):
                w = params[prefix + "weight"]
                params[prefix + "weight"] = w.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
        buffers = {k: v.to(device) for k, v in buffers.items()}
        frozen = {f"0.{k}" for k, _ in models[0][0].named_parameters()} if config.freeze_encoder else set()
        self.params = {k: v.detach() for k, v in params.items() if k not in frozen}
        self.fixed = {k: v.detach() for k, v in params.items() if k in frozen}
        self.buffers = buffers
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        # ``ema_decay``: the moving average of the trained weights, scored and kept instead of them
        self.decay = config.moving_average_decay()
        self.averaged = None if self.decay is None else {k: v.clone() for k, v in self.params.items()}
        self.steps = [0] * len(models)
        self.class_weight: Tensor | None = None  # (m, K): each model's loss class weights (class_balanced_loss)
        self.head_penalty: tuple[Tensor, Tensor] | None = None  # (m,) l2 and (m, D) s of each head's penalty
        self.config = config
        # LP-FT: the encoder ("0.") in eval mode (BatchNorm on running statistics), as the loop
        self.frozen_prefix = "0." if config.recipe == "lpft" and config.freeze_batchnorm else None

    def forward(self, params: dict, buffers: dict, x: Tensor, training: bool, matrices: dict | None = None) -> Tensor:
        """Logits (m, R, K) of the models whose state is ``params``/``buffers`` on ``x`` (m, R, ...)."""
        if self.program is not None:  # the shipped encoders: hand-stacked layers (batched products)
            if x.dim() == 4:  # (m, R, C, L) -> (m, C, L, R) over memory laid out (m, L, C, R): see _ConvMatrix
                rows_last = x.permute(0, 3, 2, 1).contiguous().transpose(1, 2)
            else:
                rows_last = x.permute(0, *range(2, x.dim()), 1).contiguous()
            out = _run_program(self.program, params, buffers, rows_last, training, self.frozen_prefix, matrices)
            return out.transpose(1, 2)
        self.base.train(training)
        if training and self.frozen_prefix is not None:
            self.base[0].eval()

        def one(p: dict, b: dict, xb: Tensor) -> Tensor:
            return functional_call(self.base, (p, b), (xb,))

        return vmap(one)(params, buffers, x)

    def train_step(self, idx: list[int], x: Tensor, y: Tensor, lr: float, encoder_lr: float) -> None:
        """One Adam step of models ``idx`` on their batches ``x`` (m, b, C, F), ``y`` (m, b): the
        head's parameters ("1.") at ``lr``, the encoder's ("0.") at ``encoder_lr`` (the loop's two
        parameter groups)."""
        every = len(idx) == len(self.steps)
        pick = torch.tensor(idx, device=x.device)
        sub_p = {k: (v if every else v[pick]).detach().requires_grad_(True) for k, v in self.params.items()}
        sub_f = {k: v if every else v[pick] for k, v in self.fixed.items()}
        sub_b = {k: v if every else v[pick].clone() for k, v in self.buffers.items()}
        logits = self.forward({**sub_p, **sub_f}, sub_b, x, training=True)
        m, b = y.shape
        ce = F.cross_entropy(logits.reshape(m * b, -1), y.reshape(-1), reduction="none").view(m, b)
        if self.class_weight is None:
            loss = ce.mean(1).sum()
        else:  # each model's weighted batch mean, as F.cross_entropy(weight=...) in the loop
            w = (self.class_weight if every else self.class_weight[pick]).gather(1, y)
            loss = ((ce * w).sum(1) / w.sum(1)).sum()
        if self.head_penalty is not None:  # each model's l2 ||V s||^2 on its head's weight V (m, K, D)
            l2, scale = (v if every else v[pick] for v in self.head_penalty)
            loss = loss + (l2 * (sub_p["1.weight"] * scale[:, None, :]).pow(2).sum((1, 2))).sum()
        grads = torch.autograd.grad(loss, list(sub_p.values()))
        if not every:
            for k, v in sub_b.items():
                self.buffers[k][pick] = v
        beta1, beta2 = self.config.betas
        for j in idx:
            self.steps[j] += 1
        steps = [self.steps[j] for j in idx]
        names = list(sub_p)
        params = [sub_p[k].detach() for k in names]
        # each gradient in its parameter's memory order (vmap's may be strided otherwise): the Adam
        # state shares that order (zeros_like and indexing keep it), so the update is elementwise over
        # four tensors laid out alike
        grads = [g if g.stride() == p.stride() else torch.empty_like(p).copy_(g) for p, g in zip(params, grads)]
        exp_avg = [self.exp_avg[k] if every else self.exp_avg[k][pick] for k in names]
        exp_avg_sq = [self.exp_avg_sq[k] if every else self.exp_avg_sq[k][pick] for k in names]
        rates = [encoder_lr if k.startswith("0.") else lr for k in names]
        uniform = len(set(steps)) == 1
        if not (uniform and _fused_adam(params, grads, exp_avg, exp_avg_sq, rates, steps[0], self.config)):
            # models at different steps (subjects with more batches): per-model bias corrections
            if self.config.weight_decay:
                torch._foreach_add_(grads, params, alpha=self.config.weight_decay)
            torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sq, beta2)
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
            denom = torch._foreach_sqrt(exp_avg_sq)
            shape = (len(idx),) + (1,) * 8
            bc2_sqrt = torch.tensor([(1 - beta2**s) ** 0.5 for s in steps], device=x.device)
            step_size = {
                rate: torch.tensor([rate / (1 - beta1**s) for s in steps], device=x.device) for rate in set(rates)
            }
            for param, m1, d, rate in zip(params, exp_avg, denom, rates):
                view = shape[: param.dim()]
                d.div_(bc2_sqrt.view(view)).add_(1e-8)
                param.sub_(step_size[rate].view(view) * (m1 / d))
        if not every:
            for k, param, m1, m2 in zip(names, params, exp_avg, exp_avg_sq):
                self.params[k][pick] = param
                self.exp_avg[k][pick] = m1
                self.exp_avg_sq[k][pick] = m2
        if self.averaged is not None:
            averaged = [self.averaged[k] if every else self.averaged[k][pick] for k in names]
            torch._foreach_lerp_(averaged, params, 1.0 - self.decay)
            if not every:
                for k, a in zip(names, averaged):
                    self.averaged[k][pick] = a

    def scored(self) -> dict[str, Tensor]:
        """The trained weights that are scored and kept: the parameters, or their moving average."""
        return self.params if self.averaged is None else self.averaged

    def snapshot(self, j: int) -> dict[str, Tensor]:
        """Model ``j``'s parameters and buffers now (kept at its best checkpoint)."""
        state = {**self.scored(), **self.fixed, **self.buffers}
        return {k: v[j].clone(memory_format=torch.contiguous_format) for k, v in state.items()}  # (a state_dict's)

    @torch.no_grad()
    def logits(self, idx: list[int], x: Tensor, states: list[dict] | None = None) -> Tensor:
        """Eval-mode logits of models ``idx`` on ``x`` (m, L, C, F), in slices of rows; with
        ``states`` (one snapshot per model), those weights instead of the current ones."""
        pick = torch.tensor(idx, device=x.device)
        every = len(idx) == len(self.steps)
        if states is not None:
            stacked = {k: torch.stack([st[k] for st in states]) for k in states[0]}
            sub = {k: stacked[k] for k in (*self.params, *self.fixed)}
            bufs = {k: stacked[k] for k in self.buffers}
        else:
            state = {**self.scored(), **self.fixed}
            sub = {k: v if every else v[pick] for k, v in state.items()}
            bufs = {k: v if every else v[pick] for k, v in self.buffers.items()}
        matrices: dict = {}  # the convolutions' matrices, built once for every slice of rows
        outs = [
            self.forward(sub, bufs, x[:, i : i + EVAL_ROWS], training=False, matrices=matrices)
            for i in range(0, x.shape[1], EVAL_ROWS)
        ]
        return torch.cat(outs, dim=1).float()


def finetune_batched(
    jobs: list[FinetuneJob],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    config: FinetuneConfig,
    max_models: int = 32,
    keep_states: bool = False,
) -> list[dict]:
    """The metrics of :func:`finetune.finetune` for every job (same order), the jobs trained as
    stacked models of at most ``max_models`` (grouped by architecture), either recipe. Data is moved
    to the encoders' device once. An encoder that cannot run stacked falls back to the loop, with a
    one-line notice. ``keep_states``: as the loop's, each model's state at every checkpoint
    (``history["states"]``) and a module to load them into (``module``, its own copy)."""
    results: list[dict | None] = [None] * len(jobs)
    models = [build_model(job.encoder, num_classes, config, job.seed, job.head, copy_encoder=False) for job in jobs]
    groups: dict[tuple, list[int]] = {}
    for j, model in enumerate(models):
        groups.setdefault(_signature(model), []).append(j)
    device = module_device(jobs[0].encoder) if jobs else torch.device("cpu")
    train_x, train_y = train[0].to(device), train[1].to(device)
    test_x, test_y = test[0].to(device), test[1].to(device)
    for members in groups.values():
        for start in range(0, len(members), max_models):
            chunk = members[start : start + max_models]
            try:
                stack = _Stack([models[j] for j in chunk], config, device)
                if config.class_balanced_loss:
                    stack.class_weight = torch.stack(
                        [class_balance_weights(train[1][jobs[j].fit], num_classes) for j in chunk]
                    ).float().to(device)  # fmt: skip
                if jobs[chunk[0]].head_penalty is not None:
                    stack.head_penalty = (
                        torch.tensor([jobs[j].head_penalty[0] for j in chunk], device=device),
                        torch.stack([jobs[j].head_penalty[1] for j in chunk]).to(device),
                    )
                probe = train_x[jobs[chunk[0]].fit[:2]]
                stack.logits(list(range(len(chunk))), probe.unsqueeze(0).expand(len(chunk), *probe.shape))
            except Exception as err:  # an encoder vmap cannot run: the per-model loop
                warnings.warn(
                    f"batched fine-tuning: {type(jobs[chunk[0]].encoder).__name__} cannot be stacked "
                    f"({type(err).__name__}: {str(err).splitlines()[0][:120]}); training its {len(chunk)} models "
                    "one at a time",
                    stacklevel=2,
                )
                for j in chunk:
                    job = jobs[j]
                    results[j] = finetune(
                        job.encoder, num_classes, (train[0][job.fit], train[1][job.fit]),
                        (train[0][job.val], train[1][job.val]), (test[0][job.test], test[1][job.test]),
                        config, job.seed, test_groups=job.groups, head=job.head, select_at=job.select_at,
                        keep_states=keep_states, head_penalty=job.head_penalty,
                    )  # fmt: skip
                continue
            for j, metrics in zip(chunk, _train_stack(stack, [jobs[j] for j in chunk], train_x, train_y,
                                                     test_x, test_y, num_classes, config, keep_states)):  # fmt: skip
                if keep_states:  # its own module (the encoder is shared until here); states as its state_dict's
                    metrics["module"] = module = copy.deepcopy(models[j])
                    keys = module.state_dict().keys()  # (a non-persistent buffer is stacked but not saved)
                    metrics["history"]["states"] = [{k: st[k] for k in keys} for st in metrics["history"]["states"]]
                results[j] = metrics
    return results  # type: ignore[return-value]


def _batches_before(
    checkpoint: int,
    running: list[int],
    fit_rows: list[Tensor],
    gens: list[torch.Generator],
    streams: list,
    config: FinetuneConfig,
) -> dict[int, list[Tensor]]:
    """Each running model's batches (row indices into the train set, on the CPU) between the previous
    checkpoint and ``checkpoint``, drawn from its own generator exactly as the loop draws them:
    ``reference``, one epoch (a fresh permutation; a last batch under two rows skipped);
    ``lpft``, the next ``steps`` between checkpoints from its endless stream."""
    out = {}
    if config.recipe == "lpft":
        points = config.checkpoints()
        count = points[checkpoint] - (points[checkpoint - 1] if checkpoint else 0)
        for j in running:
            out[j] = [fit_rows[j][idx] for idx in itertools.islice(streams[j], count)]
        return out
    for j in running:
        rows = fit_rows[j][torch.randperm(len(fit_rows[j]), generator=gens[j])]
        out[j] = [b for b in (rows[i : i + config.batch_size] for i in range(0, len(rows), config.batch_size))
                  if len(b) >= 2]  # fmt: skip
    return out


def _take_rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` for an integer ``index`` of any shape over ``x``'s first axis, by ``index_select``
    (whole rows copied: a 32 x 128-window batch of 32 x 5 features 0.14 vs 0.38 ms for advanced
    indexing, which computes every element's address)."""
    return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])


def _train_stack(
    stack: _Stack,
    jobs: list[FinetuneJob],
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    config: FinetuneConfig,
    keep_states: bool = False,
) -> list[dict]:
    device = train_x.device
    m = len(jobs)
    lpft = config.recipe == "lpft"
    points = config.checkpoints()
    # lpft: the rate of each checkpoint's last step (history), the steps' own from ``lr_factor``
    lrs = [config.lr * config.lr_factor(max(p - 1, 0)) for p in points] if lpft else _cosine_lrs(config)
    gens = [torch.Generator().manual_seed(job.seed) for job in jobs]
    fit_rows = [job.fit.cpu() for job in jobs]  # batches are drawn on the CPU, moved once per step
    streams = [batch_stream(len(r), config.batch_size, g) for r, g in zip(fit_rows, gens)] if lpft else []
    n_val = [len(job.val) for job in jobs]
    n_test = [len(job.test) for job in jobs]
    width = max(v + t for v, t in zip(n_val, n_test))
    # every model's validation then test rows, padded to one length (row 0 repeated; masked out):
    # the one evaluation input, gathered once from the train and test sets side by side
    both_x, both_y = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
    rows = torch.zeros((m, width), dtype=torch.long)
    is_val = torch.zeros((m, width), dtype=torch.bool)
    is_test = torch.zeros((m, width), dtype=torch.bool)
    for j, job in enumerate(jobs):
        v, t = n_val[j], n_test[j]
        rows[j, :v], rows[j, v : v + t] = job.val, job.test + len(train_x)
        is_val[j, :v], is_test[j, v : v + t] = True, True
    rows, is_val, is_test = rows.to(device), is_val.to(device), is_test.to(device)
    eval_x, eval_y = _take_rows(both_x, rows), both_y[rows]
    history = [{"val_bacc": [], "val_acc": [], "val_loss": [], "test_acc": [], "test_bacc": [], "lr": []} for _ in jobs]
    best_key: list[tuple | None] = [None] * m
    best_epoch = [0] * m
    best_test: list[Tensor | None] = [None] * m
    best_state: list[dict | None] = [None] * m
    running = list(range(m))
    for epoch in range(len(points)):  # a checkpoint: after an epoch (reference), after steps (lpft)
        if not running:
            break
        lr = lrs[epoch]
        encoder_lr = config.encoder_lr if lpft else lr
        batches = _batches_before(epoch, running, fit_rows, gens, streams, config)
        for j in running:
            history[j]["lr"].append(lr)
        for step in range(max((len(b) for b in batches.values()), default=0)):
            if lpft:  # every model takes the same steps between checkpoints: step ``number`` of its run
                number = (points[epoch - 1] if epoch else 0) + step
                lr, encoder_lr = config.lr * config.lr_factor(number), config.encoder_lr * config.lr_factor(number)
            by_size: dict[int, list[int]] = {}
            for j in running:
                if step < len(batches[j]):
                    by_size.setdefault(len(batches[j][step]), []).append(j)
            for members in by_size.values():
                picked = torch.stack([batches[j][step] for j in members]).to(device)
                stack.train_step(members, _take_rows(train_x, picked), train_y[picked], lr, encoder_lr)
        logits = stack.logits(running, eval_x if len(running) == m else eval_x[running])
        ey, val_mask, test_mask = eval_y[running], is_val[running], is_test[running]
        val_bacc = present_class_balanced_accuracies(logits, ey, val_mask, num_classes).tolist()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ey.reshape(-1), reduction="none").view(ey.shape)
        nv = val_mask.sum(1).float()  # 0 for a refit (no validation rows): NaN figures, as the loop
        val_loss = ((ce * val_mask).sum(1) / nv).tolist()
        correct = logits.argmax(-1) == ey
        val_acc = ((correct & val_mask).sum(1).float() / nv).tolist()
        test_acc = ((correct & test_mask).sum(1).float() / test_mask.sum(1).float()).tolist()
        test_bacc = present_class_balanced_accuracies(logits, ey, test_mask, num_classes).tolist()
        test_bacc = [b if n > 0 else float("nan") for b, n in zip(test_bacc, test_mask.sum(1).tolist())]
        val_bacc = [b if v > 0 else float("nan") for b, v in zip(val_bacc, nv.tolist())]
        still = []
        for i, j in enumerate(running):
            h = history[j]
            h["val_bacc"].append(val_bacc[i])
            h["val_acc"].append(val_acc[i])
            h["val_loss"].append(val_loss[i])
            h["test_acc"].append(test_acc[i])
            h["test_bacc"].append(test_bacc[i])
            if keep_states:
                h.setdefault("states", []).append(stack.snapshot(j))
            key = (val_bacc[i], val_loss[i])
            if jobs[j].select_at is not None:
                chosen = epoch == jobs[j].select_at
            else:
                chosen = improves(key, best_key[j])
            if chosen:
                best_key[j], best_epoch[j] = key, epoch
                best_test[j] = logits[i, n_val[j] : n_val[j] + n_test[j]].cpu()
                best_state[j] = stack.snapshot(j)
                still.append(j)
            elif jobs[j].select_at is None and config.patience is not None and epoch - best_epoch[j] >= config.patience:
                continue
            else:
                still.append(j)
        running = still
    n_fit = max(len(r) for r in fit_rows)  # training accuracy at the selected epoch: one more forward
    fit_index = torch.stack([torch.cat([r, r.new_zeros(n_fit - len(r))]) for r in fit_rows]).to(device)
    train_logits = stack.logits(list(range(m)), _take_rows(train_x, fit_index), best_state).cpu()
    out = []
    for j, job in enumerate(jobs):
        y = test_y[job.test.to(device)].cpu()
        metrics = classification_metrics(best_test[j], y, num_classes)
        n = len(fit_rows[j])
        metrics.update(fit_summary(train_logits[j, :n], train_y[fit_rows[j].to(device)].cpu(), num_classes))
        if job.groups is not None:
            metrics["groups"] = {
                int(g): classification_metrics(best_test[j][job.groups == g], y[job.groups == g], num_classes)
                for g in torch.unique(job.groups).tolist()
            }
        e = best_epoch[j]
        h = history[j]
        metrics.update(
            best_epoch=None if lpft else e, best_step=points[e] if lpft else None, val_acc=h["val_acc"][e],
            val_balanced_accuracy=h["val_bacc"][e],
            val_loss=h["val_loss"][e], optimistic_best_test_acc=max((a for a in h["test_acc"] if a == a), default=float("nan")),
            balanced_selection_gap=balanced_selection_gap(h["test_bacc"], e),
            random_choice_gap=random_choice_gap(h["test_bacc"]), history=h,
        )  # fmt: skip
        out.append(metrics)
    return out
