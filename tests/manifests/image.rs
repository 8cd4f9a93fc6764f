//! The Dockerfile ships the static release binary alone, as a non-root user, with no shell.

use crate::read;

/// Instruction lines (comments and blank lines dropped), as written.
fn instructions() -> Vec<String> {
    read("Dockerfile")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn image_is_scratch_with_only_the_static_binary_as_a_numeric_non_root_user() {
    let lines = instructions();
    assert_eq!(
        lines,
        [
            "FROM scratch",
            "COPY target/x86_64-unknown-linux-gnu/release/paperlb /paperlb",
            "ENV GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0",
            "USER 65532:65532",
            r#"ENTRYPOINT ["/paperlb"]"#,
            r#"CMD ["controller"]"#,
        ],
        "a scratch image has no shell: no RUN, and exec-form ENTRYPOINT/CMD only"
    );
    let makefile = read("Makefile");
    for line in [
        "RELEASE_TARGET := x86_64-unknown-linux-gnu",
        "RELEASE_BIN := target/$(RELEASE_TARGET)/release/paperlb",
    ] {
        assert!(
            makefile.lines().any(|l| l == line),
            "the Dockerfile copies what `make release` builds: Makefile must say {line}"
        );
    }
    assert!(
        read(".dockerignore")
            .lines()
            .any(|l| l == "!target/x86_64-unknown-linux-gnu/release/paperlb"),
        ".dockerignore must let the binary into the build context"
    );
}
