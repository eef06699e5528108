"""The README's target table is the one the zoo matrix's last run renders; the zoo test data is what it says."""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import zoo_table  # noqa: E402

RESULTS = REPO / "docs" / "zoo_matrix.json"
ZOO = REPO / "tests" / "fixtures" / "zoo_tf2"


def test_the_readme_table_is_rendered_from_the_last_matrix_run():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    expected = zoo_table.render_table(json.loads(RESULTS.read_text(encoding="utf-8")))
    assert zoo_table.current_table(readme) == expected, "README is stale: run scripts/zoo_matrix.py --table-only"


def test_every_zoo_config_has_a_row_and_every_row_a_config():
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    names = {p.stem for p in ZOO.glob("*.config")}
    assert len(names) >= 40
    assert set(results["configs"]) <= names
    for name, entry in results["configs"].items():
        assert "cells" in entry or "error" in entry, name


def test_a_refused_or_failed_cell_carries_its_reason():
    results = {"configs": {"ssd_x": {"measured_size": [256, 256], "published_size": [640, 640], "cells": {
        "saved_model": {"verdict": "verified"},
        "tflite": {"verdict": "refused", "reason": "tflite cannot take X"},
        "onnx": {"verdict": "failed", "reason": "onnx disagrees"},
        "openvino": {"verdict": "refused", "reason": "tflite cannot take X"}}}}}
    table = zoo_table.render_table(results)
    row = next(line for line in table.splitlines() if "ssd_x" in line)
    assert "256×256 (published 640×640)" in row
    assert "✗ (1)" in row and row.count("*refused* (2)") == 2 and "not run" in row
    assert "1. onnx disagrees" in table and "2. tflite cannot take X" in table


def test_a_config_measured_as_its_twin_says_so():
    cells = {"saved_model": {"verdict": "verified"}}
    results = {"configs": {
        "ssd_a_640": {"measured_size": [256, 256], "published_size": [640, 640], "cells": cells},
        "ssd_a_1024": {"measured_size": [256, 256], "published_size": [1024, 1024], "cells": cells,
                       "same_as": "ssd_a_640"}}}
    row = next(line for line in zoo_table.render_table(results).splitlines() if "ssd_a_1024" in line)
    assert "256×256 (published 1024×1024), as `ssd_a_640`" in row


def test_the_table_is_replaced_between_its_markers_only():
    readme = f"before\n{zoo_table.START}\nold\n{zoo_table.END}\nafter\n"
    assert zoo_table.replace_table(readme, "new") == f"before\n{zoo_table.START}\nnew\n{zoo_table.END}\nafter\n"
    assert zoo_table.replace_table("no markers", "new") == "no markers"


def test_every_zoo_model_block_parses_with_the_od_api_proto_and_names_its_source():
    from google.protobuf import text_format

    from od_export import compat

    for path in sorted(ZOO.glob("*.config")):
        text = path.read_text(encoding="utf-8")
        assert text.startswith(f"# The model block of {path.name} from tensorflow/models"), path.name
        config = compat.import_pipeline_proto().TrainEvalPipelineConfig()
        text_format.Merge(text, config)
        assert config.model.WhichOneof("model") in {"ssd", "faster_rcnn", "center_net"}, path.name
        assert not config.HasField("train_config") and not config.eval_input_reader, path.name
