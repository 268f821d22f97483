# syntax=docker/dockerfile:1
# driftwatch: build a wheel in one stage, run it as a non-root user in a slim one.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY driftwatch ./driftwatch
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels /wheels/driftwatch-*.whl

FROM python:3.11-slim
# git reads the desired state with the user's credentials; kubectl renders kustomizations
# (a static binary, copied from the official image rather than fetched by a script).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git=1:2.* ca-certificates=* \
 && rm -rf /var/lib/apt/lists/*
COPY --from=registry.k8s.io/kubectl:v1.32.4 /bin/kubectl /usr/local/bin/kubectl
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels driftwatch \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /var/lib/driftwatch --create-home driftwatch
USER 10001:10001
ENV XDG_CACHE_HOME=/var/lib/driftwatch/cache \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/driftwatch
ENTRYPOINT ["driftwatch"]
CMD ["--help"]
