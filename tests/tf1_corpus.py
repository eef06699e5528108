"""Real TF1 checkpoints from public repositories, and what a person reading each graph says it computes.

The files are not committed: none of these repositories states a license that allows
redistribution.  Each entry names its repository, commit and files, so the corpus can
be rebuilt by copying those files to ``<corpus>/<owner>+<repo>/<path>``; the tests
look for it in ``$OD_EXPORT_TF1_CORPUS``, else ``../shared/tf1_corpus`` beside the
checkout, and skip when it is absent.  The synthetic graphs of ``tests/tf1_patterns.py``
cover the same patterns and always run.

A repository that committed its variables has ``weights="checkpoint"``.  Where the
data file is 4 MiB or more it is not in the public store this corpus was drawn from,
so the entry is frozen from stand-in weights: the graph's own initialisers, saved by
the graph's own saver (so the checkpoint holds exactly the variables the real one
held).  Discovery reads only the ``.meta``, so it is judged on the real file either way.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Entry:
    repository: str
    commit: str
    meta: str
    era: str
    style: str
    #: The person's decision: the inference outputs (node names), or the ranked candidates when ambiguous.
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    #: Placeholders held for inference (name → value).
    held: tuple[tuple[str, object], ...] = ()
    ambiguous: bool = False
    weights: str = "stand-in"
    #: Whether the freeze test also writes and checks the Predict SavedModel.
    saved_model: bool = True
    #: What ``freeze`` must say instead of freezing (a checkpoint that cannot compute the outputs).
    freeze_error: str | None = None
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.repository.replace('/', '+')}/{self.meta}"

    @property
    def source(self) -> str:
        return f"https://github.com/{self.repository}/blob/{self.commit[:12]}/{self.meta}"


ENTRIES = (
    Entry("AloshkaD/traffic-signs", "2065b0a6e94843ed8011719c39bf56507296ce8a", "model.ckpt.meta",
          "TF 0.12 (V1 Variable)", "raw ops LeNet built twice in one notebook graph; dropout keep-prob placeholder; "
          "accuracy on baked test labels",
          ("Add_5", "ArgMax_4", "TopKV2"), ("Placeholder", "Placeholder_3"),
          (("Placeholder_2", 1.0), ("Placeholder_5", 1.0)), ambiguous=True,
          note="two copies of the model, each with its own variables: a person cannot tell which is meant either"),
    Entry("CR-Ko/MNIST", "1fdb4bbb88af8de90d29ea17855e18bf93490be1", "model (copy)/model.ckpt.meta", "TF 0.12.1",
          "softmax regression; softmax_cross_entropy_with_logits; hand-written accuracy", ("add",), ("Placeholder",),
          weights="checkpoint", freeze_error="holds no value for 1 variable(s) the outputs add read (Variable_1)",
          note="its saver was given the weights only, so the checkpoint has no bias: plain TensorFlow cannot "
               "compute the logits from it either"),
    Entry("CR-Ko/MNIST", "1fdb4bbb88af8de90d29ea17855e18bf93490be1", "model/model.ckpt.meta", "TF 1.1",
          "softmax regression; softmax_cross_entropy_with_logits; hand-written accuracy", ("add",), ("Placeholder",),
          weights="checkpoint"),
    Entry("Rperry2174/neural-net-digit-converter", "417f2a2975302e203b4d7a2a829f60e880dfa1c7", "model/model.ckpt.meta",
          "TF 0.12.1 (V1 Variable)", "raw ops MLP; softmax_cross_entropy_with_logits; Adam", ("add",), ("Placeholder",),
          weights="checkpoint"),
    Entry("jaehong-yoon93/tensorflow_cnn_tutorial", "5d711da6fe51baab7832a29abec584150da96195",
          "checkpoints/model.ckpt.meta", "TF 1.1", "raw ops AlexNet-like with named scopes; exponential decay; Adam",
          ("Softmax",), ("Placeholder",)),
    Entry("mrahtz/tensorflow-rl-pong", "41a8e3d76582964190bf694d920b7cc5f7e93013",
          "checkpoints/policy_network.ckpt.meta", "TF 1.1", "tf.layers policy network; tf.losses.log_loss weighted by "
          "an advantage placeholder", ("dense_2/Sigmoid",), ("Placeholder",)),
    Entry("IsaacAhouma/FontClassifier", "3c7176ccbae5af883308fd7eb9b8c811166d183d", "model.ckpt.meta", "TF 1.2",
          "raw ops CNN; dropout with a constant keep probability; two placeholders an earlier build left unused",
          ("add_3",), ("Placeholder_2",), (("dropout/keep_prob", 1.0),)),
    Entry("AKAAKAIplus/MNIST_prediction_with_tensorflow", "4e184ba04fe4d3835fba3eb1a38a8e0f503937c8",
          "model/model.ckpt.meta", "TF 1.3", "raw ops CNN; dropout keep-prob as a plain placeholder", ("fc2/add",),
          ("Placeholder",), (("Placeholder_2", 1.0),)),
    Entry("Cireou/mnist", "2bdc8d8ae4529e8930586b8a0064078d416a7d41", "model.ckpt.meta", "TF 1.4",
          "raw ops MLP; softmax then cross-entropy; Adam", ("Softmax",), ("Placeholder",)),
    Entry("hsbarker/UniqueMNISTsolutions", "52457aba73f533bfeb6d91b4d5ad0f68f539783a", "model.ckpt-1.meta", "TF 1.5",
          "Estimator model_dir (graph.pbtxt); numpy_input_fn queue; tf.losses; summaries",
          ("ArgMax", "softmax_tensor"), ("random_shuffle_queue_DequeueMany:1",), weights="checkpoint"),
    Entry("hsbarker/UniqueMNISTsolutions", "52457aba73f533bfeb6d91b4d5ad0f68f539783a", "model.ckpt-20000.meta",
          "TF 1.5", "Estimator model_dir, the run's last checkpoint", ("ArgMax", "softmax_tensor"),
          ("random_shuffle_queue_DequeueMany:1",), weights="checkpoint"),
    Entry("DeepBlurt/vae", "870867866709d7285cc9387546e45814f2360708", "model/model.ckpt.meta", "TF 1.8",
          "variational autoencoder: reconstruction loss against the input itself, KL term", ("dec_fc5/Sigmoid",),
          ("Placeholder",)),
    Entry("EliasHaaralahti/image-number-detector", "0f1a961c45212d214e2a1cfcc4e0b3f55a28eaa7", "model/model.ckpt.meta",
          "TF 1.8", "raw ops CNN; dropout keep-prob placeholder; softmax_cross_entropy_with_logits_v2", ("add_3",),
          ("Placeholder",), (("Placeholder_2", 1.0),)),
    Entry("JiliangNi/Convolutional-Neural-Network-Hand-Detection", "8bda80d349320cf12d12e7c929fe1f36f6f956d4",
          "model.ckpt.meta", "TF 1.8 (V1 while loops)", "TF1 OD API Faster R-CNN ResNet-50 inference graph, exported",
          ("all_class_predictions_with_background", "all_refined_box_encodings", "detection_boxes", "detection_classes",
           "detection_scores", "num_detections"), ("image_tensor",), saved_model=False,
          note="frozen graph checked; the SavedModel's per-proposal outputs reorder under TF2's loader with stand-in "
               "weights (near-tied proposals), which is the two-stage matching of the zoo-architecture issue"),
    Entry("MattChubb/tensorflow-houseprices", "860ba35f8ca220605aca6a259989ad2a56959862", "model.ckpt.meta",
          "TF 1.10 (V1 cond)", "raw ops regression; dropout inside tf.cond(is_training)", ("BiasAdd_4",),
          ("Placeholder_1",), (("Placeholder", False),), weights="checkpoint"),
    Entry("MattChubb/tensorflow-houseprices", "860ba35f8ca220605aca6a259989ad2a56959862", "model_longtrain.ckpt.meta",
          "TF 1.10", "raw ops regression; training targets baked into the graph as a constant", ("mul",),
          ("Placeholder",), weights="checkpoint"),
    Entry("Chris-Slattery/Multilayer-Neural-Network", "c0e30e715f64f717f2b44fe4726758ca001797da", "model.ckpt.meta",
          "TF 1.13", "named placeholders; tf.losses.mean_squared_error", ("Sigmoid_1",), ("inputs",),
          weights="checkpoint"),
)


def corpus_root() -> Path:
    return Path(os.environ.get("OD_EXPORT_TF1_CORPUS", ROOT.parent / "shared" / "tf1_corpus"))


def present(entry: Entry) -> bool:
    return (corpus_root() / entry.key).is_file()


def standin_checkpoint(meta: Path, directory: Path) -> Path:
    """Stand-in weights: each variable's own initialiser (small random values where it has none), saved by
    the graph's own saver (one over every variable where the graph has none); returns the prefix."""
    import numpy as np

    from od_export import compat

    tf = compat.import_tensorflow()
    v1 = tf.compat.v1
    graph = tf.Graph()
    rng = np.random.default_rng(0)
    with graph.as_default():
        saver = v1.train.import_meta_graph(str(meta), clear_devices=True)
        variables = {op.name: op.outputs[0] for op in graph.get_operations() if op.type in ("VariableV2", "Variable")}
        names = {op.name for op in graph.get_operations()}
        initialise, generated = [], []
        for name, tensor in variables.items():
            if f"{name}/Assign" in names:
                initialise.append(graph.get_operation_by_name(f"{name}/Assign"))
            else:
                value = (rng.normal(size=tensor.shape.as_list()) * 0.05).astype(tensor.dtype.base_dtype.as_numpy_dtype)
                generated.append(v1.assign(tensor, value))
        saver = saver or v1.train.Saver(var_list=variables)
        with v1.Session(graph=graph) as session:
            session.run(initialise + generated)
            directory.mkdir(parents=True, exist_ok=True)
            return Path(saver.save(session, str(directory / "model.ckpt"), write_meta_graph=False))
