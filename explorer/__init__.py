"""The engine: models, activations and measurements, with no streamlit."""

import logging

# torchao (imported by PEFT too) warns on import about its CUDA-only libraries and about enum registrations
for noisy in ("torchao", "torch.utils._pytree"):
    logging.getLogger(noisy).setLevel(logging.ERROR)
