"""The contract between the trainer and the service (numpy, scipy and pydantic only; never torch).

``methods`` one spec per embedding method (arrays, #params, reconstruction) in a registry; ``artifact`` the
version format (atomic publish, verified load, LATEST); ``manifest`` the typed manifest and footprint report;
``footprint`` the size accounting; ``reconstruct`` the shared numpy math (paper equations); ``config`` the training
parameters (TrainConfig); ``jobspec`` the training-job contract (job function, HTTP parameter schema, cancel key).
"""
