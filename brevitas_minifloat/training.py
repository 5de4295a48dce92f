"""Minimal classifier training and evaluation loops shared by the demo, tests and experiments."""

from __future__ import annotations

import torch


def train_classifier(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 3, lr: float = 3e-3, batch_size: int = 100
) -> torch.nn.Module:
    """Adam + cross-entropy over shuffled mini-batches; leaves the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = sum((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item() for i in range(0, len(x), batch_size))
    return correct / len(x)
