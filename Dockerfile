# paperlb: one static binary in an empty image.
#
# Build (the binary is built on the host, not in the image, so the image needs no toolchain):
#   make release                      # target/x86_64-unknown-linux-gnu/release/paperlb, static, checked
#   docker build -t ghcr.io/paperlb/paperlb:0.1.0 .     # or: make image
#
# The image has no shell, no libc, no CA bundle and no /etc: the controller reads the in-cluster
# service-account CA and token, and nothing else. Name resolution in the binary is static glibc's, which
# needs /etc/hosts and /etc/nsswitch.conf to resolve names; give the API server and the updater URL as
# IP addresses (the in-cluster config already uses KUBERNETES_SERVICE_HOST, an IP).
#
# Distroless variant: replace `FROM scratch` with `FROM gcr.io/distroless/static:nonroot` to get
# /etc/passwd, /etc/nsswitch.conf, CA certificates and tzdata (same user 65532, still no shell).
FROM scratch

COPY target/x86_64-unknown-linux-gnu/release/paperlb /paperlb

# Numeric so runAsNonRoot can verify it without an /etc/passwd; matches the Deployment's runAsUser.
USER 65532:65532

ENTRYPOINT ["/paperlb"]
CMD ["controller"]
