"""Training: a spec trained on data, fine-tuned, evaluated; one process, one GPU, or many under torchrun.

    import cnndsl
    from cnndsl.train import train, evaluate
    net = cnndsl.load("nets/lenet5.net")
    result = train(net, "digits", epochs=10, seed=0, out="runs/lenet5")
    result["history"][-1]["val_acc"]            # 0.98...
    evaluate(net, "runs/lenet5/weights.safetensors", "digits")["accuracy"]

The stages, a file each: `data` (datasets as arrays, fitted to the net's input: torch-free),
`freeze` (which layers a --freeze names: torch-free, so `cnndsl report --freeze` stays light),
`options` (the options and their defaults), `optim` (torch.optim and lr_scheduler by name),
`loaders` (DataLoader, augmentation), `checkpoint` (atomic, resumable training state),
`distributed` (torchrun), `loop` (train), `evaluation` (evaluate), `plots` (matplotlib, Agg).
Nothing here prints: progress is reported through a callback (`loop.train`).
"""


def train(net, data, **options):
    """See cnndsl.train.loop.train."""
    from .loop import train as _train
    return _train(net, data, **options)


def evaluate(net, weights, data, **options):
    """See cnndsl.train.evaluation.evaluate."""
    from .evaluation import evaluate as _evaluate
    return _evaluate(net, weights, data, **options)
