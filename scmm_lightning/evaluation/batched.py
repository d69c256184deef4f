"""The fine-tuning protocol's models trained together: one stacked model per architecture.

Every model of a protocol call (target subject x row x fold) is independent and of one of a few
shapes, so the models of one shape are stacked (``torch.func.stack_module_state``) and run as one
(``functional_call`` under ``vmap``: a convolution becomes a grouped convolution, BatchNorm keeps
each model's own running statistics, updated in place). Each model keeps everything the per-model
loop (:func:`finetune.finetune`, the reference this engine is tested against) gives it: its initial
weights (built from its seed exactly as the loop builds them), its own batches (its own permutation
generator; subjects with more windows have more batches per epoch: at a step, the models that still
have a batch are trained, grouped by batch size), its own Adam moments and step count, the shared
cosine schedule, its own epoch selection and patience. After every epoch each model's validation and
test rows go through ONE batched forward (the test figures only feed the labelled optimistic column
and, at the selected epoch, the reported metrics: nothing is evaluated twice).

Measured (``benchmarks/evaluation.py``, 2-core CPU): see the README's performance table.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ..model import ClassifierHead
from .finetune import FinetuneConfig, finetune, fit_summary
from .metrics import classification_metrics
from .probe import module_device

EVAL_ROWS = 1024  # rows per model per evaluation forward (bounds activation memory)


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
    select_at: int | None = None  # report this epoch (chosen beforehand by cross-validation), not the best on val


def build_model(encoder: nn.Module, num_classes: int, config: FinetuneConfig, seed: int) -> nn.Module:
    """Encoder copy + fresh head, initialised from ``seed`` exactly as :func:`finetune` does."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(copy.deepcopy(encoder), ClassifierHead(encoder.out_features, num_classes, config.hidden))


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
        if type(module) is nn.BatchNorm1d and not (module.affine and module.track_running_stats):
            return None
        return [(prefix, module)]
    return None


def _conv_matrix(weight: Tensor, length: int, padding: int) -> Tensor:
    """A stride-1 zero-padded Conv1d as a matrix (m, Cin * L, Cout * Lout): the convolution of a
    (Cin, L) input is one matrix product, and m models' convolutions one batched product (a 1-D
    CNN over 5 bands is too small for the convolution kernels to be efficient; measured in
    ``benchmarks/evaluation.py``)."""
    m, cout, cin, k = weight.shape
    lout = length + 2 * padding - k + 1
    tap = torch.arange(length, device=weight.device)[:, None] - torch.arange(lout, device=weight.device)[None] + padding
    # shift[t, j, o] = 1 where input position j meets output position o through tap t; a product with
    # it (not an index gather, whose backward is a slow scatter) places the taps
    shift = (tap[None] == torch.arange(k, device=weight.device)[:, None, None]).to(weight.dtype)
    return torch.einsum("moit,tjl->mijol", weight, shift).reshape(m, cin * length, cout * lout)


