"""od-export: turn a TF2 Object Detection API training run into deployable artifacts."""
__version__ = "0.1.0"
