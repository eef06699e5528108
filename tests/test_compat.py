"""The compatibility layer, each fix checked in a fresh interpreter where it matters."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from od_export.compat import legacy_serialized_descriptor

QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def run_python(code: str, env: dict | None = None, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(env or QUIET_ENV)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300)


def odapi_protos_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("object_detection")
    return Path(spec.submodule_search_locations[0]) / "protos"


def test_reads_descriptor_from_old_protoc_module():
    from google.protobuf import descriptor_pb2

    serialized = legacy_serialized_descriptor((odapi_protos_dir() / "ssd_pb2.py").read_text())
    proto = descriptor_pb2.FileDescriptorProto.FromString(serialized)
    assert proto.name == "object_detection/protos/ssd.proto"
    assert "object_detection/protos/anchor_generator.proto" in proto.dependency


def test_python2_style_and_modern_modules():
    old = "DESCRIPTOR = _descriptor.FileDescriptor(name='x.proto', serialized_pb=_b('\\n\\x07x.proto'))"
    assert legacy_serialized_descriptor(old) == b"\n\x07x.proto"
    modern = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(b'\\n\\x07x.proto')"
    assert legacy_serialized_descriptor(modern) is None


@pytest.mark.integration
def test_odapi_imports_with_fast_protobuf_backend_and_writes_nothing():
    protos = odapi_protos_dir()
    before = sorted(p.name for p in protos.rglob("*"))
    result = run_python(
        """
        import os
        os.environ.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
        from od_export import compat
        compat.import_object_detection()
        from google.protobuf.internal import api_implementation
        from object_detection.protos import pipeline_pb2, image_resizer_pb2
        from google.protobuf import text_format
        config = text_format.Parse('model { ssd { num_classes: 7 } }', pipeline_pb2.TrainEvalPipelineConfig())
        print(api_implementation.Type(), os.environ["TF_USE_LEGACY_KERAS"], config.model.ssd.num_classes,
              image_resizer_pb2.ResizeType.Name(image_resizer_pb2.BILINEAR))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["upb", "1", "7", "BILINEAR"]
    assert sorted(p.name for p in protos.rglob("*")) == before


@pytest.mark.integration
def test_user_choice_of_legacy_keras_is_kept():
    result = run_python(
        "from od_export import compat; compat.prepare_environment(); import os; print(os.environ['TF_USE_LEGACY_KERAS'])",
        env={**QUIET_ENV, "TF_USE_LEGACY_KERAS": "true"},
    )
    assert result.stdout.strip() == "true"


@pytest.mark.integration
def test_broken_tensorflow_io_does_not_stop_other_architectures(tmp_path):
    broken = tmp_path / "tensorflow_io"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise OSError('libtensorflow_io.so: undefined symbol: _ZN10tensorflow')\n")
    result = run_python(
        f"""
        from od_export import compat
        from od_export.source import pipeline_config
        from od_export.source import model
        from od_export.errors import EnvironmentProblem
        compat.import_object_detection()
        from object_detection.meta_architectures import deepmac_meta_arch  # imports tensorflow_io
        config = pipeline_config.load_pipeline_config({str(Path(__file__).parent.parent / 'pipeline_samples' / 'ssd_mobilenet_v2.config')!r})
        model.build_model(config)
        print("built")
        try:
            deepmac_meta_arch.tfio.experimental
        except EnvironmentProblem as exc:
            print("needs:", exc.message.split(" (")[0])
        """,
        extra_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["built", "needs: this model needs tensorflow_io, which failed to import"]


@pytest.mark.integration
def test_tf_slim_patch_is_narrow():
    result = run_python(
        """
        from od_export import compat
        compat.import_object_detection()
        from tf_slim.data import tfexample_decoder
        from tensorflow.python.ops import control_flow_ops
        print(callable(tfexample_decoder.control_flow_ops.case), callable(tfexample_decoder.control_flow_ops.cond),
              hasattr(control_flow_ops, "case"), tfexample_decoder.control_flow_ops.group is control_flow_ops.group)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False", "True"]


@pytest.mark.parametrize(
    "hidden, call, expected, hint",
    [
        ("tf_keras", "prepare_environment", "2 tf_keras is not installed", "pip install tf-keras"),
        pytest.param(
            "object_detection", "import_object_detection", "2 the `object_detection` package is not importable",
            "tf-models-research-object-detection==2.8.0.post1", marks=pytest.mark.integration,
        ),
    ],
)
def test_missing_package_is_one_clear_error(hidden, call, expected, hint):
    result = run_python(
        f"""
        import importlib.util
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda name, *a: None if name == {hidden!r} else real(name, *a)
        from od_export import compat
        from od_export.errors import EnvironmentProblem
        try:
            compat.{call}()
        except EnvironmentProblem as exc:
            print(exc.exit_code, exc.message)
        """
    )
    assert result.stdout.startswith(expected), result.stderr
    assert hint in result.stdout


def test_kernel_choice_is_left_to_the_user():
    """Artifacts are verified with the kernels users get: od-export does not turn oneDNN off."""
    code = ("from od_export import compat; compat.prepare_environment(); import os; "
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset'))")
    env = {k: v for k, v in QUIET_ENV.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    assert run_python(code, env=env).stdout.strip() == "unset"
    assert run_python(code, env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"}).stdout.strip() == "0"


@pytest.mark.integration
def test_portable_crop_and_resize_converts_to_onnx_exactly():
    """Faster R-CNN's crop, border rows included, is the same in TensorFlow, tf2onnx and onnxruntime."""
    import numpy as np

    from od_export import compat
    from od_export.targets.onnx import OnnxRunner, convert_function

    tf = compat.import_tensorflow()
    rng = np.random.default_rng(0)
    pairs = np.sort(rng.uniform(0, 1, size=(1, 60, 2, 2)), axis=3)  # (y1 < y2), (x1 < x2)
    boxes = pairs.transpose(0, 1, 3, 2).reshape(1, 60, 4).astype(np.float32)  # y1, x1, y2, x2
    boxes[0, :20, 2] = 1.0  # boxes ending at the image border: where TensorFlow's kernel yields a row of zeros
    boxes[0, 20:30, 0] = 0.0
    features = rng.normal(size=(1, 8, 8, 6)).astype(np.float32)

    def crops(images, proposals):
        native = tf.image.crop_and_resize(images, proposals[0], tf.zeros([60], tf.int32), [14, 14])
        return {"native": native, "portable": compat._portable_crop_and_resize([images], proposals, None, [14, 14])[0]}

    function = tf.function(crops, autograph=False, input_signature=[
        tf.TensorSpec([1, 8, 8, 6], tf.float32, name="images"), tf.TensorSpec([1, 60, 4], tf.float32, name="proposals")])
    reference = {k: v.numpy() for k, v in function(tf.constant(features), tf.constant(boxes)).items()}
    assert (reference["native"][:20, -1] == 0).all(axis=(1, 2)).any()  # the quirk is really exercised
    assert np.abs(reference["portable"] - reference["native"]).max() < 1e-5
    converted = OnnxRunner(convert_function(function.get_concrete_function(), 17).SerializeToString())
    outputs = converted.run({"images": features, "proposals": boxes})
    assert np.abs(outputs["portable"] - reference["native"]).max() < 1e-5
    assert np.abs(outputs["native"] - reference["native"]).max() > 0.1  # tf2onnx's own CropAndResize is not
