"""What the PyTorch references of BENCHMARKS.md share with `bert-train`'s fine-tuning: BERTAdam
(GluonNLP's, written out), the parameter groups (weight decay on everything but LayerNorm and
biases) and the linear warmup/decay schedule (GluonNLP's, 1-based steps).

Used by finetune_reference.py (GLUE) and finetune_squad_reference.py (SQuAD).
"""


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


def _make_bertadam():
    import torch

    class BertAdamImpl(torch.optim.Optimizer):
        """GluonNLP's BERTAdam: w -= lr * (m / (sqrt(v) + eps) + wd * w), no bias correction."""

        def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
            super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                b1, b2 = group["betas"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["m"] = torch.zeros_like(p)
                        state["v"] = torch.zeros_like(p)
                    m, v = state["m"], state["v"]
                    m.mul_(b1).add_(p.grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    update = m / (v.sqrt() + group["eps"])
                    if group["weight_decay"]:
                        update = update + group["weight_decay"] * p
                    p.add_(update, alpha=-group["lr"])

    return BertAdamImpl


def BertAdam(*args, **kwargs):
    return _make_bertadam()(*args, **kwargs)


def make_optimizer(kind, groups, lr, eps):
    """`bertadam` (ours) or torch's `adamw`."""
    import torch

    if kind == "bertadam":
        return BertAdam(groups, lr=lr, eps=eps)
    return torch.optim.AdamW(groups, lr=lr, eps=eps)
