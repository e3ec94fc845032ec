"""The one place that knows a Pilah model's parts: backbone, head, the frozen/trainable boundary, the ONNX head."""

import numpy as np

from conftest import SAMPLE
from pilah.config import ModelConfig
from pilah.images import load_rgb
from pilah.modeling.anatomy import backbone_of, boundary_parts, head_of, split_at_boundary
from pilah.modeling.xception import build_model


def test_cache_files_are_shared_across_trained_depths():
    full = build_model(ModelConfig(weights="none"), 12, 96)
    seed = boundary_parts(full, -20)  # the seed's last 20 layers read two tensors
    deeper = boundary_parts(full, -26)  # all of block 12 trains: it reads one of those two
    assert len(seed) == 2 and len(deeper) == 1 and set(deeper) < set(seed)
    assert all(shape == (6, 6, 728) for shape in seed.values())


def test_split_at_boundary_matches_the_full_model():
    full = build_model(ModelConfig(weights="none"), 12, 96)
    trunk, trainable = split_at_boundary(full, -20)
    images = np.stack([load_rgb(p, 96) for p in sorted(SAMPLE.glob("*/*.jpg"))[:4]]).astype("float32")
    features = trunk.predict_on_batch(images)  # the trunk scales pixels with the model's own layer
    assert np.allclose(trainable.predict_on_batch(features), full.predict_on_batch(images), atol=1e-5)
    trainable_names = {w.path for w in trainable.trainable_weights}
    assert len(trainable.trainable_weights) == len(full.trainable_weights)
    assert trainable_names == {w.path for w in full.trainable_weights}


def test_backbone_and_head():
    full = build_model(ModelConfig(weights="none"), 12, 96)
    assert backbone_of(full).name == "xception"
    assert [layer.name for layer in head_of(full)] == [
        "avg_pool", "head_dense_1", "head_bn_1", "head_dropout_1", "head_dense_2", "head_bn_2", "head_dropout_2",
        "predictions",
    ]  # fmt: skip
