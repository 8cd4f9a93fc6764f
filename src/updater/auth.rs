//! Bearer-token auth of the updater API: the token file, re-read when it changes, and the check of
//! one request's `Authorization` header; and `Reloading`, the file-watching cell `tls` shares.
//!
//! Owns: reading `--token-file`, noticing rotation (a `stat` per request, a re-read when the file's
//! identity, size or times change, and at least every [`RECHECK`] regardless), and the comparison,
//! which takes time independent of where the tokens differ (it depends on the lengths only; a token's
//! length is no secret worth hiding). Must not: log or echo a token, or answer HTTP (the server does).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Error;

/// Longest time a file-loaded value (the token, the TLS pair) is trusted without reading it again,
/// whatever `stat` says (file systems with coarse timestamps can hide a same-size rewrite within
/// one tick).
pub const RECHECK: Duration = Duration::from_secs(2);

/// What `stat` says about a file (device, inode, size, mtime and ctime to the nanosecond): a
/// change of any of these means "read it again".
type Stamp = (u64, u64, u64, [i64; 4]);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    let times = [m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()];
    Some((m.dev(), m.ino(), m.size(), times))
}

/// A value loaded from files: `stat`ed on every use, loaded again when a stamp changes and at least
/// every [`RECHECK`]. A load that fails keeps the previous value (kube-rs habit), so a half-done
/// rotation locks no one out; it is warned about once per change of the files, not on every use.
pub(crate) struct Reloading<T> {
    what: &'static str,
    paths: Vec<PathBuf>,
    load: fn(&[PathBuf]) -> Result<T, Error>,
    /// The stamps of the last load attempt (good or bad), its time, and the value in use.
    state: Mutex<(Vec<Option<Stamp>>, Instant, T)>,
}

impl<T: Clone> Reloading<T> {
    /// Loads once; a failure is an error at start.
    pub(crate) fn new(
        what: &'static str,
        paths: Vec<PathBuf>,
        load: fn(&[PathBuf]) -> Result<T, Error>,
    ) -> Result<Reloading<T>, Error> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let value = load(&paths)?;
        let state = Mutex::new((stamps, Instant::now(), value));
        Ok(Reloading {
            what,
            paths,
            load,
            state,
        })
    }

    pub(crate) fn get(&self) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let stamps: Vec<_> = self.paths.iter().map(|p| stamp(p)).collect();
        let changed = stamps != s.0;
        if changed || s.1.elapsed() >= RECHECK {
            (s.0, s.1) = (stamps, Instant::now());
            match (self.load)(&self.paths) {
                Ok(v) => {
                    if changed {
                        let from: Vec<_> = self.paths.iter().map(|p| p.display()).collect();
                        log::info!("{} reloaded from {from:?}", self.what);
                    }
                    s.2 = v;
                }
                Err(e) if changed => log::warn!("keeping the previous {}: {e}", self.what),
                Err(_) => {}
            }
        }
        s.2.clone()
    }
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reloading({} from {:?})", self.what, self.paths)
    }
}

/// The bearer token of `--token-file`.
pub struct TokenFile(Reloading<String>);

impl TokenFile {
    /// Reads the token once; an unreadable or empty file is an error at start.
    pub fn load(path: PathBuf) -> Result<TokenFile, Error> {
        let read = |p: &[PathBuf]| read_token(&p[0]);
        Reloading::new("bearer token", vec![path], read).map(TokenFile)
    }

    /// Whether `authorization` (the header's value, if any) carries the current token.
    pub fn allows(&self, authorization: Option<&str>) -> bool {
        let got = authorization.and_then(bearer).unwrap_or("");
        constant_time_eq(got.as_bytes(), self.0.get().as_bytes())
    }
}

/// The credentials of `Bearer <token>` (scheme case-insensitive, RFC 7235). Never empty: what
/// follows the first space of the trimmed header ends with its last, non-blank character.
fn bearer(h: &str) -> Option<&str> {
    let (scheme, rest) = h.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

fn read_token(path: &Path) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::io(path, std::io::Error::other("token file is not UTF-8 text")))?;
    let t = text.trim();
    let empty = || Error::io(path, std::io::Error::other("token file is empty"));
    (!t.is_empty()).then(|| t.to_string()).ok_or_else(empty)
}

/// Compares in time that depends only on the lengths, not on where the first difference is: every
/// byte position up to the longer length is visited and folded into one accumulator, no early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare_needs_equal_bytes_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_credentials() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer(" Bearer \t  "), None);
        assert_eq!(bearer("Bearer \t x "), Some("x"));
    }

    #[test]
    fn a_rotated_file_replaces_the_token_and_a_broken_one_keeps_it() {
        let dir = std::env::temp_dir().join(format!("paperlb-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "one\n").unwrap();
        let t = TokenFile::load(path.clone()).unwrap();
        assert!(t.allows(Some("Bearer one")));
        assert!(!t.allows(Some("Bearer two")) && !t.allows(None));
        // Rotation by rename, as kubelet and most tools do it: a new inode.
        std::fs::write(dir.join("token.new"), "two\n").unwrap();
        std::fs::rename(dir.join("token.new"), &path).unwrap();
        assert!(t.allows(Some("Bearer two")));
        assert!(!t.allows(Some("Bearer one")));
        // Empty or gone: the last good token stays.
        std::fs::write(&path, "").unwrap();
        assert!(t.allows(Some("Bearer two")));
        std::fs::remove_file(&path).unwrap();
        assert!(t.allows(Some("Bearer two")));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(t.allows(Some("Bearer two")));
        std::fs::write(&path, "three").unwrap();
        assert!(t.allows(Some("Bearer three")) && !t.allows(Some("Bearer two")));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(TokenFile::load(dir.join("missing")).is_err());
    }
}
