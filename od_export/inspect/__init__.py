"""What an artifact holds: export directories, SavedModels, graphs, checkpoints, configs, ONNX files."""
