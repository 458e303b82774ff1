"""Looking inside a trained net, by the spec's layer names: the lecture's "understanding and visualizing
CNNs" deck, one call per question, each returning arrays and drawing them.

    import cnndsl
    from cnndsl.inspection import inspect
    net = cnndsl.load("nets/lenet5.net")
    r = inspect(net, "saliency", weights="runs/lenet5/weights.safetensors", image="digit.png", method="gradcam")
    r["map"]                 # the heat map over the input (numpy)
    r["class_name"], r["probability"]
    r.save("saliency.png")   # the picture (or .pdf, .svg; .npz: the arrays), written atomically
    r.json()                 # what `cnndsl inspect ... --format json` prints

The files, a job each:
    subject.py      the net's module with the checkpoint's weights, layers by name (model.get_submodule),
                    images and data prepared as training prepared them (the checkpoint's normalisation)
    commands.py     `inspect(net, what, ...)`: options -> the command's function (what the CLI calls)
    layers.py       filters, activations
    stats.py        activation statistics, re-initialisation (the batch-norm lecture's experiment)
    receptive.py    receptive fields from the analyzer's report; crops at them
    patches.py      the input patches that excite a channel most
    features.py     nearest neighbours in feature and pixel space; t-SNE (scikit-learn)
    attribution.py  saliency (gradient, guided backpropagation, Grad-CAM, integrated gradients) and occlusion:
                    captum's, never re-implemented
    synthesis.py    activation maximisation, feature inversion
    fool.py         fooling images (captum.robust.FGSM, iterated)
    result.py, figures.py   what a command returns; matplotlib pictures (Agg, object API)
torch, captum, scikit-learn and matplotlib are imported by the commands that need them, never by
`cnndsl report`.
"""


def inspect(net, what, weights=None, **options):
    """See cnndsl.inspection.commands.inspect."""
    from .commands import inspect as _inspect
    return _inspect(net, what, weights=weights, **options)
