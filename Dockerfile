# herald in a container: built with the official Rust image, run on Debian slim as a non-root
# user. docs/install.md has the commands.
#
#   docker build -t herald .
#   docker run --rm -p 6001:6001 --stop-timeout 30 \
#       -e PUSHER_APP_ID=my-app -e PUSHER_APP_KEY=my-key -e PUSHER_APP_SECRET="$(openssl rand -hex 32)" \
#       herald
#
# Configuration comes from the environment (PUSHER_APP_ID/KEY/SECRET, HERALD__SERVER__*,
# HERALD__SCALE_OUT__*: docs/configuration.md) or from a file mounted read-only and named on the
# command line: docker run ... -v ./herald.toml:/etc/herald/herald.toml:ro herald \
#   serve --config /etc/herald/herald.toml --log-format json
# With app credentials herald listens on 0.0.0.0; without any it serves only the development
# app, and only on the container's loopback, so nothing outside the container reaches it.

# The toolchain the project is developed with (rust-version in Cargo.toml is the minimum).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p herald-server --bin herald \
    && install -D -m 0755 target/release/herald /out/herald

FROM debian:bookworm-slim
# CA roots for https:// webhooks and dynamic authenticators (herald trusts the system's store).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin herald
COPY --from=build /out/herald /usr/bin/herald
USER herald:herald
# The Pusher/WAMP listener; /metrics and /health are on [server] metrics_port when it is set
# (9601 in the docs, bound to metrics_host: set HERALD__SERVER__METRICS_PORT and a reachable
# metrics_host, then publish it).
EXPOSE 6001
# /up on the main port answers 200 while herald accepts connections (plain HTTP: with tls_cert
# set, replace this check). bash's /dev/tcp: the slim image has no HTTP client.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${HERALD__SERVER__PORT:-6001} && printf 'GET /up HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
# SIGTERM drains (clients are told to reconnect) within [server] shutdown_grace, 10 s by
# default: give `docker stop` longer than that (--stop-timeout 30, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/herald"]
CMD ["serve", "--log-format", "json"]
