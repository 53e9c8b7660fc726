# Tollgate: one static-ish binary on Debian slim.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/tollgate tollgate \
    && mkdir -p /var/lib/tollgate && chown tollgate /var/lib/tollgate
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
USER tollgate
WORKDIR /var/lib/tollgate
ENV TOLLGATE__SERVER__ADDR=0.0.0.0:8080 TOLLGATE__DATA__DIR=/var/lib/tollgate
EXPOSE 8080
ENTRYPOINT ["tollgate"]
CMD ["serve"]
