"""What the PyTorch references of BENCHMARKS.md share with `bert-train`: BERTAdam and LAMB
(GluonNLP's, written out), the parameter groups (weight decay on everything but LayerNorm and
biases) and the linear warmup/decay schedule (GluonNLP's, 1-based steps).

Used by finetune_reference.py (GLUE), finetune_squad_reference.py (SQuAD),
make_pretrain_reference.py (BERTAdam and LAMB against pretraining) and bench_pretrain.py.
"""

import torch


def linear_schedule(lr, warmup_ratio, num_steps):
    """`at(step)`: the rate of optimizer step `step` (1-based); and the number of warmup steps."""
    warmup = int(num_steps * warmup_ratio)

    def at(step):  # 1-based, as GluonNLP and bert-train
        if step < warmup or warmup >= num_steps:
            return lr * min(step / max(warmup, 1), 1.0)
        return max(lr * (1.0 - (step - warmup) / (num_steps - warmup)), 0.0)

    return at, warmup


def param_groups(model, weight_decay):
    """Weight decay on weights and embeddings, none on LayerNorm and biases."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class _Moments(torch.optim.Optimizer):
    """Adam's first and second moments per parameter, updated from its gradient; a subclass
    turns them into the parameter's update (`update`)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def moments(self, p, b1, b2):
        """`(step, m, v)` of `p` after folding in `p.grad` (step 1-based)."""
        state = self.state[p]
        if not state:
            state["t"] = 0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
        state["t"] += 1
        m, v = state["m"], state["v"]
        m.mul_(b1).add_(p.grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        return state["t"], m, v

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, group, *self.moments(p, b1, b2))


class BertAdam(_Moments):
    """GluonNLP's BERTAdam: w -= lr * (m / (sqrt(v) + eps) + wd * w), no bias correction."""

    def update(self, p, group, t, m, v):
        update = m / (v.sqrt() + group["eps"])
        if group["weight_decay"]:
            update = update + group["weight_decay"] * p
        p.add_(update, alpha=-group["lr"])


class Lamb(_Moments):
    """GluonNLP's LAMB (bias_correction=True, no norm bounds), as You et al. 2019:
    r = m_hat / (sqrt(v_hat) + eps) + wd * w;  w -= lr * (|w| / |r|) * r, the ratio 1 when
    either norm is 0."""

    def update(self, p, group, t, m, v):
        b1, b2 = group["betas"]
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        update = m_hat / (v_hat.sqrt() + group["eps"]) + group["weight_decay"] * p
        w_norm, u_norm = p.norm(), update.norm()
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        p.sub_(group["lr"] * ratio * update)


def make_optimizer(kind, groups, lr, eps):
    """`bertadam` (ours) or torch's `adamw`."""
    if kind == "bertadam":
        return BertAdam(groups, lr=lr, eps=eps)
    return torch.optim.AdamW(groups, lr=lr, eps=eps)


def add_training_args(p, lr):
    """The training flags both fine-tuning references take (GluonNLP's names and defaults;
    `lr` is the task's default learning rate)."""
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--epsilon", type=float, default=1e-6)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--optimizer", choices=["bertadam", "adamw"], default="bertadam")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
