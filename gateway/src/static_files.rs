//! The dashboard (`--web-dir`) and the npm package (`--pkg-dir`) as a browser wants them:
//! compressed (brotli or gzip: the precompressed `.br`/`.gz` files `scripts/build-pkg.sh`
//! writes next to the package's files, else compressed on the fly), with a strong `ETag` per
//! file content and encoding, `Cache-Control: no-cache` (a browser may keep the file and asks
//! whether it changed; an unchanged file is a `304` without body), and `Vary:
//! Accept-Encoding`.
//!
//! Layer: floor 1 (config values only); tower-http does files, ranges, precompressed variants
//! and compression.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::Router;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;

/// Content hashes of served files, by path, valid while size and modification time hold.
#[derive(Default)]
struct Hashes(Mutex<HashMap<PathBuf, (SystemTime, u64, u64)>>);

impl Hashes {
    /// The hash of `path`'s content (read once per change of size or modification time).
    fn of(&self, path: &Path) -> Option<u64> {
        let meta = std::fs::metadata(path).ok()?;
        let (mtime, len) = (meta.modified().ok()?, meta.len());
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, l, h)) = map.get(path) {
            if *t == mtime && *l == len {
                return Some(*h);
            }
        }
        let bytes = std::fs::read(path).ok()?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        let h = hasher.finish();
        map.insert(path.to_owned(), (mtime, len, h));
        Some(h)
    }
}

/// The files of `dir` (with `index.html` for directories when `index`), compressed and with
/// validators and cache headers.
pub(crate) fn serve(dir: &Path, index: bool) -> Router {
    let files = ServeDir::new(dir)
        .append_index_html_on_directories(index)
        .precompressed_br()
        .precompressed_gzip();
    let root = dir.to_owned();
    let hashes = Arc::new(Hashes::default());
    Router::new()
        .fallback_service(files)
        .layer(CompressionLayer::new())
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let (root, hashes) = (root.clone(), hashes.clone());
            async move { validators(req, next, &root, index, hashes).await }
        }))
}

/// Adds `ETag` and `Cache-Control` to a file's answer, and answers `304 Not Modified` when
/// the browser's `If-None-Match` names the current one.
async fn validators(
    req: Request,
    next: Next,
    root: &Path,
    index: bool,
    hashes: Arc<Hashes>,
) -> Response {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let file = file_of(root, req.uri().path(), index);
    let wanted = req.headers().get(header::IF_NONE_MATCH).cloned();
    let res = next.run(req).await;
    if !get || !res.status().is_success() {
        return res;
    }
    let Some(file) = file else {
        return res;
    };
    // Reading a file to hash it (once per change) is blocking work.
    let hash = tokio::task::spawn_blocking(move || hashes.of(&file)).await;
    let Ok(Some(hash)) = hash else {
        return res;
    };
    // One validator per representation: the encoding is part of it.
    let encoding = res
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_owned();
    let etag = format!("\"{hash:016x}-{encoding}\"");
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return res;
    };
    let mut res = if wanted.is_some_and(|w| matches_etag(&w, &etag)) {
        (StatusCode::NOT_MODIFIED, Body::empty()).into_response()
    } else {
        res
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, etag_value);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Every file may come compressed or not, depending on the request's Accept-Encoding.
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    res
}

/// Whether an `If-None-Match` value names `etag` (a list, `*`, or weak forms of it).
fn matches_etag(wanted: &HeaderValue, etag: &str) -> bool {
    let Ok(w) = wanted.to_str() else {
        return false;
    };
    w.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The file under `root` a request path names, if it stays under `root`.
fn file_of(root: &Path, uri_path: &str, index: bool) -> Option<PathBuf> {
    let mut path = root.to_owned();
    let decoded = percent_encoding::percent_decode_str(uri_path)
        .decode_utf8()
        .ok()?;
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.contains('\\') => return None,
            p => path.push(p),
        }
    }
    if index && (uri_path.ends_with('/') || path.is_dir()) {
        path.push("index.html");
    }
    path.is_file().then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_forms() {
        let e = "\"00ff-br\"";
        assert!(matches_etag(&HeaderValue::from_static("\"00ff-br\""), e));
        assert!(matches_etag(
            &HeaderValue::from_static("\"x\", W/\"00ff-br\""),
            e
        ));
        assert!(matches_etag(&HeaderValue::from_static("*"), e));
        assert!(!matches_etag(&HeaderValue::from_static("\"00ff-gzip\""), e));
    }

    #[test]
    fn paths_stay_under_the_root() {
        let root = std::env::temp_dir().join(format!("static-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/b c.js"), "x").unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        assert_eq!(
            file_of(&root, "/a/b%20c.js", false),
            Some(root.join("a/b c.js"))
        );
        assert_eq!(file_of(&root, "/", true), Some(root.join("index.html")));
        assert_eq!(file_of(&root, "/../etc/passwd", false), None);
        assert_eq!(file_of(&root, "/a/%2e%2e/%2e%2e/x", false), None);
        assert_eq!(file_of(&root, "/missing", false), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
