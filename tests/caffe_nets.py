"""The lecture's nets as Caffe prototxts (protobuf text), written for tests/test_import.py from the papers and
Caffe's documented format (caffe.proto: LayerParameter, ConvolutionParameter, PoolingParameter, ...).

LeNet is Caffe's examples/mnist/lenet_train_test.prototxt layout (Data layers per phase, loss and
accuracy heads); AlexNet is models/bvlc_alexnet/deploy.prototxt's layout (an Input layer, conv2, conv4 and
conv5 in two groups); the others are generated layer by layer in the same format, with the names the
BVLC model zoo uses (`conv1/7x7_s2`, `inception_3a/1x1`, `fire2/squeeze1x1`)."""


def layer(name, type_, bottoms, top, param=""):
    bottom = "".join(f' bottom: "{b}"' for b in ([bottoms] if isinstance(bottoms, str) else bottoms))
    return f'layer {{\n  name: "{name}"\n  type: "{type_}"\n {bottom}\n  top: "{top}"\n{param}}}\n'


def conv(name, bottom, c, k, s=1, p=0, group=1, top=None):
    extra = (f" stride: {s}" if s != 1 else "") + (f" pad: {p}" if p else "") + (f" group: {group}" if group > 1 else "")
    body = (f"  param {{ lr_mult: 1 decay_mult: 1 }}\n  param {{ lr_mult: 2 decay_mult: 0 }}\n"
            f"  convolution_param {{\n    num_output: {c}\n    kernel_size: {k}{extra}\n"
            f"    weight_filler {{ type: \"xavier\" }}\n    bias_filler {{ type: \"constant\" value: 0.2 }}\n  }}\n")
    return layer(name, "Convolution", bottom, top or name, body)


def relu(name, blob):
    return layer(name, "ReLU", blob, blob)  # in place, as Caffe writes it


def pool(name, bottom, kind, k, s, p=0):
    pad = f" pad: {p}" if p else ""
    return layer(name, "Pooling", bottom, name, f"  pooling_param {{\n    pool: {kind}\n    kernel_size: {k}\n"
                                                f"    stride: {s}{pad}\n  }}\n")


def lrn(name, bottom):
    return layer(name, "LRN", bottom, name, "  lrn_param {\n    local_size: 5\n    alpha: 0.0001\n    beta: 0.75\n  }\n")


def fc(name, bottom, n):
    return layer(name, "InnerProduct", bottom, name, f"  inner_product_param {{\n    num_output: {n}\n  }}\n")


def dropout(name, blob, p):
    return layer(name, "Dropout", blob, blob, f"  dropout_param {{\n    dropout_ratio: {p}\n  }}\n")


def deploy_input(c, h, w):
    return f'name: "net"\nlayer {{\n  name: "data"\n  type: "Input"\n  top: "data"\n' \
           f'  input_param {{ shape: {{ dim: 10 dim: {c} dim: {h} dim: {w} }} }}\n}}\n'


LENET = """name: "LeNet"
layer {
  name: "mnist"
  type: "Data"
  top: "data"
  top: "label"
  include {
    phase: TRAIN
  }
  transform_param {
    scale: 0.00390625
  }
  data_param {
    source: "examples/mnist/mnist_train_lmdb"
    batch_size: 64
    backend: LMDB
  }
}
layer {
  name: "mnist"
  type: "Data"
  top: "data"
  top: "label"
  include {
    phase: TEST
  }
  transform_param {
    scale: 0.00390625
  }
  data_param {
    source: "examples/mnist/mnist_test_lmdb"
    batch_size: 100
    backend: LMDB
  }
}
""" + "".join([
    conv("conv1", "data", 20, 5), pool("pool1", "conv1", "MAX", 2, 2),
    conv("conv2", "pool1", 50, 5), pool("pool2", "conv2", "MAX", 2, 2),
    fc("ip1", "pool2", 500), relu("relu1", "ip1"), fc("ip2", "ip1", 10),
    layer("accuracy", "Accuracy", ["ip2", "label"], "accuracy", "  include {\n    phase: TEST\n  }\n"),
    layer("loss", "SoftmaxWithLoss", ["ip2", "label"], "loss"),
])


def alexnet(groups=True):
    """bvlc_alexnet (groups: conv2, conv4, conv5 in two towers) or, without, CaffeNet's one tower in
    AlexNet's order (norm before pool)."""
    g = 2 if groups else 1
    return deploy_input(3, 227, 227) + "".join([
        conv("conv1", "data", 96, 11, s=4), relu("relu1", "conv1"), lrn("norm1", "conv1"),
        pool("pool1", "norm1", "MAX", 3, 2),
        conv("conv2", "pool1", 256, 5, p=2, group=g), relu("relu2", "conv2"), lrn("norm2", "conv2"),
        pool("pool2", "norm2", "MAX", 3, 2),
        conv("conv3", "pool2", 384, 3, p=1), relu("relu3", "conv3"),
        conv("conv4", "conv3", 384, 3, p=1, group=g), relu("relu4", "conv4"),
        conv("conv5", "conv4", 256, 3, p=1, group=g), relu("relu5", "conv5"),
        pool("pool5", "conv5", "MAX", 3, 2),
        fc("fc6", "pool5", 4096), relu("relu6", "fc6"), dropout("drop6", "fc6", 0.5),
        fc("fc7", "fc6", 4096), relu("relu7", "fc7"), dropout("drop7", "fc7", 0.5),
        fc("fc8", "fc7", 1000), layer("prob", "Softmax", "fc8", "prob"),
    ])


