//! A value that must never reach a log line, a metric or a page: a password, a token, a URL
//! with credentials. The rules' actions and the sinks take secrets alike.

use std::fmt;

/// A secret; its `Debug` shows nothing of it, and only [`Secret::expose`] gives it out.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}
