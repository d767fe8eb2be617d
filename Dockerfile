# printerd in a container: docker build -t printerd .  (podman build and buildah work the same)
# The base is any Debian-like image with Python 3.11 and its venv module; the lock's versions
# were resolved for 3.11.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# Where pip finds a CA bundle behind a TLS-inspecting proxy (mount it into the build); unset: pip's own.
ARG PIP_CERT
# Dependencies first, from the lock with hashes, so a source change rebuilds only the last layer.
COPY requirements/runtime.lock /src/requirements/runtime.lock
RUN python3 -m venv /opt/printerd \
 && /opt/printerd/bin/pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes -r /src/requirements/runtime.lock
COPY setup.cfg pyproject.toml README.md /src/
COPY src /src/src
COPY twisted /src/twisted
RUN cd /src && /opt/printerd/bin/pip install --no-cache-dir --disable-pip-version-check \
        --no-deps --no-build-isolation . \
 && /opt/printerd/bin/pip uninstall -y --disable-pip-version-check setuptools wheel

FROM ${BASE_IMAGE}
COPY --from=build /opt/printerd /opt/printerd
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/printerd --create-home \
        --shell /usr/sbin/nologin printerd
# Every setting can be changed with -e PRINTERD_...; these make sense in a container: listen on
# every interface (the port mapping decides who reaches it), the database on the volume, and
# the API token from a secret file (required: the HTTP port is reachable from outside).
ENV PATH=/opt/printerd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PRINTERD_RAW_LISTEN=tcp:9100 \
    PRINTERD_HTTP_LISTEN=tcp:8000 \
    PRINTERD_DATABASE=/var/lib/printerd/printerd.sqlite3 \
    PRINTERD_API_TOKENS_FILE=/run/secrets/printerd_api_token
VOLUME /var/lib/printerd
WORKDIR /var/lib/printerd
USER printerd
EXPOSE 9100 8000
# /livez: fails only when printerd does not answer (a full disk makes it not ready, not dead).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["printerd", "healthcheck"]
# SIGTERM: the listeners close, jobs in flight finish (shutdown_timeout), everything is committed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["printerd", "run"]