# GoogLeNet's Inception modules (Szegedy et al. 2014, table 1): #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTIONS = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
              "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
              "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
              "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128)}


def inception(name, bottom, c1, c3r, c3, c5r, c5, pp):
    n = f"inception_{name}"
    parts = [conv(f"{n}/1x1", bottom, c1, 1), relu(f"{n}/relu_1x1", f"{n}/1x1"),
             conv(f"{n}/3x3_reduce", bottom, c3r, 1), relu(f"{n}/relu_3x3_reduce", f"{n}/3x3_reduce"),
             conv(f"{n}/3x3", f"{n}/3x3_reduce", c3, 3, p=1), relu(f"{n}/relu_3x3", f"{n}/3x3"),
             conv(f"{n}/5x5_reduce", bottom, c5r, 1), relu(f"{n}/relu_5x5_reduce", f"{n}/5x5_reduce"),
             conv(f"{n}/5x5", f"{n}/5x5_reduce", c5, 5, p=2), relu(f"{n}/relu_5x5", f"{n}/5x5"),
             pool(f"{n}/pool", bottom, "MAX", 3, 1, p=1),
             conv(f"{n}/pool_proj", f"{n}/pool", pp, 1), relu(f"{n}/relu_pool_proj", f"{n}/pool_proj"),
             layer(f"{n}/output", "Concat", [f"{n}/1x1", f"{n}/3x3", f"{n}/5x5", f"{n}/pool_proj"], f"{n}/output")]
    return "".join(parts), f"{n}/output"


def googlenet():
    """bvlc_googlenet's deploy net: Caffe's pooling rounds up (112 -> 56 with a 3x3/2 window)."""
    out = [deploy_input(3, 224, 224), conv("conv1/7x7_s2", "data", 64, 7, s=2, p=3), relu("conv1/relu_7x7", "conv1/7x7_s2"),
           pool("pool1/3x3_s2", "conv1/7x7_s2", "MAX", 3, 2), lrn("pool1/norm1", "pool1/3x3_s2"),
           conv("conv2/3x3_reduce", "pool1/norm1", 64, 1), relu("conv2/relu_3x3_reduce", "conv2/3x3_reduce"),
           conv("conv2/3x3", "conv2/3x3_reduce", 192, 3, p=1), relu("conv2/relu_3x3", "conv2/3x3"),
           lrn("conv2/norm2", "conv2/3x3"), pool("pool2/3x3_s2", "conv2/norm2", "MAX", 3, 2)]
    x = "pool2/3x3_s2"
    for name, widths in INCEPTIONS.items():
        text, x = inception(name, x, *widths)
        out.append(text)
        if name in ("3b", "4e"):
            p = "pool3/3x3_s2" if name == "3b" else "pool4/3x3_s2"
            out.append(pool(p, x, "MAX", 3, 2))
            x = p
    out += [pool("pool5/7x7_s1", x, "AVE", 7, 1), dropout("pool5/drop_7x7_s1", "pool5/7x7_s1", 0.4),
            fc("loss3/classifier", "pool5/7x7_s1", 1000), layer("prob", "Softmax", "loss3/classifier", "prob")]
    return "".join(out)


def vgg16():
    """VGG_ILSVRC_16_layers' deploy net (configuration D)."""
    out, x = [deploy_input(3, 224, 224)], "data"
    for stage, (c, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), 1):
        for i in range(1, n + 1):
            name = f"conv{stage}_{i}"
            out += [conv(name, x, c, 3, p=1), relu(f"relu{stage}_{i}", name)]
            x = name
        out.append(pool(f"pool{stage}", x, "MAX", 2, 2))
        x = f"pool{stage}"
    out += [fc("fc6", x, 4096), relu("relu6", "fc6"), dropout("drop6", "fc6", 0.5),
            fc("fc7", "fc6", 4096), relu("relu7", "fc7"), dropout("drop7", "fc7", 0.5),
            fc("fc8", "fc7", 1000), layer("prob", "Softmax", "fc8", "prob")]
    return "".join(out)


def squeezenet():
    """SqueezeNet v1.0's deploy net (Iandola et al. 2016): fire modules, conv10, a global average pool."""
    out = [deploy_input(3, 224, 224), conv("conv1", "data", 96, 7, s=2), relu("relu_conv1", "conv1"),
           pool("pool1", "conv1", "MAX", 3, 2)]
    x = "pool1"
    fires = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192), 8: (64, 256), 9: (64, 256)}
    for k, (s, e) in fires.items():
        f = f"fire{k}"
        out += [conv(f"{f}/squeeze1x1", x, s, 1), relu(f"{f}/relu_squeeze1x1", f"{f}/squeeze1x1"),
                conv(f"{f}/expand1x1", f"{f}/squeeze1x1", e, 1), relu(f"{f}/relu_expand1x1", f"{f}/expand1x1"),
                conv(f"{f}/expand3x3", f"{f}/squeeze1x1", e, 3, p=1), relu(f"{f}/relu_expand3x3", f"{f}/expand3x3"),
                layer(f"{f}/concat", "Concat", [f"{f}/expand1x1", f"{f}/expand3x3"], f"{f}/concat")]
        x = f"{f}/concat"
        if k in (4, 8):
            out.append(pool(f"pool{k}", x, "MAX", 3, 2))
            x = f"pool{k}"
    out += [dropout("drop9", x, 0.5), conv("conv10", x, 1000, 1), relu("relu_conv10", "conv10"),
            layer("pool10", "Pooling", "conv10", "pool10", "  pooling_param {\n    pool: AVE\n    global_pooling: true\n  }\n"),
            layer("prob", "Softmax", "pool10", "prob")]
    return "".join(out)
