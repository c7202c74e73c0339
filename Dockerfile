# flvgw: HTTP-FLV relay gateway.
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t flvgw .
#   docker run -p 8080:8080 -p 1935:1935 flvgw
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
# go.mod replaces go-amf0 and go-rtmp with the patched copies in this
# directory.
COPY origin/third_party/ origin/third_party/
RUN go mod download
COPY . .
# The context leaves .git out, so the toolchain records no commit: the
# REVISION argument names it (flvgw -version, flvgw_build_info).
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X flvgw/gateway.linkedRevision=${REVISION}" -o /out/flvgw ./cmd/flvgw
# The image listens on all interfaces; the repository's etc/gw.toml keeps
# loopback for running from a checkout.
RUN sed -e 's/^listen = "127.0.0.1:8080"/listen = ":8080"/' \
        -e 's/^listen = "127.0.0.1:1935"/listen = ":1935"/' etc/gw.toml > /out/gw.toml \
 && grep -q '^listen = ":8080"' /out/gw.toml && grep -q '^listen = ":1935"' /out/gw.toml

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flvgw /usr/local/bin/flvgw
COPY --from=build /out/gw.toml /etc/flvgw/gw.toml
USER nonroot:nonroot
EXPOSE 8080 1935
ENTRYPOINT ["/usr/local/bin/flvgw"]
CMD ["-config", "/etc/flvgw/gw.toml"]