def _run_program(program: list, params: dict, buffers: dict, x: Tensor, training: bool) -> Tensor:
    """The stacked forward of models with the same ``program``: ``x`` (m, B, ...) -> (m, B, K).
    BatchNorm uses each model's batch statistics and updates its running statistics in place when
    ``training`` (as ``nn.BatchNorm1d`` does), else its running statistics."""
    m, b = x.shape[:2]
    for prefix, layer in program:
        if isinstance(layer, nn.Conv1d):
            cin, length = x.shape[2], x.shape[3]
            out = torch.bmm(
                x.reshape(m, b, cin * length), _conv_matrix(params[prefix + "weight"], length, layer.padding[0])
            )
            x = out.view(m, b, layer.out_channels, -1)
            if layer.bias is not None:
                x = x + params[prefix + "bias"][:, None, :, None]
        elif isinstance(layer, nn.BatchNorm1d):
            dims = (1, 3) if x.dim() == 4 else (1,)
            shape = (m, 1, -1, 1) if x.dim() == 4 else (m, 1, -1)
            mean_key, var_key = prefix + "running_mean", prefix + "running_var"
            if training:
                mean, var = x.mean(dims), x.var(dims, unbiased=False)
                n = x.numel() // (m * x.shape[2])
                with torch.no_grad():
                    momentum = layer.momentum
                    buffers[mean_key].mul_(1 - momentum).add_(momentum * mean.detach())
                    buffers[var_key].mul_(1 - momentum).add_(momentum * var.detach() * (n / max(n - 1, 1)))
                    buffers[prefix + "num_batches_tracked"].add_(1)
            else:
                mean, var = buffers[mean_key], buffers[var_key]
            scale = params[prefix + "weight"] * torch.rsqrt(var + layer.eps)
            x = (x - mean.view(shape)) * scale.view(shape) + params[prefix + "bias"].view(shape)
        elif isinstance(layer, nn.ReLU):
            x = x.clamp_min(0)
        elif isinstance(layer, nn.Sigmoid):
            x = torch.sigmoid(x)
        elif isinstance(layer, nn.MaxPool1d):
            k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
            pad = layer.padding if isinstance(layer.padding, int) else layer.padding[0]
            n_out = (x.shape[-1] + 2 * pad - k) // k + 1
            xp = F.pad(x, (pad, pad), value=float("-inf"))
            x = xp[..., 0 : n_out * k : k]
            for offset in range(1, k):  # elementwise maxima of strided views: cheaper than a pooling kernel here
                x = torch.maximum(x, xp[..., offset : n_out * k : k])
        elif isinstance(layer, nn.Flatten):
            x = x.reshape(m, b, -1)
        elif isinstance(layer, nn.Linear):
            weight = params[prefix + "weight"]
            x = torch.baddbmm(params[prefix + "bias"][:, None, :], x, weight.transpose(1, 2))
    return x


