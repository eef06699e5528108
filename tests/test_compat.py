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
