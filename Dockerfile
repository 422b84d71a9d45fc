# syntax=docker/dockerfile:1

# Transit: one image for `transit server` (the default) and `transit worker`.
#
#   docker build -t transit .
#   docker run --rm -p 8080:8080 -e TRANSIT_DATABASE_URL=... transit            # API
#   docker run --rm -e TRANSIT_DATABASE_URL=... transit worker                  # worker
#
# docker-compose.yml runs both, with Postgres and Temporal.

##### build #####
# The golang images set GOTOOLCHAIN=local, so this Go must be at least the go
# line of go.mod (1.26.8): `docker compose build --pull` refreshes a stale one.
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/transit ./cmd/transit

##### runtime #####
# Debian rather than distroless: the script driver runs commands that admins
# configure, which need a shell and the usual userland; ca-certificates for
# TLS to Temporal Cloud and other HTTPS endpoints, tzdata for policy timezones.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 transit \
    && useradd --system --uid 10001 --gid transit --create-home --home-dir /home/transit \
        --shell /usr/sbin/nologin transit
COPY --from=build /out/transit /usr/local/bin/transit
USER 10001:10001
WORKDIR /home/transit
EXPOSE 8080
# No HEALTHCHECK here: the same image runs the worker, which serves no HTTP.
# docker-compose.yml checks the server's /readyz instead.
ENTRYPOINT ["transit"]
CMD ["server"]
