"""torchrun: one process per device, DistributedDataParallel, rank 0 alone writes.

    >>> ctx = context("cpu")        # outside torchrun: one process
    >>> ctx.world, ctx.rank, ctx.device.type
    (1, 0, 'cpu')

Under `torchrun --nproc_per_node=N` (which sets RANK, LOCAL_RANK, WORLD_SIZE and the master
address), the process group is initialised from the environment with NCCL on GPUs and
gloo on CPUs; each process takes cuda:LOCAL_RANK. No process is started here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import CnnError


@dataclass
class Context:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list) -> list:
        """Element-wise sums over the ranks (the values themselves outside torchrun)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t.tolist()

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()

    def close(self):
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def env_rank() -> int:
    """This process's rank as torchrun sets it (0 outside torchrun): known before the process group."""
    return int(os.environ.get("RANK", "0"))


def context(device="auto") -> Context:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise CnnError("--device cuda: no CUDA device is available here", usage=True,
                       hint="use --device cpu (or auto), or a CUDA build of torch on a machine with a GPU")
    use_cuda = device == "cuda" or (device == "auto" and cuda)
    dev = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    backend = None
    if world > 1:
        backend = "nccl" if use_cuda else "gloo"
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend)
    return Context(rank, world, local, dev, backend)


def wrap(model, ctx: Context):
    """The model as DistributedDataParallel under torchrun, as it is otherwise."""
    if ctx.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
