//! What a server open to others does not tell its clients: where its files are on the host.
//!
//! A server started with a token (so also every server on a non-loopback address) is reached
//! by people who are not its operator. Its error messages name the folders they come from
//! (`cannot read /home/ann/pismo/models/x.v1.pismo: …`, `no run `r1` in /srv/runs`); such a
//! server answers them with each of its folders replaced by what it is (`<registry>`,
//! `<runs>`, `<MNIST>`, `<drawings>`), says that the server's log says more, and writes the
//! whole message to its log (stderr). A loopback server without a token answers with the
//! whole message: its clients are its operator's own programs.
//!
//! Invariant: every error answer of a public server goes through [`Redact::error`] (by
//! `State::shown`, in `connection.rs` and `events.rs`, where errors become answers) and
//! every event it streams through [`Redact::clean`] (`events.rs`, where events are
//! written), so none shows a folder the server was given, as given, made absolute, or with
//! its links resolved.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::reply::ApiError;
use crate::request::Request;

/// The host folders of a public server and the names its answers give them instead.
#[derive(Debug, Default)]
pub(crate) struct Redact {
    /// Longest spelling first, so a folder inside another is replaced as itself.
    folders: Vec<(String, &'static str)>,
}

impl Redact {
    /// The folders `named` (a folder and what to call it), in every spelling a message can
    /// have: as given (when it is a path, not a bare name), absolute, and with links resolved.
    pub fn new(named: &[(Option<&Path>, &'static str)]) -> Redact {
        let mut folders = Vec::new();
        for &(folder, name) in named {
            let Some(folder) = folder else { continue };
            let spellings: [Option<PathBuf>; 3] = [
                (folder.components().count() > 1 || folder.is_absolute())
                    .then(|| folder.to_path_buf()),
                std::path::absolute(folder).ok(),
                folder.canonicalize().ok(),
            ];
            for spelling in spellings.into_iter().flatten() {
                let text = spelling.display().to_string();
                if text.len() > 1 && !folders.iter().any(|(f, _)| *f == text) {
                    folders.push((text, name));
                }
            }
        }
        folders.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        Redact { folders }
    }

    /// `message` with the folders replaced, or `None` when it names none of them.
    fn text(&self, message: &str) -> Option<String> {
        let mut out = message.to_owned();
        for (folder, name) in &self.folders {
            out = out.replace(folder.as_str(), name);
        }
        (out != message).then_some(out)
    }

    /// `text` with the folders replaced (the data of an event, say).
    pub fn clean<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.text(text).map_or(Cow::Borrowed(text), Cow::Owned)
    }

    /// `e` as the client may see it; a message that named a folder is logged whole.
    pub fn error(&self, request: Option<&Request>, mut e: ApiError) -> ApiError {
        if let Some(text) = self.text(&e.message) {
            let what = request.map_or(String::new(), |r| format!(" {} {}", r.method, r.path));
            eprintln!("pismo serve:{what}: {} {}", e.status, e.message);
            e.message = format!("{text} (the server's log says more)");
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_replaced_by_their_names_in_every_spelling() {
        let dir = std::env::temp_dir();
        let runs = dir.join("runs");
        let r = Redact::new(&[
            (Some(dir.as_path()), "<registry>"),
            (Some(runs.as_path()), "<runs>"),
            (Some(Path::new("models")), "<models>"),
            (None, "<none>"),
        ]);
        let named = format!("no run `r1` in {}", runs.display());
        assert_eq!(r.text(&named).as_deref(), Some("no run `r1` in <runs>"));
        let file = format!("cannot read {}/x.v1.pismo: denied", dir.display());
        assert_eq!(
            r.text(&file).as_deref(),
            Some("cannot read <registry>/x.v1.pismo: denied")
        );
        // A bare name is not a path by itself; its absolute spelling is.
        assert_eq!(r.text("no model named `models`"), None);
        let cwd = std::env::current_dir().unwrap().join("models");
        assert_eq!(
            r.text(&cwd.display().to_string()).as_deref(),
            Some("<models>")
        );
        let e = r.error(None, ApiError::new(500, file));
        assert!(
            e.message.ends_with("(the server's log says more)"),
            "{}",
            e.message
        );
        assert!(!e.message.contains(&dir.display().to_string()));
    }
}
