# syntax=docker/dockerfile:1.7
# driftwatch image: a virtual environment built in one stage, run by a non-root user (UID
# 10001) in a slim one with git and kubectl. BuildKit is required (ADD --checksum).
#
#   docker build -t driftwatch .
#   docker run --read-only --tmpfs /tmp -v driftwatch-state:/var/lib/driftwatch \
#     -v "$PWD/driftwatch.yaml:/etc/driftwatch/driftwatch.yaml:ro" -p 8080:8080 driftwatch
#
# The root filesystem may be read-only: driftwatch writes only /tmp, /var/lib/driftwatch
# (state.db: XDG_STATE_HOME=/var/lib, and HOME) and /var/cache/driftwatch (Git mirrors:
# XDG_CACHE_HOME=/var/cache), all volumes. The HEALTHCHECK asks /healthz on port 8080: set
# `server: {listen: "0.0.0.0:8080"}` in the configuration (or DRIFTWATCH_HEALTH_URL).

# Set by BuildKit to the platform's architecture (amd64, arm64): picks the kubectl stage.
ARG TARGETARCH

# kubectl renders kustomizations in the desired state. A pinned release from dl.k8s.io,
# checked against its published SHA-256 (one stage per architecture, chosen below).
FROM scratch AS kubectl-amd64
ADD --checksum=sha256:10d739e9af8a59c9e7a730a2445916e04bc9cbb44bc79d22ce460cd329fa076c \
    https://dl.k8s.io/release/v1.32.4/bin/linux/amd64/kubectl /kubectl

FROM scratch AS kubectl-arm64
ADD --checksum=sha256:c6f96d0468d6976224f5f0d81b65e1a63b47195022646be83e49d38389d572c2 \
    https://dl.k8s.io/release/v1.32.4/bin/linux/arm64/kubectl /kubectl

# DL3006 (untagged image) does not apply: kubectl-${TARGETARCH} is one of the two stages
# above, which hadolint cannot see through the variable.
# hadolint ignore=DL3006
FROM kubectl-${TARGETARCH} AS kubectl

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY driftwatch/ driftwatch/
# driftwatch/examples is a symbolic link to config/examples (the demo's bundled policies).
COPY config/examples/ config/examples/
# The wheel, then a virtual environment holding it and its dependencies; .pyc files are
# compiled here, so nothing is written next to the code at run time.
RUN python -m venv /opt/driftwatch \
 && /opt/driftwatch/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/driftwatch/bin/pip install /wheels/driftwatch-*.whl \
 && /opt/driftwatch/bin/driftwatch --version

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="driftwatch" \
      org.opencontainers.image.description="Alerts on Kubernetes NetworkPolicy drift from Git" \
      org.opencontainers.image.licenses="Apache-2.0"
# git reads the desired state (HTTPS with ca-certificates, or SSH).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates=20230311* \
      git=1:2.39.* \
      openssh-client=1:9.2p1-* \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 driftwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/driftwatch \
      --no-create-home --shell /usr/sbin/nologin driftwatch \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/driftwatch /var/cache/driftwatch \
 && install -d -m 0755 /etc/driftwatch
COPY --from=kubectl --chmod=0755 /kubectl /usr/local/bin/kubectl
COPY --from=build /opt/driftwatch /opt/driftwatch
ENV PATH=/opt/driftwatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/driftwatch \
    XDG_STATE_HOME=/var/lib \
    XDG_CACHE_HOME=/var/cache \
    DRIFTWATCH_HEALTH_URL=http://127.0.0.1:8080/healthz
VOLUME ["/var/lib/driftwatch", "/var/cache/driftwatch"]
USER 10001:10001
WORKDIR /var/lib/driftwatch
EXPOSE 8080
# The daemon stops within 5 s of SIGTERM (docker stop waits 10 s by default).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['DRIFTWATCH_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["driftwatch"]
CMD ["run", "--config", "/etc/driftwatch/driftwatch.yaml"]
