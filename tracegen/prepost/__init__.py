"""Pre- and postprocessing around the model: on the host, on the device, or the user's own."""
