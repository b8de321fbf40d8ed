"""What is measured beside the steps: NVTX ranges for Nsight Systems, GPU and CPU samples."""
