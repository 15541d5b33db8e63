# syntax=docker/dockerfile:1.7
#
# Two images from one file:
#   docker build --target api    -t c2f-api .                          # numpy-only FastAPI service, no torch
#   docker build --target worker -t c2f-worker .                       # RQ worker + trainer, CPU torch
#   docker build --target worker --build-arg TORCH_FLAVOR=cuda -t c2f-worker:cuda .   # CUDA base image
#
# docker-compose.yml builds both; docker-compose.gpu.yml switches the worker to TORCH_FLAVOR=cuda.

ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
# cpu | cuda: which torch base the worker target is built on.
ARG TORCH_FLAVOR=cpu
ARG TORCH_VERSION=2.13.0
# The CPU-only wheel index (PyPI's Linux torch wheels are the large CUDA builds).
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG APP_UID=10001

# ---------------------------------------------------------------------------------------------------------------
# base-cpu: slim Python, a virtual environment in /opt/venv, the non-root user and the mount points.
FROM ${PYTHON_IMAGE} AS base-cpu
ARG APP_UID
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv \
 && useradd --create-home --uid "${APP_UID}" --shell /usr/sbin/nologin c2f \
 && mkdir -p /artifacts /data /app \
 && chown c2f:c2f /artifacts /data
WORKDIR /app

# base-cuda: NVIDIA's CUDA runtime image with the distribution's Python (3.12 on Ubuntu 24.04) in a venv.
FROM ${CUDA_IMAGE} AS base-cuda
ARG APP_UID
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && useradd --create-home --uid "${APP_UID}" --shell /usr/sbin/nologin c2f \
 && mkdir -p /artifacts /data /app \
 && chown c2f:c2f /artifacts /data
WORKDIR /app

# ---------------------------------------------------------------------------------------------------------------
# api: the serving image. Only the `serve` extra: numpy/scipy/FastAPI, never torch nor the `train` extra.
FROM base-cpu AS api
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY service ./service
COPY trainer ./trainer
COPY jobs ./jobs
COPY cli ./cli
RUN pip install ".[serve]" \
 && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
ENV C2F_ARTIFACT_ROOT=/artifacts \
    C2F_DATA_ROOT=/data
USER c2f
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4).status == 200 else 1)"]
CMD ["c2f", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------------------------
# torch-cpu / torch-cuda: the two torch bases; `worker` picks one with TORCH_FLAVOR (BuildKit builds only that one).
FROM base-cpu AS torch-cpu
ARG TORCH_VERSION
ARG TORCH_CPU_INDEX_URL
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX_URL}"

FROM base-cuda AS torch-cuda
ARG TORCH_VERSION
RUN pip install "torch==${TORCH_VERSION}"

# ---------------------------------------------------------------------------------------------------------------
# worker: the RQ worker that runs training jobs (trainer + service code; torch from the chosen base).
FROM torch-${TORCH_FLAVOR} AS worker
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY service ./service
COPY trainer ./trainer
COPY jobs ./jobs
COPY cli ./cli
RUN pip install ".[train,serve]"
ENV C2F_ARTIFACT_ROOT=/artifacts \
    C2F_DATA_ROOT=/data
USER c2f
CMD ["c2f", "worker"]
