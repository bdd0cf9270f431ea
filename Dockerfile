# Builds Footfall's binaries into a small runtime image. Used by docker-compose.yml.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -name 'footfall-*' -perm -u+x -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/footfall --create-home footfall
COPY --from=build /out/ /usr/local/bin/
USER footfall
WORKDIR /var/lib/footfall
ENV FOOTFALL_DATA_DIR=/var/lib/footfall
# mimalloc commits arenas lazily and returns freed pages at once: peak RSS about 27 MiB instead
# of 46–63 under sustained load at the same throughput (BENCHMARKS.md, Memory).
ENV MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0
# 8080: the pixel, tracker and beacons; 9464: /metrics, which listens on the container's loopback
# unless FOOTFALL_METRICS_LISTEN says otherwise (docker-compose.yml sets 0.0.0.0:9464 and
# publishes it on the host's loopback only).
EXPOSE 8080 9464
ENTRYPOINT ["footfall-collector"]
CMD ["serve"]