class _Stack:
    """The stacked parameters, buffers and Adam state of same-shaped models."""

    def __init__(self, models: list[nn.Module], config: FinetuneConfig) -> None:
        self.base = copy.deepcopy(models[0]).to("meta")
        params, buffers = stack_module_state(models)
        frozen = {f"0.{k}" for k, _ in models[0][0].named_parameters()} if config.freeze_encoder else set()
        self.params = {k: v.detach() for k, v in params.items() if k not in frozen}
        self.fixed = {k: v.detach() for k, v in params.items() if k in frozen}
        self.buffers = buffers
        self.exp_avg = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(v) for k, v in self.params.items()}
        self.steps = [0] * len(models)
        self.config = config
        self.program = _program(models[0])

    def forward(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        if self.program is not None:  # the shipped encoders: hand-stacked layers (batched products)
            return _run_program(self.program, params, buffers, x, self.base.training)

        def one(p: dict, b: dict, xb: Tensor) -> Tensor:
            return functional_call(self.base, (p, b), (xb,))

        return vmap(one)(params, buffers, x)

    def train_step(self, idx: list[int], x: Tensor, y: Tensor, lr: float) -> None:
        """One Adam step of models ``idx`` on their batches ``x`` (m, b, C, F), ``y`` (m, b)."""
        every = len(idx) == len(self.steps)
        pick = torch.tensor(idx, device=x.device)
        sub_p = {k: (v if every else v[pick]).detach().requires_grad_(True) for k, v in self.params.items()}
        sub_f = {k: v if every else v[pick] for k, v in self.fixed.items()}
        sub_b = {k: v if every else v[pick].clone() for k, v in self.buffers.items()}
        self.base.train()
        logits = self.forward({**sub_p, **sub_f}, sub_b, x)
        m, b = y.shape
        loss = F.cross_entropy(logits.reshape(m * b, -1), y.reshape(-1), reduction="none").view(m, b).mean(1).sum()
        grads = torch.autograd.grad(loss, list(sub_p.values()))
        if not every:
            for k, v in sub_b.items():
                self.buffers[k][pick] = v
        beta1, beta2 = self.config.betas
        for j in idx:
            self.steps[j] += 1
        steps = [self.steps[j] for j in idx]
        shape = (m,) + (1,) * 8
        step_size = torch.tensor([lr / (1 - beta1**s) for s in steps], device=x.device)
        bc2_sqrt = torch.tensor([(1 - beta2**s) ** 0.5 for s in steps], device=x.device)
        for (k, param), grad in zip(sub_p.items(), grads):
            view = shape[: param.dim()]
            p = param.detach()
            grad = grad.add(p, alpha=self.config.weight_decay) if self.config.weight_decay else grad
            m1 = self.exp_avg[k] if every else self.exp_avg[k][pick]
            m2 = self.exp_avg_sq[k] if every else self.exp_avg_sq[k][pick]
            m1.lerp_(grad, 1 - beta1)
            m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (m2.sqrt() / bc2_sqrt.view(view)).add_(1e-8)
            updated = p - step_size.view(view) * (m1 / denom)
            if every:
                p.copy_(updated)
            else:
                self.params[k][pick] = updated
                self.exp_avg[k][pick] = m1
                self.exp_avg_sq[k][pick] = m2

    def snapshot(self, j: int) -> dict[str, Tensor]:
        """Model ``j``'s parameters and buffers now (kept at its best epoch)."""
        return {k: v[j].clone() for k, v in {**self.params, **self.fixed, **self.buffers}.items()}

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
            state = {**self.params, **self.fixed}
            sub = {k: v if every else v[pick] for k, v in state.items()}
            bufs = {k: v if every else v[pick] for k, v in self.buffers.items()}
        self.base.eval()
        outs = [self.forward(sub, bufs, x[:, i : i + EVAL_ROWS]) for i in range(0, x.shape[1], EVAL_ROWS)]
        return torch.cat(outs, dim=1).float()


def _balanced_accuracies(logits: Tensor, y: Tensor, mask: Tensor, num_classes: int) -> Tensor:
    """Per model: mean recall over the classes present among its masked rows (float32, as the loop)."""
    pred = logits.argmax(-1)
    onehot = F.one_hot(y, num_classes).bool() & mask[..., None]
    count = onehot.sum(1)
    hits = (onehot & (pred == y)[..., None]).sum(1)
    recall = hits.float() / count.clamp_min(1).float()
    present = count > 0
    return (recall * present).sum(1) / present.sum(1).clamp_min(1).float()


def finetune_batched(
    jobs: list[FinetuneJob],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    num_classes: int,
    config: FinetuneConfig,
    max_models: int = 256,
) -> list[dict]:
    """The metrics of :func:`finetune.finetune` for every job (same order), the jobs trained as
    stacked models of at most ``max_models`` (grouped by architecture). Data is moved to the
    encoders' device once. An encoder that cannot run under ``vmap`` falls back to the loop, with a
    one-line notice."""
    results: list[dict | None] = [None] * len(jobs)
    models = [build_model(job.encoder, num_classes, config, job.seed) for job in jobs]
    groups: dict[tuple, list[int]] = {}
    for j, model in enumerate(models):
        groups.setdefault(_signature(model), []).append(j)
    device = module_device(jobs[0].encoder) if jobs else torch.device("cpu")
    train_x, train_y = train[0].to(device), train[1].to(device)
    test_x, test_y = test[0].to(device), test[1].to(device)
    lrs = _cosine_lrs(config)
    for members in groups.values():
        for start in range(0, len(members), max_models):
            chunk = members[start : start + max_models]
            try:
                stack = _Stack([models[j].to(device) for j in chunk], config)
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
                        config, job.seed, test_groups=job.groups, select_at=job.select_at,
                    )  # fmt: skip
                continue
            for j, metrics in zip(chunk, _train_stack(stack, [jobs[j] for j in chunk], train_x, train_y,
                                                     test_x, test_y, num_classes, config, lrs)):  # fmt: skip
                results[j] = metrics
    return results  # type: ignore[return-value]


