import pytest

from od_export.errors import ConfigError
from od_export.source.pipeline_config import load_pipeline_config, meta_architecture, num_classes
from od_export.source.proto_text import describe_parse_error
from tests.conftest import sample_config


def test_describe_parse_error_names_the_line():
    text = describe_parse_error("p.config", Exception('12:5 : Message type "Ssd" has no field named "x".'))
    assert text == 'p.config line 12 column 5: Message type "Ssd" has no field named "x"'


@pytest.mark.integration
def test_loads_sample_and_applies_overrides_in_order():
    config = load_pipeline_config(
        sample_config("ssd_mobilenet_v2"),
        ("model { ssd { num_classes: 5 } }", "model { ssd { num_classes: 7 } }"),
    )
    assert meta_architecture(config) == "ssd"
    assert num_classes(config) == 7


@pytest.mark.integration
@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model {\n  ssd {\n    num_clases: 3\n  }\n}\n", "line 3 column 5"),
        ("model { ssd { num_classes: 3 }\n", "Expected \"}\""),
        ("train_config { batch_size: 1 }\n", "has no `model"),
    ],
)
def test_malformed_configs(tmp_path, text, fragment):
    path = tmp_path / "pipeline.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_pipeline_config(path)
    assert "\n" not in info.value.message


def test_missing_and_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_pipeline_config(tmp_path / "nope.config")
    (tmp_path / "pipeline.config").write_text("")
    with pytest.raises(ConfigError, match="did you mean"):
        load_pipeline_config(tmp_path)
