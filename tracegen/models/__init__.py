"""Models: resolving --model (built-ins, ONNX with external data, TensorRT engines, torch.export,
TorchScript, factories), input signatures and --shapes/--inputs plans, generated inputs, FLOPs
counting, and the ONNX normalisation and conversion the torch backend uses."""
