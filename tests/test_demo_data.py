"""The synthetic demo data set: seeded, and read back by the OD API's own decoder as written."""
from __future__ import annotations

import numpy as np
import pytest

from od_export.source.demo_data import CLASSES, label_map_text, synthetic_image, write_demo_dataset


def test_images_are_seeded_and_boxes_fit_their_shapes():
    first, again = synthetic_image(np.random.default_rng(3)), synthetic_image(np.random.default_rng(3))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    for seed in range(20):
        image, boxes, labels = synthetic_image(np.random.default_rng(seed))
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert 1 <= len(boxes) <= 4 and len(boxes) == len(labels) and set(labels) <= {1, 2, 3}
        assert np.all((boxes >= 0) & (boxes <= 1)) and np.all(boxes[:, 2:] > boxes[:, :2])
    assert label_map_text().count("item {") == len(CLASSES)


@pytest.mark.integration
def test_records_decode_with_the_od_api_decoder(tmp_path):
    from od_export import compat

    tf = compat.import_object_detection().tf
    from object_detection.core import standard_fields as fields
    from object_detection.data_decoders import tf_example_decoder

    dataset = write_demo_dataset(tmp_path, seed=7, train_images=3, eval_images=2)
    decoder = tf_example_decoder.TfExampleDecoder()
    rng = np.random.default_rng([7, 1])  # the eval record's seed stream
    for serialized in tf.data.TFRecordDataset(str(dataset.eval_record)):
        decoded = decoder.decode(serialized)
        image, boxes, labels = synthetic_image(rng)
        assert decoded[fields.InputDataFields.image].shape == (128, 128, 3)
        np.testing.assert_allclose(decoded[fields.InputDataFields.groundtruth_boxes].numpy(), boxes, atol=1e-6)
        assert list(decoded[fields.InputDataFields.groundtruth_classes].numpy()) == list(labels)
        # JPEG at quality 90 smooths the background noise (std 18) but keeps the picture: compare 8x8 block means
        blocks = [a.astype(float).reshape(16, 8, 16, 8, 3).mean(axis=(1, 3))
                  for a in (decoded[fields.InputDataFields.image].numpy(), image)]
        assert np.abs(blocks[0] - blocks[1]).mean() < 3
    assert sum(1 for _ in tf.data.TFRecordDataset(str(dataset.train_record))) == 3