def _train_stack(
    stack: _Stack,
    jobs: list[FinetuneJob],
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    config: FinetuneConfig,
    lrs: list[float],
) -> list[dict]:
    device = train_x.device
    m = len(jobs)
    gens = [torch.Generator().manual_seed(job.seed) for job in jobs]
    fit_rows = [job.fit.to(device) for job in jobs]
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
    eval_x, eval_y = both_x[rows], both_y[rows]
    history = [{"val_bacc": [], "val_acc": [], "val_loss": [], "test_acc": [], "lr": []} for _ in jobs]
    best_key: list[tuple | None] = [None] * m
    best_epoch = [0] * m
    best_test: list[Tensor | None] = [None] * m
    best_state: list[dict | None] = [None] * m
    running = list(range(m))
    for epoch in range(config.epochs):
        if not running:
            break
        lr = lrs[epoch]
        batches = {}
        for j in running:
            history[j]["lr"].append(lr)
            order = torch.randperm(len(fit_rows[j]), generator=gens[j]).to(device)
            rows = fit_rows[j][order]
            batches[j] = [rows[i : i + config.batch_size] for i in range(0, len(rows), config.batch_size)]
            batches[j] = [b for b in batches[j] if len(b) >= 2]  # BatchNorm needs two rows (as the loop)
        for step in range(max((len(b) for b in batches.values()), default=0)):
            by_size: dict[int, list[int]] = {}
            for j in running:
                if step < len(batches[j]):
                    by_size.setdefault(len(batches[j][step]), []).append(j)
            for members in by_size.values():
                rows = torch.stack([batches[j][step] for j in members])
                stack.train_step(members, train_x[rows], train_y[rows], lr)
        logits = stack.logits(running, eval_x[running])
        ey, val_mask, test_mask = eval_y[running], is_val[running], is_test[running]
        val_bacc = _balanced_accuracies(logits, ey, val_mask, num_classes).tolist()
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ey.reshape(-1), reduction="none").view(ey.shape)
        nv = val_mask.sum(1).float()  # 0 for a refit (no validation rows): NaN figures, as the loop
        val_loss = ((ce * val_mask).sum(1) / nv).tolist()
        correct = logits.argmax(-1) == ey
        val_acc = ((correct & val_mask).sum(1).float() / nv).tolist()
        test_acc = ((correct & test_mask).sum(1).float() / test_mask.sum(1).float()).tolist()
        val_bacc = [b if v > 0 else float("nan") for b, v in zip(val_bacc, nv.tolist())]
        still = []
        for i, j in enumerate(running):
            h = history[j]
            h["val_bacc"].append(val_bacc[i])
            h["val_acc"].append(val_acc[i])
            h["val_loss"].append(val_loss[i])
            h["test_acc"].append(test_acc[i])
            key = (val_bacc[i], -val_loss[i])
            if jobs[j].select_at is not None:
                chosen = epoch == jobs[j].select_at
            else:
                chosen = best_key[j] is None or key > best_key[j]
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
    fit_index = torch.stack([torch.cat([r, r.new_zeros(n_fit - len(r))]) for r in fit_rows])
    train_logits = stack.logits(list(range(m)), train_x[fit_index], best_state).cpu()
    out = []
    for j, job in enumerate(jobs):
        y = test_y[job.test.to(device)].cpu()
        metrics = classification_metrics(best_test[j], y, num_classes)
        n = len(fit_rows[j])
        metrics.update(fit_summary(train_logits[j, :n], train_y[fit_rows[j]].cpu(), num_classes))
        if job.groups is not None:
            metrics["groups"] = {
                int(g): classification_metrics(best_test[j][job.groups == g], y[job.groups == g], num_classes)
                for g in torch.unique(job.groups).tolist()
            }
        e = best_epoch[j]
        h = history[j]
        metrics.update(
            best_epoch=e, best_step=None, val_acc=h["val_acc"][e], val_balanced_accuracy=h["val_bacc"][e],
            val_loss=h["val_loss"][e], optimistic_best_test_acc=max((a for a in h["test_acc"] if a == a), default=float("nan")),
            history=h,
        )  # fmt: skip
        out.append(metrics)
    return out
