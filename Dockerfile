# paperlb: one static binary in an empty image.
#
# Build (the binary is built on the host, not in the image, so the image needs no toolchain):
#   make release                      # target/x86_64-unknown-linux-gnu/release/paperlb, static, checked
#   docker build -t ghcr.io/paperlb/paperlb:0.1.0 .     # or: make image
#
# The image has no shell, no libc, no CA bundle and no /etc: the controller reads the in-cluster
# service-account CA and token, and nothing else. Name resolution is static glibc's own (files + dns
# built in, no NSS modules loaded): in a pod it uses the /etc/resolv.conf and /etc/hosts that kubelet
# mounts into every container, so host names in httpUpdaterURL resolve. Run outside Kubernetes with an
# empty /etc, only IP addresses work (mount an /etc/resolv.conf or /etc/hosts, or use IPs).
#
# Distroless variant: replace `FROM scratch` with `FROM gcr.io/distroless/static:nonroot` to get
# /etc/passwd, /etc/nsswitch.conf, CA certificates and tzdata (same user 65532, still no shell).
FROM scratch

COPY target/x86_64-unknown-linux-gnu/release/paperlb /paperlb

# One malloc arena and no per-thread caches of freed chunks, as the Deployment sets it: the
# controller's I/O threads would otherwise each keep their own (README, "Performance").
ENV GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0

# Numeric so runAsNonRoot can verify it without an /etc/passwd; matches the Deployment's runAsUser.
USER 65532:65532

ENTRYPOINT ["/paperlb"]
CMD ["controller"]
