"""Batches: a DataLoader over in-memory tensors, one index per batch, augmented per batch, seeded.

    >>> import numpy as np
    >>> x, y = np.zeros((10, 1, 4, 4), np.float32), np.arange(10) % 2
    >>> batches = loader(x, y, batch=4, seed=0, epoch=0, shuffle=True)
    >>> [len(yb) for xb, yb in batches]
    [4, 4, 2]

The dataset is indexed by a whole batch (a tensor of indices), so a step costs one gather, not
a collate of B samples. The order comes from a DistributedSampler (seeded by seed and epoch; one
replica outside torchrun), so a resumed run sees the same batches as an uninterrupted one, and under
torchrun every rank sees its own disjoint share. Augmentation draws from a generator seeded by
(seed, epoch, batch): the same on every run, with any number of workers.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, DataLoader, DistributedSampler


class Batches(Dataset):
    """dataset[(batch number, index tensor)] -> (x, y) of that batch."""

    def __init__(self, x, y, augment="none", seed=0, epoch=0):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        self.augment, self.seed, self.epoch = augment, seed, epoch

    def __len__(self):
        return len(self.y)

    def __getitem__(self, key):
        number, idx = key
        xb, yb = self.x[idx], self.y[idx]
        if self.augment != "none":
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, number)) & 0x7FFF_FFFF_FFFF)
            xb = augment(xb, self.augment, g)
        return xb, yb


class Numbered:
    """Batches of a sampler's indices, numbered (a batch sampler that tells the dataset which batch)."""

    def __init__(self, sampler, batch):
        self.sampler, self.batch = sampler, batch

    def __iter__(self):
        idx = torch.as_tensor(list(self.sampler), dtype=torch.long)
        for number, i in enumerate(range(0, len(idx), self.batch)):
            yield number, idx[i:i + self.batch]

    def __len__(self):
        return (len(self.sampler) + self.batch - 1) // self.batch


def augment(xb, how, g):
    """Random horizontal flips and/or random crops (zero padding of an eighth of the side), per sample."""
    if "flip" in how:
        flip = torch.rand(len(xb), generator=g) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
    if "crop" in how:
        n, c, h, w = xb.shape
        ph, pw = max(1, h // 8), max(1, w // 8)
        padded = torch.nn.functional.pad(xb, (pw, pw, ph, ph))
        dy = torch.randint(0, 2 * ph + 1, (n,), generator=g).tolist()
        dx = torch.randint(0, 2 * pw + 1, (n,), generator=g).tolist()
        xb = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    return xb


def sampler(n, seed, epoch, shuffle, rank=0, world=1):
    s = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed,
                           drop_last=world > 1)  # under torchrun: disjoint shares (the remainder is left out)
    s.set_epoch(epoch)
    return s


def loader(x, y, batch, seed, epoch, shuffle, augment="none", rank=0, world=1, workers=0, pin=False, indices=None):
    """A DataLoader of (x, y) batches; `indices` (a list) receives the order this rank sees."""
    s = sampler(len(y), seed, epoch, shuffle, rank, world) if shuffle else _Shard(len(y), rank, world)
    if indices is not None:
        indices.extend(s)
    ds = Batches(x, y, augment if shuffle else "none", seed, epoch)
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)  # the workers' seeds; never the global RNG
    return DataLoader(ds, batch_size=None, sampler=Numbered(s, batch), num_workers=workers, pin_memory=pin,
                      generator=g)


class _Shard:
    """Validation: rank r takes every world-th sample from r, in order (no padding, no duplicates)."""

    def __init__(self, n, rank, world):
        self.idx = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.idx)

    def __len__(self):
        return len(self.idx)
